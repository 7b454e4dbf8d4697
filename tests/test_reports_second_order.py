"""Second-order (``hessian``) and forward-mode (``jvp``) findings in the reports:
the JSON schema accepts their sections (non-finite numbers as strings, nulls where
an oracle gave nothing) and rejects broken ones; the card shows a Hessian table
(one row per entry, one column per oracle) and a table of forward- and
reverse-mode partials, the wrong entry marked in words as well as colour, the
unjudged ones greyed with their reason, every string escaped; a report without
such findings renders as before. One browser test lays a Hessian card out at a
phone's width.

The findings are built by hand, in the shape the verifier writes
(``Finding.to_dict``), from a first-order one written out below; only the test
that a report without them is unchanged uses the real campaigns
(``real_reports``).
"""

from __future__ import annotations

import copy
import html
import re
from typing import Any

import pytest

from reports import render_html, validate, write_html
from reports.html import finding_card
from tests.test_reports_browser import chromium, measure  # noqa: F401, F811 - chromium is a fixture
from tests.test_reports_html import HOSTILE, scan, unsafe_markup

HOSTILE_VAR = "<script>alert(1)</script>"


def hessian_section(variables: list[str] | None = None) -> dict[str, Any]:
    """A 2x2 Hessian: entry (0, 1) wrong in the engine, entry (1, 1) at a kink, torch raised."""
    return {
        "variables": variables or ["x0", "x1"],
        "entry": [0, 1],
        "exact": [[-6.1, 1.0], [1.0, "inf"]],
        "exact_text": [["-6.100000000000000000000000", "1.000000000000000000000000"],
                       ["1.000000000000000000000000", "inf"]],
        "floor": [[1.2e-15, 2.2e-16], [2.2e-16, "nan"]],
        "status": [["judged", "judged"], ["judged", "kink"]],
        "rows": {
            "engine": [[-6.1, 3.5], [1.0, "-inf"]],
            "sympy": [[-6.1, 1.0], [1.0, "inf"]],
            "torch": None,
            "differences": [[-6.100000004, 0.99999998], [1.00000002, "nan"]],
        },
        "errors": {"engine": "", "torch": "RuntimeError: <b>trying to backward</b> a second time", "sympy": "",
                   "differences": ""},
        "differences_error": [[4e-9, 3e-9], [3e-9, None]],
    }


def jvp_section(variables: list[str] | None = None) -> dict[str, Any]:
    """Forward mode wrong on the second partial; the engine's reverse mode right."""
    return {
        "variables": variables or ["x0", "x1"],
        "entry": 1,
        "exact": [0.41997434161402614, "-inf"],
        "exact_text": ["0.4199743416140260693944969", "-inf"],
        "floor": [5.6e-17, 1.1e-16],
        "status": ["judged", "judged"],
        "engine": [0.41997434161402614, 2.0],
        "vjp": [0.41997434161402614, "-inf"],
        "error": "",
    }


def second_order_finding(base: dict[str, Any], kind: str, variables: list[str] | None = None) -> dict[str, Any]:
    """``base`` (a real first-order finding) made into a ``hessian`` or ``jvp`` one."""
    f = copy.deepcopy(base)
    names = variables or ["x0", "x1"]
    f["id"] = "Fhessian" if kind == "hessian" else "Fjvp"
    f["kind"] = kind
    f["expression"] = "sin(x0) * x1 + relu(x1) ** 3"
    f["variables"] = names
    f["point"] = {names[0]: 1.0, names[1]: 0.0}
    f["variable"] = None
    f["blame"] = {"backend": "engine", "op": "create_graph" if kind == "hessian" else "forward", "form": "",
                  "reason": "every op is right alone" if kind == "hessian" else "forward mode only", "node": None,
                  "form_point": []}
    f["message"] = ("engine d2f/dx0dx1 is 3.5, exact 1" if kind == "hessian" else "engine forward d/dx1 is 2, exact -inf")
    f["oracles"] = {}  # a second-order finding carries its own evidence
    f["gradient_floor"] = None
    f["steps"], f["steps_variable"], f["graph"] = [], None, []
    f["mathml"] = ""
    f["ratio"], f["shrunk"], f["original"] = None, False, f["expression"]
    f["hessian"] = hessian_section(names) if kind == "hessian" else None
    f["jvp"] = jvp_section(names) if kind == "jvp" else None
    return f


