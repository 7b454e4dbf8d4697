"""The HTML page, without a browser: safety (escaping, CSP, sanitized MathML),
structure (anchors, verdict, tables), the SVG figures and the reproduction lines."""

from __future__ import annotations

import ast
import copy
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment, FileSystemLoader
from markupsafe import escape

from reports import render_html, write_html
from reports.html import CSP, TEMPLATES, _page, finding_card, summary_fragment
from reports.mathml import sanitize_mathml
from reports.svg import (
    MAX_GRAPH_NODES,
    format_error,
    format_value,
    graph_svg,
    layered_layout,
    step_plot_svg,
)
from reports.verdict import SHORT_REASONS
from tests.engines.hostile_strings import LOG_MESSAGE, PAYLOAD
from tests.test_reports_json import all_findings

SVG = "{http://www.w3.org/2000/svg}"
MATHML_TAGS = {"math", "mrow", "mi", "mn", "mo", "msub", "msup", "mfrac", "msqrt", "mtext", "mspace", "mtable", "mtr", "mtd"}
SVG_TAGS = {"svg", "defs", "marker", "path", "g", "title", "rect", "text", "line", "polyline", "circle", "clippath"}
HTML_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "footer", "section", "article", "div", "p",
    "h1", "h2", "h3", "h4", "span", "strong", "em", "code", "pre", "a", "dl", "dt", "dd", "ul", "li", "table",
    "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "details", "summary",
}
ALLOWED_TAGS = HTML_TAGS | SVG_TAGS | MATHML_TAGS
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(2)>'


class _Scan(HTMLParser):
    """Collects every tag, attribute and text node of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.code_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack[-2:] == ["pre", "code"]:
            self.code_text.append(data)


def scan(page: str) -> _Scan:
    parser = _Scan()
    parser.feed(page)
    parser.close()
    return parser


def unsafe_markup(page: str) -> list[str]:
    """Everything in ``page`` that could run or fetch: the problems, empty if inert."""
    problems = []
    if "<script" in page.lower():
        problems.append("<script substring")
    for tag, attrs in scan(page).tags:
        if tag not in ALLOWED_TAGS:
            problems.append(f"element <{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"attribute {name} on <{tag}>")
            if name in ("src", "srcset", "action", "formaction", "background", "xlink:href"):
                problems.append(f"attribute {name} on <{tag}>")
            if name == "href" and not (value or "").startswith("#"):
                problems.append(f"link {value!r}")
            if name == "style":
                problems.append(f"inline style attribute on <{tag}>")
    return problems


def minimal(**extra: Any) -> dict[str, Any]:
    return {"engine": "engine:Value", "seed": 0, "examples": 7, "ops": ["add"], "discrepancies": [], **extra}


def hostile_everywhere(report: Any, payload: str = PAYLOAD) -> Any:
    """Every string of the report (and the keys of its free-form maps) with a payload."""
    if isinstance(report, dict):
        out = {}
        for key, value in report.items():
            new_key = key if key in _FIXED_KEYS else payload + key
            out[new_key] = hostile_everywhere(value, payload)
        return out
    if isinstance(report, list):
        return [hostile_everywhere(v, payload) for v in report]
    if isinstance(report, str):
        return payload + report
    return report


# Keys that are the format's own field names (kept); the others are data (engine-chosen).
_FIXED_KEYS = {
    "schema", "tool", "name", "version", "engine", "seed", "examples", "examples_requested", "ops", "ops_supported",
    "ops_missing", "ops_quarantined", "duration_s", "stopped", "workers", "settings", "summary", "errors", "warnings",
    "by_op", "op", "kind", "severity", "count", "points", "oracle_notes", "skipped_examples", "conventions",
    "discrepancies", "oracle_findings", "cause", "message", "expression", "variables", "point", "status", "detail",
    "blame", "backend", "form", "reason", "node", "form_point", "oracles", "reference", "sympy", "torch", "numeric",
    "value", "gradient", "error", "value_error", "gradient_error", "estimate", "value_floor", "gradient_floor",
    "variable", "ratio", "graph", "id", "label", "args", "engine_value", "engine_grad", "blamed", "steps", "mathml",
    "latex", "shrunk", "original", "convention", "extra",
}


# -- page-level safety ---------------------------------------------------------------------------

def test_page_has_the_csp_and_nothing_remote(real_reports):
    page = render_html(real_reports["float32"])
    assert page.lstrip().startswith("<!DOCTYPE html>")
    metas = [attrs for tag, attrs in scan(page).tags if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert unsafe_markup(page) == []
    assert "@import" not in page and "url(http" not in page and "<link" not in page


@pytest.mark.parametrize("name", ["hostile", "student", "float32", "clean"])
def test_real_pages_are_inert(real_reports, name):
    assert unsafe_markup(render_html(real_reports[name])) == []


def test_hostile_error_message_is_shown_as_text(real_reports):
    page = render_html(real_reports["hostile"])
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;" in page
    assert str(escape(LOG_MESSAGE)) in page  # shown, escaped: '&lt;script&gt;alert(&#34;x&#34;)...'
    assert LOG_MESSAGE in "".join(scan(page).text)  # and a parser reads it back as plain text


def test_the_safety_check_catches_an_unescaped_render(real_reports):
    # The same template and view model without autoescaping: the check must object.
    unsafe = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False)
    unsafe.filters.update(value=format_value, err=format_error)
    page = unsafe.get_template("report.html.j2").render(page=_page(real_reports["hostile"], None))
    problems = unsafe_markup(page)
    assert "<script substring" in problems
    assert any("onerror" in p for p in problems)


def test_hostile_strings_everywhere_stay_inert(real_reports):
    for name in ("student", "float32"):
        report = hostile_everywhere(copy.deepcopy(real_reports[name]), payload=HOSTILE)
        page = render_html(report, json_path=HOSTILE + ".json")
        assert unsafe_markup(page) == [], name
        assert "alert(2)" in page  # it is shown, as text
        assert "<math" not in page  # the hostile MathML was dropped for the plain expression


@settings(max_examples=30, deadline=None)
@given(text=st.text(min_size=1, max_size=40))
def test_any_engine_name_and_message_round_trip_as_text(real_reports, text):
    report = copy.deepcopy(real_reports["float32"])
    report["engine"] = "<b>" + text
    report["discrepancies"][0]["message"] = text + "</p><script>"
    page = render_html(report)
    assert unsafe_markup(page) == []
    assert text + "</p><script>" in "".join(scan(page).text)


# -- structure ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hostile", "student", "float32"])
def test_every_finding_has_an_anchor_and_a_link(real_reports, name):
    report = real_reports[name]
    page = render_html(report)
    ids = [attrs.get("id") for _, attrs in scan(page).tags]
    hrefs = [attrs.get("href") for tag, attrs in scan(page).tags if tag == "a"]
    findings = all_findings(report)
    assert findings
    for f in findings:
        assert ids.count(f["id"]) == 1
        assert "#" + f["id"] in hrefs
    assert len(ids) == len({i for i in ids if i is not None}) + ids.count(None)  # ids are unique


def test_clean_report_says_no_discrepancies(real_reports):
    page = render_html(real_reports["clean"])
    assert f"No discrepancies in {real_reports['clean']['examples']} examples" in page
    assert 'class="banner ok"' in page
    assert "relu&#39;(0) = 0" in page  # the kink convention
    assert "defined" in page  # points by class
    assert "No discrepancies" not in render_html(real_reports["student"])


def banner(page: str) -> tuple[str, str]:
    """The banner's class and its headline (the <strong>), as text."""
    match = re.search(r'<div class="banner (\w+)" role="status"><strong>(.*?)</strong>', page, re.S)
    assert match, "no banner"
    return match.group(1), "".join(scan(match.group(2)).text)


