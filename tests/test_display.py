"""How results show in a notebook (issue 10): short reprs, HTML views that are the
HTML report's own cards, reports written from Python, and progress.

What this file proves:

* ``repr()`` of a campaign result and of a finding is one short line naming the
  verdict, the counts and the ops at fault (not a dataclass dump of thousands of
  characters);
* ``_repr_html_`` of a result is the report's summary (verdict, findings by op) and
  each finding's card, of a finding its card, of a comparison the oracle table, the
  verdict and the blame line, then the card; every text from the engine is escaped;
  without ``reports.html``'s fragments the views fall back to escaped text;
* ``write_report`` writes the HTML page and its JSON beside it, ``write_json`` the
  JSON: both the very report ``to_dict`` makes (through ``reports``);
* ``summary_by_op`` counts how many examples showed each finding;
* progress is reported while shrinking as well as while checking (phase
  ``shrinking``, done/total of the findings), to old two-argument callbacks only
  while checking, and in a notebook as a line updated in place, then cleared.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from reports import validate
from tests.engines import corpus
from verifier import display
from verifier.campaign import CampaignResult, _phased, check_engine
from verifier.comparison import compare
from verifier.findings import Blame, Finding

CALLS: list[tuple[int, int, str]] = []  # the progress calls of the `buggy` campaign


@pytest.fixture(scope="module")
def buggy(tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    """A campaign that finds tanh's gradient wrong (serial, so shrinking is reported)."""
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    path = corpus.write_engine(tmp_path_factory.mktemp("engine"), m.name, m.patches)
    CALLS.clear()
    return check_engine(f"{path}:Value", examples=120, seed=0, ops="add,mul,tanh",
                        progress=lambda done, total, phase: CALLS.append((done, total, phase)))


def hostile_finding() -> Finding:
    return Finding("gradient", "error", "engine", "<script>alert(1)</script> d/dx0 is wrong", "tanh(x0)", ("x0",), (1.0,),
                   "defined", "", Blame("engine", "tanh", "tanh(a)", "<b>tanh</b> is wrong alone"))


def test_plural() -> None:
    assert [display.plural(n, "example") for n in (0, 1, 2)] == ["0 examples", "1 example", "2 examples"]
    assert display.plural(1, "process", "processes") == "1 process" and display.plural(3, "process", "processes") == "3 processes"


def test_result_repr_is_one_short_line(buggy: CampaignResult) -> None:
    text = repr(buggy)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("<CampaignResult ") and "1 error in 120 examples (seed 0); at fault: tanh" in text
    clean = check_engine("engine:Value", examples=3, ops="add", progress=False)
    assert repr(clean) == "<CampaignResult engine:Value: no discrepancies in 3 examples (seed 0)>"


def test_finding_repr_is_one_short_line(buggy: CampaignResult) -> None:
    [finding] = buggy.findings
    text = repr(finding)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith(f"<Finding {finding.id} error gradient · tanh: ")


def test_result_html_is_the_reports_summary_and_cards(buggy: CampaignResult) -> None:
    from reports.html import finding_card, summary_fragment

    page = buggy._repr_html_()
    report = buggy.to_dict()
    assert page.startswith(summary_fragment(report))  # the verdict and findings by op, as the report has them
    [finding] = buggy.findings
    assert finding_card(finding.to_dict(), engine=buggy.engine) in page
    assert "<script" not in page


def test_finding_html_is_its_card_and_escaped() -> None:
    finding = hostile_finding()
    card = finding._repr_html_()
    assert 'class="cg cg-fragment"' in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card and "<script>" not in card
    assert "<b>tanh</b>" not in card


def test_views_fall_back_to_escaped_text_without_the_reports_fragments(monkeypatch: pytest.MonkeyPatch) -> None:
    import reports.html

    monkeypatch.delattr(reports.html, "finding_card")
    monkeypatch.delattr(reports.html, "summary_fragment")
    finding = hostile_finding()
    card = finding._repr_html_()
    assert card.startswith("<pre") and "&lt;script&gt;" in card and "<script>" not in card
    result = check_engine("engine:Value", examples=3, ops="add", progress=False)
    assert "no discrepancies in 3 examples" in result._repr_html_()


def test_comparison_html_keeps_the_blame_line() -> None:
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    c = compare("tanh(x0) * x1", {"x0": 1.0, "x1": 2.0}, engine=corpus.load_engine(m.name, m.patches))
    html = c._repr_html_()
    assert "<table>" in html and "<th>d/dx1</th>" in html
    assert "blame: tanh (" in html and "disagree" in html
    assert 'class="cg cg-fragment"' in html  # the finding's card follows
    assert c.engine  # the engine compared, named in the card's reproducer
    assert compare("x0 * x0", {"x0": 3}, engine=False).engine == ""
    agree = compare("x0 * x0", {"x0": 3})._repr_html_()
    assert "agree" in agree and "cg-fragment" not in agree