# A first-order finding as Finding.to_dict() writes it (the float32 tanh mutant's,
# trimmed): written out here so that these tests need no campaign run.
FIRST_ORDER: dict[str, Any] = {
    "kind": "gradient", "severity": "error", "cause": "engine",
    "message": "engine d/dx0 is 0.41997435, exact 0.41997434161402614 (error 7.4e-09, floor 5.6e-17)",
    "expression": "tanh(x0)", "variables": ["x0"], "point": {"x0": 1.0}, "status": "defined", "detail": "",
    "blame": {"backend": "engine", "op": "tanh", "form": "tanh(a)", "reason": "tanh alone is wrong at a = 1.0",
              "node": 1, "form_point": [1.0]},
    "oracles": {
        "reference": {"status": "ok", "value": 0.7615941559557649, "gradient": [0.41997434161402614], "error": "",
                      "value_error": None, "gradient_error": None, "estimate": None},
        "engine": {"status": "ok", "value": 0.7615941559557649, "gradient": [0.41997435092926025], "error": "",
                   "value_error": 0.0, "gradient_error": [9.315234113e-09], "estimate": None},
        "torch": {"status": "ok", "value": 0.7615941559557649, "gradient": [0.41997434161402614], "error": "",
                  "value_error": 0.0, "gradient_error": [0.0], "estimate": None},
    },
    "value_floor": 1.1e-16, "gradient_floor": {"x0": 5.6e-17}, "variable": "x0", "ratio": 1.66e8,
    "graph": [
        {"id": 0, "op": "var", "label": "x0", "args": [], "value": 1.0, "engine_value": 1.0, "engine_grad": 0.41997435092926025,
         "blamed": False, "grad": None},
        {"id": 1, "op": "tanh", "label": "tanh", "args": [0], "value": 0.7615941559557649,
         "engine_value": 0.7615941559557649, "engine_grad": 1.0, "blamed": True, "grad": None},
    ],
    "steps": [[0.1, 0.39, 0.4187], [0.01, 0.4178, 0.41996], [0.001, 0.41977, 0.4199743]],
    "steps_variable": "x0", "mathml": "", "latex": "\\tanh{\\left(x_{0} \\right)}", "shrunk": True,
    "original": "tanh(x0) + 0", "convention": "", "extra": {}, "id": "F0a1b2c3d",
}


def make_report() -> dict[str, Any]:
    """A report with a Hessian and a JVP finding, then a first-order one (whose sections are null)."""
    return {
        "schema": "crossgrad-findings/1", "tool": {"name": "crossgrad", "version": "0.1.0"},
        "engine": "engine:Value", "seed": 0, "examples": 40, "examples_requested": 40, "ops": ["mul", "sin", "relu", "tanh"],
        "settings": {"timeout": 10.0, "order": 2, "modes": "fwd,rev"},
        "summary": {"errors": 3, "warnings": 0, "by_op": [
            {"op": "create_graph", "kind": "hessian", "severity": "error", "count": 1},
            {"op": "forward", "kind": "jvp", "severity": "error", "count": 1},
            {"op": "tanh", "kind": "gradient", "severity": "error", "count": 1}]},
        "discrepancies": [second_order_finding(FIRST_ORDER, "hessian"), second_order_finding(FIRST_ORDER, "jvp"),
                          dict(copy.deepcopy(FIRST_ORDER), hessian=None, jvp=None)],
    }


@pytest.fixture()
def report() -> dict[str, Any]:
    return make_report()


def _text(page: str) -> str:
    return " ".join("".join(scan(page).text).split())


def _rows(page: str, table_class: str) -> list[str]:
    """The text of each body row of the first ``table.<table_class>``, as a browser reads it."""
    match = re.search(rf'<table class="[^"]*\b{table_class}\b[^"]*".*?</table>', page, re.S)
    assert match, f"no table.{table_class}"
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
            for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", match.group(0).split("<tbody>")[1], re.S)]