def test_verdict_banners():
    error = minimal(discrepancies=[_finding()])
    assert banner(render_html(error)) == ("error", "1 error: sub (gradient)")
    two = minimal(discrepancies=[_finding(), _finding(id="F2", expression="x0 + 1")])
    assert banner(render_html(two)) == ("error", "2 errors: sub (gradient ×2)")
    warned = minimal(warnings=[_finding(severity="warning")])
    page = render_html(warned)
    assert banner(page) == ("warning", "Warnings only: 1 warning: sub (gradient)")
    assert "No discrepancies" not in page


def test_the_headline_names_the_ops_at_fault_and_links_them():
    report = minimal(discrepancies=[
        _finding(id="Ftanh", blame=dict(_finding()["blame"], op="tanh"), expression="tanh(x0)"),
        _finding(id="Fmul", kind="value", blame=dict(_finding()["blame"], op="mul"), expression="x0 * x0"),
        _finding(id="Ftanh2", blame=dict(_finding()["blame"], op="tanh"), expression="tanh(x0)", point={"x0": 2.0}),
    ], warnings=[_finding(id="Fw", severity="warning")])
    page = render_html(report)
    assert banner(page) == ("error", "3 errors: tanh (gradient ×2), mul (value)")
    head = page[page.index('class="banner'):page.index("</strong>")]
    assert re.findall(r'href="#(\w+)"', head) == ["Ftanh", "Fmul"]  # each op to its first finding
    assert "1 warning" in page[page.index("</strong>"):page.index("</div>", page.index("</strong>"))]


def test_real_headlines(real_reports):
    assert banner(render_html(real_reports["float32"])) == ("error", "1 error: tanh (gradient)")
    assert banner(render_html(real_reports["student"])) == ("error", "2 errors: mul (invalid), sub (exception)")
    assert banner(render_html(real_reports["hostile"])) == ("error", "1 error: log (exception)")


