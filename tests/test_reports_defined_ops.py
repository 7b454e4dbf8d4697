"""The page's "Defined ops" section (reports.definitions): shown only when the report
has definitions, the formulas typeset as sanitized MathML, conventions labelled as
conventions, and every text from the report escaped."""

from __future__ import annotations

import copy
import json
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from reports import render_html
from reports.definitions import definition_view, formula_mathml
from reports.mathml import MATHML_NS
from tests.test_reports_html import HOSTILE, minimal, scan, unsafe_markup

M = "{" + MATHML_NS + "}"


def defined_campaign() -> dict[str, Any]:
    """A real campaign over library ops, as a reader of the JSON sees it (also used
    by the browser test)."""
    from verifier.campaign import check_engine
    from verifier.define import definitions

    result = check_engine("engine:Value", ops="+gelu,+maximum,+leaky_relu,+log1p", examples=20, seed=0)
    report = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    if not report.get("definitions"):  # before CampaignResult.to_dict() carried them
        report["definitions"] = [d.to_json() for d in definitions()]
    return report


@pytest.fixture(scope="module")
def defined_report() -> dict[str, Any]:
    return defined_campaign()


def section(page: str) -> str:
    start = page.index('<section id="defined-ops"')
    return page[start: page.index("</section>", start)]


def maths(html: str) -> list[ET.Element]:
    out, at = [], 0
    while (start := html.find("<math", at)) >= 0:
        end = html.index("</math>", start) + len("</math>")
        out.append(ET.fromstring(html[start:end]))
        at = end
    return out


def test_the_section_shows_each_definition_with_mathml(defined_report):
    page = render_html(defined_report)
    assert unsafe_markup(page) == []
    part = section(page)
    assert "<h2>Defined ops (4)</h2>" in part
    for signature in ("gelu(x)", "maximum(x, y)", "leaky_relu(x)", "log1p(x)"):
        assert f"<code>{signature}</code>" in part
    assert "<code>x.maximum(y)</code>" in part and "<code>x.leaky_relu()</code>" in part
    # formula + one derivative per argument, each typeset (none fell back to text)
    found = maths(part)
    assert len(found) == 4 + 5
    assert all(m.tag == M + "math" for m in found)
    # leaky_relu's formula and derivative as cases, its kink, log1p's domain
    leaky = part[part.index("<code>leaky_relu(x)</code>"):]
    leaky = leaky[: leaky.index("</article>")]
    tables = [m for m in maths(leaky) if m.find(f".//{M}mtable") is not None]
    assert len(tables) == 2
    assert "otherwise" in "".join(tables[0].itertext())
    assert "<code>x = 0</code>" in leaky
    assert "<code>x + 1 &gt; 0</code>" in part
    assert "all reals" in part and "∂/∂y" in part


def test_conventions_are_labelled_as_conventions_not_bugs(defined_report):
    part = section(render_html(defined_report))
    leaky = part[part.index("<code>leaky_relu(x)</code>"):]
    leaky = leaky[: leaky.index("</article>")]
    assert "convention, not a bug" in leaky
    assert "leaky_relu&#39;(0) = 0.01 in torch (the negative side&#39;s slope)" in leaky
    gelu = part[part.index("<code>gelu(x)</code>"):]
    assert "convention" not in gelu[: gelu.index("</article>")]  # gelu has no kink, so no convention


def test_the_run_conventions_stay_in_run_details_and_are_not_repeated(defined_report):
    """The engine's choices at kinks (report["conventions"]) are listed once, under
    Run details; the definition shows what frameworks give, and says so."""
    page = render_html(defined_report)
    engine_seen = [c for c in defined_report["conventions"] if c.startswith("leaky_relu'")]
    assert engine_seen
    for text in engine_seen:
        listed = "<li><code>" + text.replace("'", "&#39;") + "</code></li>"
        assert page.count(listed) == 1 and listed not in section(page)
    assert '<a href="#defined-ops">' in page


def test_the_section_is_absent_without_definitions(defined_report):
    for report in (minimal(), minimal(definitions=[]), {k: v for k, v in defined_report.items() if k != "definitions"}):
        page = render_html(report)
        assert 'id="defined-ops"' not in page and "<h2>Defined ops" not in page and 'href="#defined-ops"' not in page


def test_assumed_items_are_declared_not_derived():
    view_page = render_html(minimal(definitions=[{
        "name": "shifted", "formula": "log(x - 1)", "arguments": ["x"], "method": "shifted",
        "derivatives": ["1/(x - 1)"], "domain": ["x - 1 > 0"], "kinks": [], "monotone": True,
        "assumed": ["domain: x > 1", "monotone (declared)"], "conventions": "", "stable": "", "declared": {},
    }]))
    part = section(view_page)
    assert "declared, not derived" in part
    assert "<code>domain: x &gt; 1</code>" in part and "<code>monotone (declared)</code>" in part


HOSTILE_DEFINITION = {
    "name": "evil" + HOSTILE, "formula": "x + 1" + HOSTILE, "arguments": ["x", HOSTILE], "method": HOSTILE,
    "derivatives": [HOSTILE, "</math><script>alert(3)</script>"], "domain": [HOSTILE], "kinks": [HOSTILE],
    "monotone": HOSTILE, "assumed": [HOSTILE], "conventions": "torch gives " + HOSTILE, "stable": HOSTILE,
    "declared": {HOSTILE: HOSTILE},
}


def test_hostile_definitions_are_escaped_text():
    page = render_html(minimal(definitions=[HOSTILE_DEFINITION, "not a mapping", 42, {"name": HOSTILE}]))
    assert unsafe_markup(page) == []
    part = section(page)
    assert maths(part) == []  # nothing parsed: every formula is shown as text
    text = "".join(scan(part).text)
    assert "torch gives " + HOSTILE in text
    assert "x + 1" + HOSTILE in text
    assert "</math><script>alert(3)</script>" in text
    assert "monotone" not in text  # only a real true is monotone


def test_a_formula_reaches_the_page_only_through_the_parser_and_sanitizer():
    assert formula_mathml("__import__('os').system('true')") is None  # the whitelist parser refuses it
    assert formula_mathml("x + y; 1") is None
    assert formula_mathml(None) is None and formula_mathml(42) is None
    math = formula_mathml("Piecewise((x, x < 0), (x**2/2, True))")
    assert math is not None and "&lt;" in math and "<script" not in math
    view = definition_view({"name": "f", "formula": "<b>x</b>", "arguments": ["x"], "derivatives": ["1"]})
    assert view["math"] is None and view["formula"] == "<b>x</b>"  # the template escapes it
    assert view["derivatives"][0]["math"] is not None


@pytest.mark.parametrize("text", ["2**64**64", "(((((2*x)**64)**64)**64)**64)**64", "(2*x)**(x - x + 10**15)",
                                  "x**(64*64*64*64*64*64*64*64)"])
def test_a_formula_that_would_take_sympy_forever_is_shown_as_text(text):
    started = time.monotonic()
    page = render_html(minimal(definitions=[dict(HOSTILE_DEFINITION, name="big", formula=text, derivatives=[text])]))
    assert time.monotonic() - started < 5
    assert maths(section(page)) == []


def test_the_definitions_of_a_hostile_report_keep_the_page_inert(defined_report):
    report = copy.deepcopy(defined_report)
    for d in report["definitions"]:
        d["conventions"] = HOSTILE + d["conventions"]
        d["stable"] = HOSTILE
        d["kinks"] = [HOSTILE + k for k in d["kinks"]]
    page = render_html(report)
    assert unsafe_markup(page) == []
    assert len(maths(section(page))) == 9  # the formulas themselves are intact