# -- the JSON schema -------------------------------------------------------------------------------

def test_the_schema_accepts_hessian_and_jvp_findings(report):
    validate(report)  # nan/inf strings, null oracle rows, a null floor, order and modes settings


def test_the_schema_accepts_null_sections_and_an_oracle_that_gave_nothing(report):
    r = copy.deepcopy(report)
    h = r["discrepancies"][0]["hessian"]
    h["entry"] = None  # the whole Hessian is wrong (the engine raised)
    h["rows"] = {"engine": None, "sympy": None, "torch": None, "differences": None}
    h["errors"]["engine"] = "TypeError: backward() got an unexpected keyword argument 'create_graph'"
    h["differences_error"] = None
    j = r["discrepancies"][1]["jvp"]
    j["engine"], j["vjp"], j["error"], j["entry"] = None, None, "NotImplementedError: no forward mode", None
    r["discrepancies"][1]["oracles"]["engine"] = {"status": "exception", "value": "(1+2j)"}
    validate(r)


@pytest.mark.parametrize("how, where", [
    ("float nan in the exact Hessian", "$.discrepancies[0].hessian.exact[1][1]"),
    ("entry of three", "$.discrepancies[0].hessian.entry"),
    ("a word for an engine value", "$.discrepancies[0].hessian.rows.engine[0]"),
    ("unknown key", "$.discrepancies[0].hessian"),
    ("no status", "$.discrepancies[0].hessian"),
    ("jvp entry as a list", "$.discrepancies[1].jvp.entry"),
    ("kind misspelled", "$.discrepancies[0].kind"),
    ("order 3", "$.settings.order"),
])
def test_the_schema_rejects_broken_sections(report, how, where):
    r = copy.deepcopy(report)
    h, j = r["discrepancies"][0]["hessian"], r["discrepancies"][1]["jvp"]
    if how == "float nan in the exact Hessian":
        h["exact"][1][1] = float("nan")
    elif how == "entry of three":
        h["entry"] = [0, 1, 2]
    elif how == "a word for an engine value":
        h["rows"]["engine"][0][1] = "three"
    elif how == "unknown key":
        h["extra"] = 1
    elif how == "no status":
        del h["status"]
    elif how == "jvp entry as a list":
        j["entry"] = [1]
    elif how == "kind misspelled":
        r["discrepancies"][0]["kind"] = "hesian"
    elif how == "order 3":
        r["settings"]["order"] = 3
    with pytest.raises(ValueError) as info:
        validate(r)
    assert f"at {where}" in str(info.value), str(info.value)


# -- the card ---------------------------------------------------------------------------------------

def test_the_hessian_card_shows_every_entry_by_oracle_with_the_wrong_one_marked(report):
    card = finding_card(report["discrepancies"][0])
    assert unsafe_markup(card) == []
    assert '<section class="second-order hessian">' in card
    rows = _rows(card, "entries")
    assert len(rows) == 4  # every entry of the 2x2 Hessian, row-major
    head = re.search(r'<table class="oracles entries".*?</thead>', card, re.S).group(0)
    columns = re.findall(r'<th scope="col"[^>]*>([^<]*)', head)
    # the blamed engine first, then the exact value and its floor; torch raised: no column
    assert columns == ["entry", "engine", "exact", "noise floor", "sympy", "differences"]
    wrong = [r for r in rows if "judged wrong" in r]
    assert wrong == [r for r in rows if r.startswith("∂²f/∂x0 ∂x1")] and len(wrong) == 1
    # the engine's value, marked in words for a screen reader and with a visible ✗
    assert "✗ over its noise floor: 3.5 err 2.5" in wrong[0]
    assert "1.000000000000000000000000" in wrong[0] and "2.2e-16" in wrong[0] and "est ± 3e-09" in wrong[0]
    assert card.count('class="num outlier"') == 1  # only the judged engine value over its floor
    assert re.search(r'<tr class="wrong">\s*<th scope="row"><span class="label">∂²f/∂x0 ∂x1</span><span class="mark-label">', card)
    text = _text(card)
    assert "Judged wrong: ∂²f/∂x0 ∂x1: engine 3.5, exact 1.000000000000000000000000 (error 2.5, noise floor 2.2e-16)." in text
    assert "torch: RuntimeError: <b>trying to backward</b> a second time" in text  # the oracle that raised, as text
    assert "&lt;b&gt;trying" in card