def test_the_clean_verdict_says_what_was_judged_and_what_was_not(real_reports):
    report = real_reports["clean"]
    judged = report["summary"]["judged"]
    values, partials = judged["values"], judged["partials"]
    page = render_html(report)
    assert banner(page) == ("ok", f"No discrepancies in {report['examples']} examples")
    detail = "".join(scan(page[page.index("</strong>"):page.index("</div>", page.index("</strong>"))]).text)
    assert detail.startswith(f"no discrepancy: {values['judged']:,} of {sum(values.values()):,} values and "
                             f"{partials['judged']:,} of {sum(partials.values()):,} partial derivatives judged; not judged: ")
    assert f"outside the domain: {values['outside-domain']:,} values, {partials['outside-domain']:,} partials" in detail
    for reason in (set(values) | set(partials)) - {"judged"}:  # every reason, in words
        assert SHORT_REASONS[reason] + ": " in detail, reason
    assert "every value and gradient agreed" not in page  # the vague old sentence


def test_the_clean_verdict_counts_with_separators_and_a_report_without_counts():
    report = minimal(examples=300, summary={"judged": {"values": {"judged": 2372, "outside-domain": 28},
                                                       "partials": {"judged": 4650, "outside-domain": 150}}})
    page = render_html(report)
    assert "no discrepancy: 2,372 of 2,400 values and 4,650 of 4,800 partial derivatives judged; not judged: " \
           "outside the domain: 28 values, 150 partials." in page
    assert "every value and gradient agreed with the exact reference" in render_html(minimal())  # nothing recorded


def test_what_was_not_judged_is_said_in_the_campaigns_number_format():
    """A float32 campaign judges in float32: beyond float32, not float64."""
    judged = {"values": {"judged": 90, "not-representable": 4, "noise-beyond-float64": 6},
              "partials": {"judged": 95, "ill-conditioned": 5}}
    for dtype, shown, hidden in (("float32", "float32", "float64"), (None, "float64", "float32")):
        settings = {"dtype": dtype} if dtype else {}
        page = render_html(minimal(examples=100, settings=settings, summary={"judged": judged}))
        assert f"beyond {shown}: 4 values" in page and f"noise beyond {shown}: 6 values" in page
        assert f"within {shown} noise of a domain edge" in page  # the "what was judged" table
        assert f"beyond {hidden}" not in page and f"within {hidden} noise" not in page


def test_nothing_judged_is_not_an_all_clear():
    report = minimal(summary={"judged": {"values": {"judged": 0, "outside-domain": 40}, "partials": {"judged": 0, "outside-domain": 40}}})
    page = render_html(report)
    assert banner(page) == ("warning", "Nothing judged in 7 examples")
    assert "No discrepancies" not in page


def test_the_campaigns_nothing_judged_reason_is_the_verdict():
    page = render_html(minimal(examples=0, nothing_judged="nothing was judged: every example used a quarantined op"))
    assert banner(page) == ("warning", "Nothing judged in 0 examples")
    assert "nothing was judged: every example used a quarantined op; not a pass" in page
    assert "No discrepancies" not in page


def test_the_first_finding_comes_before_the_summary_tables(real_reports):
    page = render_html(real_reports["student"])
    first = page.index("<article")
    for later in ("Run details", "Findings by op", "Points by class", "What was judged"):
        assert page.index(later) > first, later
    assert page.index('class="strip"') < first and page.index('class="banner') < first


def test_the_index_tells_findings_of_one_expression_apart():
    base = _finding()
    findings = [
        _finding(id="Fa", expression="tanh(x0)", point={"x0": 1.0}, message="engine d/dx0 is 0.41, exact 0.42"),
        _finding(id="Fb", kind="value", expression="tanh(x0)", point={"x0": 1e308}, message="engine value is nan; exact 1"),
        _finding(id="Fc", kind="exception", expression="tanh(x0)", point={"x0": 700.0}, message="engine raised OverflowError " + "x" * 300),
    ]
    page = render_html(minimal(discrepancies=findings))
    table = page[page.index('<table class="index">'):page.index("</table>", page.index('<table class="index">'))]
    rows = ["".join(scan(row).text) for row in re.findall(r"<tr class=\"sev-error\">(.*?)</tr>", table, re.S)]
    assert len(rows) == 3 and len(set(rows)) == 3
    assert "x0 = 1.0" in rows[0] and "engine d/dx0 is 0.41, exact 0.42" in rows[0]
    assert "x0 = 1e+308" in rows[1] and "value · sub" in rows[1] and "engine value is nan" in rows[1]
    assert "x0 = 700.0" in rows[2] and rows[2].endswith("…") and len(rows[2]) < 250  # long messages are cut
    assert 'title="engine raised OverflowError ' + "x" * 300 + '"' in table  # in full on hover
    assert base  # unchanged helper