def test_write_report_writes_the_page_and_its_json_beside(buggy: CampaignResult, tmp_path: Path) -> None:
    page = buggy.write_report(tmp_path / "out" / "r.html")
    assert page == tmp_path / "out" / "r.html" and "<html" in page.read_text().lower()
    data = json.loads((tmp_path / "out" / "r.json").read_text())
    assert data == json.loads(json.dumps(buggy.to_dict()))  # the very report, not a second one
    validate(data)
    assert "r.json" in page.read_text()  # the page's replay lines name its JSON
    written = buggy.write_json(str(tmp_path / "f.json"))
    assert json.loads(written.read_text()) == data
    other = buggy.write_report(tmp_path / "page.html", json_path=tmp_path / "data" / "x.json")
    assert (tmp_path / "data" / "x.json").exists() and "x.json" in other.read_text()


def test_summary_counts_the_examples_that_showed_each_finding(buggy: CampaignResult) -> None:
    [finding] = buggy.findings
    counted = dataclasses.replace(buggy, occurrences={(finding.kind, "engine", "tanh", "error"): 17})
    assert counted.summary_by_op() == [("tanh", "gradient", "error", 17)]
    assert counted.to_dict()["summary"]["by_op"][0]["count"] == 17
    uncounted = dataclasses.replace(buggy, occurrences={})
    assert uncounted.summary_by_op() == [("tanh", "gradient", "error", 1)]  # never 0: the schema's minimum


def test_progress_covers_shrinking(buggy: CampaignResult) -> None:
    checking = [c for c in CALLS if c[2] == "checking"]
    shrinking = [c for c in CALLS if c[2] == "shrinking"]
    assert checking[-1] == (120, 120, "checking")
    # Every distinct signature seen is shrunk (a warning may be dropped afterwards).
    total = shrinking[0][1]
    assert total >= len(buggy.findings) and shrinking[0] == (0, total, "shrinking")
    assert [c[0] for c in shrinking] == list(range(total + 1)) and shrinking[-1] == (total, total, "shrinking")
    assert CALLS.index(shrinking[0]) > CALLS.index(checking[-1])  # shrinking comes after checking


def test_old_two_argument_callbacks_hear_of_checking_only() -> None:
    seen: list[tuple[int, int]] = []
    callback = _phased(lambda done, total: seen.append((done, total)))
    callback(5, 10, "checking")
    callback(1, 2, "shrinking")
    assert seen == [(5, 10)]
    assert _phased(False) is None


class FakeHandle:
    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def update(self, html: str) -> None:
        self.shown.append(html)


def test_notebook_progress_updates_in_place_then_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []

    def show(html: str) -> Any:
        shown.append(html)
        return FakeHandle(shown)

    bars: list[display.NotebookProgress] = []

    def notebook_progress() -> display.NotebookProgress:
        bars.append(display.NotebookProgress(show, interval=0.0))
        return bars[-1]

    monkeypatch.setattr(display, "notebook_progress", notebook_progress)
    result = check_engine("engine:Value", examples=20, ops="add,mul")  # progress=None: the notebook's line
    assert result.ok and bars
    assert any("checking 20/20" in html and "<progress" in html for html in shown)
    assert shown[-1] == ""  # cleared at the end: the result shows what was found
    shown.clear()
    check_engine("engine:Value", examples=5, ops="add", progress=False)
    assert shown == []


def test_notebook_progress_is_throttled_and_escaped() -> None:
    shown: list[str] = []
    bar = display.NotebookProgress(lambda html: (shown.append(html), FakeHandle(shown))[1], interval=3600)
    for done in range(1, 100):
        bar(done, 100, "checking")
    bar(100, 100, "checking")
    assert [html.split("</progress> ")[1].split(" ·")[0] for html in shown] == ["checking 1/100", "checking 100/100"]
    bar(0, 3, "<i>shrinking</i>")  # a new phase shows at once
    assert "&lt;i&gt;shrinking&lt;/i&gt; 0/3" in shown[-1] and "<i>" not in shown[-1]


def test_outside_a_notebook_there_is_no_progress_line() -> None:
    assert display.in_notebook() is False and display.notebook_progress() is None


def test_the_summary_counts_how_many_examples_showed_each_finding(buggy: CampaignResult) -> None:
    [(op, kind, severity, count)] = buggy.summary_by_op()
    assert (op, kind, severity) == ("tanh", "gradient", "error") and count > 1  # not always 1