def test_unjudged_entries_are_greyed_and_say_why(report):
    card = finding_card(report["discrepancies"][0])
    [kink] = [r for r in _rows(card, "entries") if r.startswith("∂²f/∂x1²")]
    assert "not judged: at a kink" in kink
    assert "-inf" in kink and "nan" in kink  # non-finite values shown as they are, not flagged
    assert re.search(r'<tr class="unjudged">\s*<th scope="row"><span class="label">∂²f/∂x1²</span><span class="why">not judged: at a kink', card)
    assert "greyed rows are not judged" in card


def test_the_jvp_card_shows_forward_reverse_and_exact_partials(report):
    card = finding_card(report["discrepancies"][1])
    assert unsafe_markup(card) == []
    assert '<section class="second-order jvp">' in card and "second-order hessian" not in card
    head = re.search(r'<table class="oracles entries".*?</thead>', card, re.S).group(0)
    assert re.findall(r'<th scope="col"[^>]*>([^<]*)', head) == ["partial", "forward mode", "exact", "noise floor",
                                                                 "reverse mode"]
    first, second = _rows(card, "entries")
    assert first.startswith("∂f/∂x0") and "judged wrong" not in first and "✗" not in first
    # 2.0 for -inf: no finite error to weigh against the floor, but wrong all the same
    assert second.startswith("∂f/∂x1 ✗ judged wrong") and "✗ over its noise floor: 2.0" in second and "-inf" in second
    assert card.count('class="num outlier"') == 1  # the reverse mode's -inf is right
    assert "Judged wrong: ∂f/∂x1: forward mode 2.0, exact -inf (noise floor 1.1e-16)." in _text(card)


def test_an_engine_that_gave_no_hessian_or_tangents_is_named_with_its_message(report):
    h = copy.deepcopy(report["discrepancies"][0])
    h["hessian"]["rows"]["engine"] = None
    h["hessian"]["errors"]["engine"] = "TypeError: <i>create_graph</i>\nis not supported"
    h["hessian"]["entry"] = None
    card = finding_card(h)
    text = _text(card)
    assert "engine: TypeError: <i>create_graph</i> is not supported" in text  # one line
    assert "Judged wrong" not in text and "judged wrong" not in text
    head = re.search(r'<table class="oracles entries".*?</thead>', card, re.S).group(0)
    assert "engine" not in re.findall(r'<th scope="col"[^>]*>([^<]*)', head)
    j = copy.deepcopy(report["discrepancies"][1])
    j["jvp"].update(engine=None, error="NotImplementedError: no <forward> mode")
    text = _text(finding_card(j))
    assert "forward mode: NotImplementedError: no <forward> mode" in text
    assert "Judged wrong: ∂f/∂x1: forward mode nothing, exact -inf" in text


def test_hostile_variable_names_and_texts_are_escaped(report):
    for kind in ("hessian", "jvp"):
        f = second_order_finding(report["discrepancies"][2], kind, variables=["x0", HOSTILE_VAR])
        f["message"] = HOSTILE
        f[kind]["status"] = ([["judged", "judged"], ["judged", HOSTILE]] if kind == "hessian" else ["judged", HOSTILE])
        f[kind]["exact_text"] = ([["1", "2"], ["3", HOSTILE]] if kind == "hessian" else ["1", HOSTILE])
        card = finding_card(f)
        assert unsafe_markup(card) == [], kind
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
        text = _text(card)
        assert (f"∂²f/∂x0 ∂{HOSTILE_VAR}" if kind == "hessian" else f"∂f/∂{HOSTILE_VAR}") in text
        assert f"not judged: {HOSTILE}" in text and HOSTILE in text