def test_the_oracle_table_puts_the_wrong_quantity_first():
    two = dict(_finding()["oracles"])
    two["reference"] = dict(two["reference"], gradient=[0.0, 1.0])
    two["engine"] = dict(two["engine"], gradient=[0.0, 2.0], gradient_error=[0.0, 1.0])
    f = _finding(variables=["x0", "x1"], point={"x0": 1.0, "x1": 2.0}, variable="x1", oracles=two,
                 gradient_floor={"x0": 1e-16, "x1": 1e-16})
    view = _page(minimal(discrepancies=[f]), None)["errors"][0]["table"]
    assert view["columns"] == ["∂/∂x1", "value", "∂/∂x0"]  # no status column: every oracle is ok
    engine = next(r for r in view["rows"] if r["name"] == "engine")
    assert [c["outlier"] for c in engine["cells"]] == [True, False, False]
    value = _finding(kind="value", variable=None)
    value["oracles"]["engine"] = dict(value["oracles"]["engine"], value=0.5, value_error=0.5, gradient_error=[0.0], gradient=[0.0])
    assert _page(minimal(discrepancies=[value]), None)["errors"][0]["table"]["columns"][0] == "value"
    raised = _finding(kind="exception")
    raised["oracles"]["engine"] = {"status": "exception", "value": None, "gradient": None, "error": "ValueError: <b>no</b>"}
    page = render_html(minimal(discrepancies=[raised]))
    assert _page(minimal(discrepancies=[raised]), None)["errors"][0]["table"]["columns"][:2] == ["status", "value"]
    assert '<td class="status outlier">exception</td>' in page
    # the engine's error message gets a row of its own, spanning the table, escaped
    assert re.search(r'<tr class="errrow blamed"><td colspan="4"><span class="errtext">engine: ValueError: &lt;b&gt;no&lt;/b&gt;', page)


def test_extra_fields_are_shown_as_text():
    f = _finding(extra={"answers": [[1.0, "<b>2</b>"], [1.0, 3.0]], "test": "tests/x.py::test_y"})
    page = render_html(minimal(discrepancies=[f]))
    assert '<dt>answers</dt><dd><code>[[1.0, &#34;&lt;b&gt;2&lt;/b&gt;&#34;], [1.0, 3.0]]</code></dd>' in page
    assert "tests/x.py::test_y" in page


def test_a_value_finding_plot_has_an_engine_line():
    f = _finding(kind="value", variable=None, steps=[[0.1, 0.5, 0.25], [0.01, 0.05, 0.0025], [0.001, 0.005, 2.5e-5]])
    f["oracles"]["reference"]["gradient"] = [0.0]
    f["oracles"]["engine"] = dict(f["oracles"]["engine"], value=0.5, value_error=0.5, gradient=[1e-3], gradient_error=[1e-3])
    page = render_html(minimal(discrepancies=[f]))
    svg = re.search(r'<svg[^>]*class="plot".*?</svg>', page, re.S).group(0)
    root = _parse_svg(svg)
    texts = [t.text or "" for t in root.iter(SVG + "text")]
    assert "engine ∂/∂x0 error 0.001" in texts
    assert [line for line in root.iter(SVG + "line") if line.get("stroke-dasharray") == "6 4" and line.get("x2") != line.get("x1")]
    assert any(t.startswith("engine value error 0.5 (floor 1e-16") for t in texts)
    exact = _finding(kind="value", variable=None)
    exact["oracles"]["engine"] = dict(exact["oracles"]["engine"], value=0.5, value_error=0.5, gradient_error=[0.0])
    texts = [t.text for t in _parse_svg(re.search(r'<svg[^>]*class="plot".*?</svg>', render_html(minimal(discrepancies=[exact])), re.S).group(0)).iter(SVG + "text")]
    assert "engine ∂/∂x0 error 0 (exact: not on a log scale)" in texts  # named even when it cannot be drawn


def test_a_value_finding_without_a_plot_says_what_the_engine_gave(real_reports):
    f = _finding(kind="value", variable=None, steps=[])
    f["oracles"]["engine"] = dict(f["oracles"]["engine"], value="nan", value_error="nan")
    page = render_html(minimal(discrepancies=[f]))
    assert "The engine&#39;s value is nan, the exact one 0.0: error nan, where float64 allows 1e-16." in page


def test_graph_nodes_show_exact_and_engine_gradients_in_gradient_findings(real_reports):
    f = real_reports["float32"]["discrepancies"][0]
    page = render_html(real_reports["float32"])
    svg = re.search(r'<svg[^>]*class="graph".*?</svg>', page, re.S).group(0)
    texts = [t.text for t in _parse_svg(svg).iter(SVG + "text")]
    exact, engine = f["oracles"]["reference"]["gradient"][0], f["oracles"]["engine"]["gradient"][0]
    assert f"grad {exact!r}" in texts  # the variable's adjoint is the reference partial
    assert f"engine grad {engine!r}" in texts
    assert "grad 1.0" in texts  # the output's
    red = [t.text for t in _parse_svg(svg).iter(SVG + "text") if t.get("fill") == "#b42318"]
    assert f"engine grad {engine!r}" in red and "grad 1.0" not in red
    # an inner node's exact adjoint comes from the JSON's `grad` when the verifier writes it
    nodes = [{"id": 0, "op": "var", "label": "x0", "args": [], "value": 1.0, "engine_grad": 3.0},
             {"id": 1, "op": "exp", "label": "exp", "args": [0], "value": 2.7, "grad": 0.5, "engine_grad": 0.25, "blamed": True},
             {"id": 2, "op": "neg", "label": "-", "args": [1], "value": -2.7, "grad": -1.0, "engine_grad": -1.0}]
    texts = [t.text for t in _parse_svg(graph_svg(nodes, grads=True)).iter(SVG + "text")]
    assert "grad 0.5" in texts and "engine grad 0.25" in texts
    assert "engine grad -1.0" not in texts  # agrees with the exact one: not repeated
    assert "engine grad 3.0" in texts  # no exact adjoint known: shown, not marked wrong
    assert not any(t.startswith(("grad", "engine grad")) for t in
                   (x.text for x in _parse_svg(graph_svg(nodes)).iter(SVG + "text")))  # value findings: values only