def test_malformed_sections_render_without_raising(report):
    f = copy.deepcopy(report["discrepancies"][0])
    f["hessian"] = {"variables": "x0", "entry": [9, "a"], "exact": [[1.0]], "rows": {"engine": "oops", "mine": [[1]]},
                    "status": None, "errors": ["not", "a", "dict"]}
    card = finding_card(f)
    assert unsafe_markup(card) == [] and "second-order hessian" in card
    f["hessian"], f["jvp"] = "not a dict", {"entry": True, "engine": [1.0, 2.0, 3.0]}
    card = finding_card(f)
    assert "second-order hessian" not in card and "second-order jvp" in card


def test_the_page_shows_both_sections_and_stays_inert(report):
    page = render_html(report)
    assert unsafe_markup(page) == []
    assert page.count('<section class="second-order hessian">') == 1 and page.count('<section class="second-order jvp">') == 1
    assert "hessian · create_graph" in _text(page) and "jvp · forward" in _text(page)
    assert "order" in page and "fwd,rev" in page  # the settings table


def test_a_report_without_second_order_findings_is_unchanged(real_reports):
    for name in ("float32", "student", "hostile"):
        before = render_html(real_reports[name], json_path="f.json")
        nulls = copy.deepcopy(real_reports[name])
        for f in nulls["discrepancies"] + nulls.get("warnings", []) + nulls.get("oracle_findings", []):
            f["hessian"] = f["jvp"] = None  # what Finding.to_dict writes for every other kind
        validate(nulls)
        assert render_html(nulls, json_path="f.json") == before, name
        assert "second-order" not in before.split("</style>", 1)[1]


def test_the_notebook_card_is_the_report_card(report):
    from verifier.display import finding_html

    f = report["discrepancies"][0]
    shown = finding_html(f, "text fallback")
    assert shown == finding_card(f)
    assert '<section class="second-order hessian">' in shown and "judged wrong" in shown


# -- in a browser, at a phone's width ----------------------------------------------------------------

MEASURE_ENTRIES = """
(function () {
  function box(e) { var b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }
  var out = {width: window.innerWidth, height: window.innerHeight,
             pageWidth: document.documentElement.scrollWidth, tables: []};
  document.querySelectorAll('section.second-order').forEach(function (s) {
    var wrap = s.querySelector('.table-wrap'), card = s.closest('article');
    var wrong = s.querySelector('tr.wrong > th');
    out.tables.push({cls: s.getAttribute('class'), card: box(card), section: box(s), wrap: box(wrap),
                     scrollWidth: wrap.scrollWidth, clientWidth: wrap.clientWidth,
                     table: box(s.querySelector('table')), wrong: wrong ? box(wrong) : null,
                     wrongText: wrong ? wrong.textContent : ''});
  });
  var pre = parent.document.createElement('pre');
  pre.id = 'measurements';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();
"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_the_hessian_table_scrolls_in_its_box_not_the_page(report, chromium, tmp_path, width):  # noqa: F811
    page = write_html(report, tmp_path / "second-order.html")
    m = measure(chromium, page, tmp_path, width, 2400, shot=tmp_path / f"second-order-{width}.png",
                script=MEASURE_ENTRIES)
    assert m["pageWidth"] <= width, "the page scrolls sideways"
    assert [t["cls"] for t in m["tables"]] == ["second-order hessian", "second-order jvp"]
    for t in m["tables"]:
        left, _, right, _ = t["card"]
        assert left - 0.5 <= t["wrap"][0] and t["wrap"][2] <= right + 0.5, (t["cls"], width)  # the box fits the card
        assert "judged wrong" in t["wrongText"]
        # the wrong entry's name is on screen without scrolling (the row header is sticky anyway)
        assert t["wrong"] and t["wrap"][0] - 0.5 <= t["wrong"][0] and t["wrong"][2] <= t["wrap"][2] + 0.5
    hessian = m["tables"][0]
    if width == 390:  # too wide for a phone: it scrolls inside its own box
        assert hessian["scrollWidth"] > hessian["clientWidth"]
    else:
        assert hessian["scrollWidth"] <= hessian["clientWidth"]