def test_finding_card_is_a_self_contained_escaped_fragment(real_reports):
    f = real_reports["float32"]["discrepancies"][0]
    card = finding_card(f, engine=real_reports["float32"]["engine"])
    assert card.startswith('<div class="cg cg-fragment"><style>') and card.rstrip().endswith("</div>")
    assert unsafe_markup(card) == []
    assert "<script" not in card and "<link" not in card and "@import" not in card
    engine = f["oracles"]["engine"]["gradient"][0]
    assert re.search(rf'<td class="num outlier">{re.escape(repr(engine))}', card)  # the wrong cell, marked
    assert '<code class="expression">tanh(x0)</code>' in card and "x0 = 1.0" in card
    assert "alone as <code>tanh(a)</code>" in card  # the blame
    assert ' id="' + f["id"] + '"' not in card  # no page anchors in a fragment
    # every CSS rule is scoped to the fragment, so it cannot restyle the notebook
    style = card[card.index("<style>") + 7:card.index("</style>")]
    selectors = [rule.split("{")[0] for rule in re.sub(r"/\*.*?\*/", "", style, flags=re.S).split("}") if "{" in rule]
    assert all(part.strip().startswith(".cg") for sel in selectors if not sel.strip().startswith("@")
               for part in sel.split(",")), selectors
    bare = finding_card(f, style=False)  # under a summary_fragment, which carries the same rules
    assert "<style" not in bare and bare.startswith('<div class="cg cg-fragment">')
    hostile = finding_card(hostile_everywhere(copy.deepcopy(f), payload=HOSTILE))
    assert unsafe_markup(hostile) == [] and "alert(2)" in hostile


def test_summary_fragment(real_reports):
    html = summary_fragment(real_reports["student"])
    assert unsafe_markup(html) == [] and html.startswith('<div class="cg cg-fragment">')
    assert banner(html) == ("error", "2 errors: mul (invalid), sub (exception)")
    for f in real_reports["student"]["discrepancies"]:
        assert f["id"] in html and f["expression"] in html
    assert "href=" not in html  # nothing to link to outside the page
    clean = summary_fragment(real_reports["clean"])
    assert banner(clean)[0] == "ok" and "partial derivatives judged" in clean


def test_stopped_runs_say_so():
    page = render_html(minimal(stopped="time-budget", examples=40, examples_requested=300))
    assert "Stopped early" in page and "may be unshrunk" in page and "time budget" in page
    assert "40 of 300 requested" in page
    assert "Stopped early" not in render_html(minimal(stopped="completed"))


def test_findings_by_op_and_run_facts(real_reports):
    report = real_reports["student"]
    page = render_html(report, json_path="out/findings.json")
    for row in report["summary"]["by_op"]:
        assert re.search(rf"<td><a href=\"#F[0-9a-f]+\">{row['op']}</a></td><td>{row['kind']}</td>", page)
    for op in report["ops"]:
        assert op in page
    # The engine as recorded: a file target's absolute path (replayable from anywhere).
    assert report["engine"].endswith("tests/engines/student.py:Value") and Path(report["engine"].rpartition(":")[0]).is_absolute()
    assert f"crossgrad report — {report['engine']}" in page


def test_oracle_findings_sit_in_a_details_block():
    oracle = _finding(id="Ftorch01", severity="warning", cause="oracle", blame={"backend": "torch", "op": None})
    oracle["oracles"]["torch"] = {"status": "ok", "value": 0.0, "gradient": [1e-3], "gradient_error": [1e-3]}
    page = render_html(minimal(oracle_findings=[oracle]))
    assert re.search(r"<details[^>]*>.*<summary>Oracle findings \(1\).*id=\"Ftorch01\".*</details>", page, re.S)
    assert re.search(r'<tr class="blamed">\s*<th scope="row">torch', page)  # torch's row is the one highlighted


def test_minimal_report_renders():
    page = render_html({"engine": "e:V", "seed": 3, "examples": 2, "ops": [], "discrepancies": [
        {"kind": "value", "expression": "x0", "point": {"x0": 1.0}, "blame": {"backend": "engine", "op": None},
         "oracles": {}, "severity": "error", "cause": "engine", "message": "m"}]})
    assert "value · engine" in page and "graph too large to draw" in page


def test_write_html_writes_the_rendered_page(real_reports, tmp_path):
    path = write_html(real_reports["float32"], tmp_path / "report.html", json_path="f.json")
    assert path.read_text(encoding="utf-8") == render_html(real_reports["float32"], json_path="f.json")


# -- the finding section ---------------------------------------------------------------------------------

def test_float32_finding_section(real_reports):
    report = real_reports["float32"]
    f = report["discrepancies"][0]
    page = render_html(report, json_path="run/findings.json")
    assert re.search(r'<h3><span class="kind">gradient</span> · <span class="op">tanh</span>', page)
    # all the digits of the engine's wrong partial, in the highlighted cell
    engine = f["oracles"]["engine"]["gradient"][0]
    assert re.search(rf'<td class="num outlier">{re.escape(repr(engine))}', page)
    assert repr(f["oracles"]["reference"]["gradient"][0]) in page
    for row in ("reference", "engine", "sympy", "torch", "numeric", "noise floor"):
        assert f'<th scope="row">{row}' in page
    assert "∂/∂x0" in page
    assert page.count('<td class="num outlier">') == 1  # only the engine's d/dx0
    # the plain expression under the typeset one
    assert "<math" in page and '<code class="expression">tanh(x0)</code>' in page


def test_reproduction_lines(real_reports):
    report = real_reports["float32"]
    f = report["discrepancies"][0]
    code = "\n".join(scan(render_html(report, json_path="run/my findings.json")).code_text)
    assert f"verifier replay 'run/my findings.json' --id {f['id']}" in code
    snippet = code.split("\n", 1)[1]
    assert snippet == f'from verifier import compare\nprint(compare("tanh(x0)", {{"x0": {f["point"]["x0"]!r}}}, engine="{report["engine"]}"))'
    ast.parse(snippet)
    assert "verifier replay findings.json --id" in render_html(report)


def test_reproduction_snippet_is_python_even_for_hostile_data(real_reports):
    report = hostile_everywhere(copy.deepcopy(real_reports["student"]), payload='"); import os #\n')
    for snippet in scan(render_html(report)).code_text:
        if snippet.startswith("from verifier"):
            tree = ast.parse(snippet)
            assert [type(s).__name__ for s in tree.body] == ["ImportFrom", "Expr"]  # no injected statement


# -- MathML sanitizer ----------------------------------------------------------------------------------

def test_sanitizer_keeps_the_printer_output(real_reports):
    for report in real_reports.values():
        for f in all_findings(report):
            clean = sanitize_mathml(f["mathml"])
            assert clean is not None
            assert ET.fromstring(clean).tag == "{http://www.w3.org/1998/Math/MathML}math"


def test_sanitizer_keeps_whitelisted_markup_and_escapes_text():
    kept = sanitize_mathml('<math xmlns="http://www.w3.org/1998/Math/MathML"><mrow><mi>log</mi><mo>&#x2061;</mo>'
                           '<mo stretchy="false">(</mo><mtext>&lt;script&gt;</mtext><mo stretchy="false">)</mo></mrow></math>')
    assert kept == ('<math xmlns="http://www.w3.org/1998/Math/MathML"><mrow><mi>log</mi><mo>\u2061</mo><mo stretchy="false">(</mo>'
                    '<mtext>&lt;script&gt;</mtext><mo stretchy="false">)</mo></mrow></math>')
    assert sanitize_mathml("<math><mfrac><msqrt><mn>2</mn></msqrt><msup><mi>x</mi><mn>2</mn></msup></mfrac><mspace/></math>")


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><math><mi>&lol3;</mi></math>')


@pytest.mark.parametrize("markup", [
    '<math><mi>x</mi><script>alert(1)</script></math>',
    '<math><mi onerror="alert(1)">x</mi></math>',
    '<math><mi onclick="alert(1)">x</mi></math>',
    '<math><mo stretchy="javascript:alert(1)">(</mo></math>',
    '<math><mi style="background:url(http://x)">x</mi></math>',
    '<math><mtext><img src="x" onerror="alert(1)"/></mtext></math>',
    '<math><mtext>a<b>bold</b></mtext></math>',
    '<math><mtext><script>alert(1)</script></mtext></math>',
    '<!DOCTYPE math [<!ENTITY x "&#60;script&#62;alert(1)&#60;/script&#62;">]><math><mi>&x;</mi></math>',
    '<!DOCTYPE math SYSTEM "http://example.com/evil.dtd"><math><mi>x</mi></math>',
    '<!DOCTYPE math [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><math><mi>&xxe;</mi></math>',
    BILLION_LAUGHS,
    '<math><mi>&nbsp;</mi></math>',  # not an XML entity
    '<math><![CDATA[<script>alert(1)</script>]]></math>',
    '<math><!-- --><mi>x</mi></math>',
    '<?xml-stylesheet href="http://x"?><math><mi>x</mi></math>',
    '<math xmlns="http://www.w3.org/1999/xhtml"><mi>x</mi></math>',
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    '<mrow><mi>x</mi></mrow>',
    '<math><math><mi>x</mi></math></math>',
    '<math><mi xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="javascript:alert(1)">x</mi></math>',
    '<math><semantics><annotation-xml encoding="text/html"><script>alert(1)</script></annotation-xml></semantics></math>',
    '<math><maction actiontype="statusline"><mi>x</mi><mtext>y</mtext></maction></math>',
    '<math>loose text<mi>x</mi></math>',
    '<math><mi>x</mi>tail text</math>',
    '<math><mi>x</mi>',  # not well formed
    '<math>' + '<mrow>' * 500 + '</mrow>' * 500 + '</math>',  # deeper than any formula
    '',
    None,
    42,
])
def test_sanitizer_rejects(markup):
    assert sanitize_mathml(markup) is None


def test_hostile_mathml_falls_back_to_the_plain_expression(real_reports):
    report = copy.deepcopy(real_reports["float32"])
    report["discrepancies"][0]["mathml"] = '<math><mtext><img src="x" onerror="alert(1)"/></mtext></math>'
    page = render_html(report)
    assert "<math" not in page and "<img" not in page.lower()
    assert '<code class="expression">tanh(x0)</code>' in page


# -- the computation graph --------------------------------------------------------------------------------

def _parse_svg(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML: nothing escaped wrongly
    assert root.tag == SVG + "svg"
    return root


def _node_texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.iter(SVG + "text")]


def test_graph_marks_the_blamed_node(real_reports):
    f = real_reports["float32"]["discrepancies"][0]
    root = _parse_svg(graph_svg(f["graph"], id_prefix=f["id"]))
    nodes = [g for g in root.iter(SVG + "g") if "node" in g.get("class", "").split()]
    assert len(nodes) == len(f["graph"])
    blamed = [g for g in nodes if "blamed" in g.get("class", "").split()]
    assert len(blamed) == 1
    assert _node_texts(blamed[0])[0] == "tanh"
    assert blamed[0].find(SVG + "rect").get("stroke") == "#b42318"
    assert len([p for p in root.iter(SVG + "path") if p.get("class") == "edge"]) == 1  # x0 -> tanh


def test_graph_shows_engine_values_that_differ_and_escapes_labels():
    nodes = [
        {"id": 0, "op": "var", "label": "x0<script>", "args": [], "value": 0.5, "engine_value": 0.5},
        {"id": 1, "op": "const", "label": "3", "args": [], "value": 3.0, "engine_value": 3.0},
        {"id": 2, "op": "mul", "label": "*", "args": [0, 0], "value": 0.25, "engine_value": 0.2500001, "blamed": True},
        {"id": 3, "op": "sub", "label": "-", "args": [2, 1], "value": -2.75, "engine_value": "(1+2j)"},
    ]
    svg = graph_svg(nodes, id_prefix='F"><script>')
    assert "<script" not in svg
    root = _parse_svg(svg)
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "x0<script>" in texts  # as text, after parsing
    assert "engine 0.2500001" in texts and "engine (1+2j)" in texts
    assert "engine 0.5" not in texts  # the same as the exact value: not repeated
    edges = [p for p in root.iter(SVG + "path") if p.get("class") == "edge"]
    assert len(edges) == 4  # x0 * x0 draws two edges; x0*x0 - 3 two more


def test_graph_too_large_or_empty():
    chain = [{"id": i, "op": "neg", "label": "-", "args": [i - 1] if i else [], "value": 1.0} for i in range(MAX_GRAPH_NODES + 1)]
    assert graph_svg(chain) is None
    assert graph_svg(chain[:MAX_GRAPH_NODES]) is not None
    assert graph_svg([]) is None
    for graph in ([], chain):
        report = minimal(discrepancies=[_finding(graph=graph)])
        assert "graph too large to draw" in render_html(report)


def test_graph_survives_malformed_nodes():
    nodes = [
        {"id": 0, "op": "var", "label": "x0", "args": None, "value": 1.0},
        {"id": 0, "op": "var", "label": "again", "args": [], "value": 2.0},  # a duplicate id
        {"op": "neg", "label": "-", "args": [0]},  # no id
        {"id": [1], "op": "neg", "args": [0]},  # an id that cannot be one
        "not a node",
        {"id": 2, "op": "neg", "label": "-", "args": [0, [0], 7], "value": -1.0, "blamed": True},
    ]
    root = _parse_svg(graph_svg(nodes))
    assert len([g for g in root.iter(SVG + "g") if "node" in g.get("class", "")]) == 2
    assert "again" not in [t.text for t in root.iter(SVG + "text")]
    render_html(minimal(discrepancies=[_finding(graph=nodes)]))


def test_layout_longest_path_and_barycenter():
    nodes = [
        {"id": 0, "args": []}, {"id": 1, "args": []},
        {"id": 2, "args": [1]}, {"id": 3, "args": [0]},  # crossed if left in id order
        {"id": 4, "args": [2, 0]},  # longest path: one past 2, not one past 0
    ]
    layers = layered_layout(nodes)
    assert [sorted(row) for row in layers] == [[0, 1], [2, 3], [4]]
    assert layers[1] == [3, 2]  # barycenter: 3 sits beside its argument 0
    cyclic = [{"id": 0, "args": [1]}, {"id": 1, "args": [0]}, {"id": 2, "args": [9]}]
    assert sorted(sum(layered_layout(cyclic), [])) == [0, 1, 2]  # drawn, not hung on


# -- the finite-difference plot ---------------------------------------------------------------------------

def test_plot_of_a_real_sweep(real_reports):
    f = real_reports["float32"]["discrepancies"][0]
    exact = f["oracles"]["reference"]["gradient"][0]
    root = _parse_svg(step_plot_svg(f["steps"], exact, variable="x0", engine_error=1e-8, floor=5e-16))
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "step h" in texts and "|difference − exact ∂/∂x0|" in texts
    assert "forward difference" in texts and "central difference" in texts
    assert "10⁻¹" in texts and "10⁻¹³" in texts  # ticks at powers of ten, over the steps' span
    assert any(t.startswith("engine error") for t in texts) and any(t.startswith("float64 noise floor") for t in texts)
    assert len(list(root.iter(SVG + "polyline"))) >= 2


@pytest.mark.parametrize("steps, exact", [
    ([[0.1, 1.0, 1.0], [0.01, 1.0, 1.0]], 1.0),  # every error is zero
    ([[0.1, "nan", "inf"], [0.01, "-inf", None]], 1.0),  # non-finite differences
    ([[0.0, 2.0, 2.0], [-0.1, 2.0, 2.0], ["nan", 2.0, 2.0]], 1.0),  # no usable step
    ([[0.1, 1.1, 1.01]], "nan"),  # no exact partial
    ([[0.1, 1.1, 1.01]], "(1+2j)"),
    ([[0.1, 1.1, 1.01]], None),
    ([], 1.0),
    ([[0.1], [0.1, 2.0]], 1.0),  # malformed rows
])
def test_plot_with_nothing_to_draw(steps, exact):
    assert step_plot_svg(steps, exact) is None


def test_plot_skips_bad_points_and_names_far_lines():
    steps = [[1e-1, 1.1, 1.0], [1e-2, 1.01, 1.0001], [1e-3, "nan", 1.000001], [1e-4, 1.0001, 1.0]]
    root = _parse_svg(step_plot_svg(steps, 1.0, engine_error=float("inf"), floor=1e-300))
    assert len(list(root.iter(SVG + "circle"))) == 3 + 1  # three forward points, one legend mark
    texts = [t.text for t in root.iter(SVG + "text")]
    assert any("(off the scale)" in t for t in texts)  # the floor is named, not drawn
    assert "engine error inf (not finite: not on a log scale)" in texts  # inf: named, not drawn
    assert not [line for line in root.iter(SVG + "line") if line.get("stroke-dasharray") == "6 4" and line.get("x1") != line.get("x2")]
    one = _parse_svg(step_plot_svg([[1e-3, 1.5, 1.5]], 1.0))  # a single point still gets a decade of axis
    assert len([t for t in one.iter(SVG + "text") if (t.text or "").startswith("10")]) >= 2


def test_findings_without_a_plot_say_why():
    zero = _finding(steps=[[0.1, 0.0, 0.0]])
    assert "nothing to draw on a log scale" in render_html(minimal(discrepancies=[zero]))
    undefined = _finding(steps=[])
    assert "No finite-difference sweep" in render_html(minimal(discrepancies=[undefined]))


# -- helpers ------------------------------------------------------------------------------------------------

def _finding(**changes: Any) -> dict[str, Any]:
    f = {
        "id": "F1", "kind": "gradient", "severity": "error", "cause": "engine", "message": "engine d/dx0 is 2.0, exact 0.0",
        "expression": "x0 - x0", "variables": ["x0"], "point": {"x0": 1.0}, "status": "defined", "detail": "",
        "blame": {"backend": "engine", "op": "sub", "form": "a - a", "reason": "sub is wrong alone", "node": 1, "form_point": [1.0]},
        "oracles": {
            "reference": {"status": "ok", "value": 0.0, "gradient": [0.0], "error": "", "value_error": None, "gradient_error": None, "estimate": None},
            "engine": {"status": "ok", "value": 0.0, "gradient": [2.0], "error": "", "value_error": 0.0, "gradient_error": [2.0], "estimate": None},
        },
        "value_floor": 1e-16, "gradient_floor": {"x0": 1e-16}, "variable": "x0", "ratio": 2e16,
        "graph": [{"id": 0, "op": "var", "label": "x0", "args": [], "value": 1.0, "engine_value": 1.0, "engine_grad": 2.0, "blamed": False},
                  {"id": 1, "op": "sub", "label": "-", "args": [0, 0], "value": 0.0, "engine_value": 0.0, "engine_grad": 1.0, "blamed": True}],
        "steps": [[0.1, 0.5, 0.25], [0.01, 0.05, 0.0025]], "mathml": "", "latex": "", "shrunk": True, "original": "", "convention": "",
    }
    f.update(changes)
    return f
