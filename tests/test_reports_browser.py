"""The HTML page in a real browser: headless Chromium parses and renders it.

``--dump-dom`` gives the DOM after parsing (what the page really contains, as
opposed to what our own tests think the markup means); ``--screenshot`` keeps a
picture of each page in a temp folder (printed in the test output) to look at.

Skipped when Chromium is missing, except in CI (``CI=true``), where a missing
browser is a failure.
"""

from __future__ import annotations

import copy
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports import write_html
from tests.engines.hostile_strings import LOG_MESSAGE
from tests.test_reports_json import all_findings

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
)


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def without_browser(path: str | None, environ: dict[str, str]) -> str | None:
    """What to do when there is no browser: None (there is one), "skip", or "fail" in CI."""
    if path is not None:
        return None
    return "fail" if environ.get("CI") == "true" else "skip"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    action = without_browser(path, dict(os.environ))
    if action == "fail":
        pytest.fail("Chromium is not installed (/usr/bin/chromium): the browser tests must run in CI")
    if action == "skip":
        pytest.skip("Chromium is not installed (apt-get install chromium); set CI=true to make this a failure")
    assert path is not None
    return path


def test_a_missing_browser_fails_in_ci_and_skips_elsewhere():
    assert without_browser(None, {"CI": "true"}) == "fail"
    assert without_browser(None, {"CI": "false"}) == "skip"
    assert without_browser(None, {}) == "skip"
    assert without_browser("/usr/bin/chromium", {"CI": "true"}) is None


def run_chromium(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    profile.mkdir()  # a fresh profile each time: nothing carried over between runs
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )


class DomScan(HTMLParser):
    """Elements (with their attributes and enclosing elements) and text of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.texts: list[tuple[str, tuple[str, ...]]] = []
        self.headings: list[str] = []  # the text of each finding's h3

    def _classes(self) -> tuple[str, ...]:
        return tuple(c for _, attrs in self.stack for c in (attrs.get("class") or "").split())

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, dict(attrs), self._classes()))
        if tag == "h3" and any(t == "article" for t, _ in self.stack):
            self.headings.append("")
        if tag not in ("meta", "br", "link", "img", "input", "hr"):
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, dict(attrs), self._classes()))

    def handle_endtag(self, tag: str) -> None:
        names = [t for t, _ in self.stack]
        if tag in names:
            while self.stack and self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.texts.append((data, tuple(t for t, _ in self.stack)))
        if any(t == "h3" for t, _ in self.stack) and any(t == "article" for t, _ in self.stack):
            self.headings[-1] += data

    def tags(self, name: str) -> list[dict[str, Any]]:
        return [attrs for tag, attrs, _ in self.elements if tag == name]

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.texts)


def dump_dom(chromium: str, page: Path, tmp: Path) -> DomScan:
    done = run_chromium(chromium, tmp, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<body" in done.stdout, done.stderr[-2000:]
    scan = DomScan()
    scan.feed(done.stdout)
    scan.close()
    return scan


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def pages(real_reports, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    folder = tmp_path_factory.mktemp("pages")
    made = {}
    for name in ("hostile", "student", "float32", "clean"):
        made[name] = write_html(real_reports[name], folder / f"{name}.html", json_path=f"{name}.json")
    return made


@pytest.fixture(scope="module")
def doms(chromium, pages, tmp_path_factory) -> dict[str, DomScan]:
    tmp = tmp_path_factory.mktemp("chromium")
    return {name: dump_dom(chromium, path, tmp) for name, path in pages.items() if name != "clean"}


def test_the_dom_holds_no_script_and_no_image(doms):
    for name, dom in doms.items():
        assert dom.tags("script") == [], name
        assert dom.tags("img") == [], name
        assert dom.tags("iframe") == [] and dom.tags("object") == [] and dom.tags("embed") == [], name
        for tag, attrs, _ in dom.elements:
            assert not [a for a in attrs if a.startswith("on")], (name, tag, attrs)


def test_the_hostile_strings_are_text_in_the_dom(doms, real_reports):  # noqa: F811
    dom = doms["hostile"]
    assert LOG_MESSAGE in dom.text
    # in the message, in the engine's oracle row, and in the blame reason
    assert sum(LOG_MESSAGE in t for t, _ in dom.texts) >= 3


def test_each_finding_has_a_heading_an_svg_and_math(doms, real_reports):  # noqa: F811
    for name, dom in doms.items():
        findings = all_findings(real_reports[name])
        articles = [attrs for tag, attrs, _ in dom.elements if tag == "article"]
        assert [a["id"] for a in articles] == [f["id"] for f in findings], name
        assert len(dom.headings) == len(findings), name
        for f, heading in zip(findings, dom.headings):
            assert heading.startswith(f"{f['kind']} · {f['blame']['op']}"), (name, heading)
        svgs_in_findings = [classes for tag, _, classes in dom.elements if tag == "svg" and "finding" in classes]
        assert len(svgs_in_findings) >= len(findings), name  # a graph, and a plot where there is one
        assert dom.tags("math"), name
        assert any(attrs.get("class") == "node blamed" for attrs in dom.tags("g")), name


def test_the_csp_reaches_the_browser(doms):
    for dom in doms.values():
        [meta] = [a for a in dom.tags("meta") if a.get("http-equiv") == "Content-Security-Policy"]
        assert "default-src 'none'" in meta["content"]


def test_the_dom_check_catches_a_script(chromium, tmp_path):
    # The same checks on a page that does carry a script and an image must fail.
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><p>x</p><script>document.title="x"</script><img src="data:,">', encoding="utf-8")
    dom = dump_dom(chromium, page, tmp_path)
    assert dom.tags("script") and dom.tags("img")


def test_screenshots(chromium, pages, real_reports, tmp_path_factory):  # noqa: F811
    """A picture of each page, 1280 px wide, to look at (paths are printed)."""
    folder = tmp_path_factory.mktemp("screenshots")
    hostile = copy.deepcopy(real_reports["float32"])
    hostile["engine"] = "<img src=x onerror=alert(1)>.py:Value"
    everything = dict(pages, engine_name=write_html(hostile, folder / "engine_name.html"))
    for name, page in everything.items():
        shot = folder / f"{name}.png"
        done = run_chromium(chromium, folder, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        assert png_size(shot) == (1280, 2400)
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
        print(f"screenshot: {shot}")


# -- layout, measured in the browser at a phone's and a laptop's width -------------------------------
#
# The page has no script (its CSP forbids one), so the test adds one to a copy: it
# measures the laid-out page and writes the numbers into the DOM, which
# --dump-dom hands back. Headless Chromium will not make a window narrower than
# 500 px, so the copy is laid out in an iframe of the width wanted (srcdoc: the
# same origin as the wrapper, whose DOM the script writes to).

MEASURE = """
(function () {
  function box(e) { var b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }
  function inside(e, selector) { return e.parentElement && e.parentElement.closest(selector) !== null; }
  var out = {width: window.innerWidth, height: window.innerHeight,
             pageWidth: document.documentElement.scrollWidth, cards: [], banner: null};
  var banner = document.querySelector('.banner');
  if (banner) out.banner = {box: box(banner), text: banner.querySelector('strong').textContent};
  document.querySelectorAll('article.finding').forEach(function (card) {
    var c = {id: card.id, box: box(card), heading: box(card.querySelector('h3')), overflowing: [], svgs: [], outliers: []};
    card.querySelectorAll('*').forEach(function (e) {
      // Inside a scroll box (or inside a figure's own drawing) nothing can push the card.
      if (inside(e, 'svg') || inside(e, 'math') || inside(e, '.table-wrap') || inside(e, 'pre')) return;
      var b = box(e);
      if (b[2] - b[0] > 0 && (b[2] > c.box[2] + 0.5 || b[0] < c.box[0] - 0.5))
        c.overflowing.push(e.tagName + '.' + (e.getAttribute('class') || '') + ' ' + JSON.stringify(b));
    });
    card.querySelectorAll('svg').forEach(function (s) { c.svgs.push({cls: s.getAttribute('class'), box: box(s)}); });
    card.querySelectorAll('tr.blamed td.outlier').forEach(function (td) {
      c.outliers.push({text: td.textContent.trim(), box: box(td), wrap: box(td.closest('.table-wrap'))});
    });
    out.cards.push(c);
  });
  var pre = parent.document.createElement('pre');
  pre.id = 'measurements';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();
"""


def measure(chromium: str, page: Path, tmp: Path, width: int, height: int, shot: Path | None = None,
            script: str = MEASURE) -> dict[str, Any]:
    """Lay ``page`` out in a ``width`` x ``height`` viewport and measure it (see
    MEASURE); with ``shot``, also save a picture of that viewport (the measured
    copy: what was measured is what is seen)."""
    import html
    import json
    import re

    text = page.read_text(encoding="utf-8")
    # Only this copy may run a script: the one that measures.
    for quote in ("'", "&#39;"):  # the page's CSP attribute is escaped; a hand-written one may not be
        text = text.replace(f"default-src {quote}none{quote};", f"default-src {quote}none{quote}; script-src {quote}unsafe-inline{quote};")
    text = text.replace("</body>", f"<script>{script}</script></body>")
    wrapper = tmp / f"measured-{width}-{page.name}"
    wrapper.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">'
        f'<iframe style="border:0;display:block;width:{width}px;height:{height}px" srcdoc="{html.escape(text, quote=True)}">'
        "</iframe></body></html>", encoding="utf-8")
    done = run_chromium(chromium, tmp, f"--window-size={max(width, 500)},{height}", "--dump-dom", wrapper.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="measurements">(.*?)</pre>', done.stdout, re.S)
    assert found, "the measuring script did not run: " + done.stderr[-2000:]
    measured = json.loads(html.unescape(found.group(1)))
    assert (measured["width"], measured["height"]) == (width, height), "the viewport is not the size asked for"
    if shot is not None:
        done = run_chromium(chromium, tmp, f"--screenshot={shot}", f"--window-size={max(width, 500)},{height}", wrapper.as_uri())
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        print(f"screenshot: {shot} (the left {width} px)")
    return measured


def _wide_finding(f: dict[str, Any]) -> dict[str, Any]:
    """A finding in three variables whose last partial is the wrong one: the
    column that would scroll off a phone's screen if it were left in place."""
    f = copy.deepcopy(f)
    f["id"] = "Fwide"
    f["expression"], f["variables"], f["variable"] = "tanh(x0) * x1 + x2", ["x0", "x1", "x2"], "x2"
    f["point"] = {"x0": 0.123456789012345, "x1": -3.14159265358979, "x2": 2.71828182845904}
    for oracle in f["oracles"].values():
        if oracle.get("gradient"):
            oracle["gradient"] = [0.7615941559557649, -0.4199743416140261, oracle["gradient"][0]]
        if oracle.get("gradient_error"):
            oracle["gradient_error"] = [0.0, 0.0, oracle["gradient_error"][0]]
        if oracle.get("estimate"):
            oracle["estimate"] = [1e-12, 1e-12, oracle["estimate"][0]]
    f["gradient_floor"] = {v: f["gradient_floor"]["x0"] for v in ("x0", "x1", "x2")}
    f["steps_variable"] = "x2"
    return f


@pytest.fixture(scope="module")
def layout_pages(real_reports, tmp_path_factory) -> dict[str, Path]:
    """Every real finding on one page, with a wide one; and a notebook fragment alone."""
    from reports.html import finding_card

    folder = tmp_path_factory.mktemp("layout")
    report = copy.deepcopy(real_reports["float32"])
    report["discrepancies"] = ([_wide_finding(report["discrepancies"][0])] + report["discrepancies"]
                               + real_reports["student"]["discrepancies"] + real_reports["hostile"]["discrepancies"])
    fragment = folder / "fragment.html"
    fragment.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>card</title></head><body>'
        + finding_card(_wide_finding(real_reports["float32"]["discrepancies"][0])) + "</body></html>",
        encoding="utf-8")
    return {"all": write_html(report, folder / "all.html"), "fragment": fragment}


@pytest.mark.parametrize("width", [420, 1280])
@pytest.mark.parametrize("name", ["all", "fragment"])
def test_nothing_overflows_its_card_and_the_engine_cells_stay_visible(chromium, layout_pages, tmp_path_factory, name, width):
    tmp = tmp_path_factory.mktemp("layout-shots")
    m = measure(chromium, layout_pages[name], tmp, width, 900 if name == "fragment" else 2400,
                shot=tmp / f"{name}-{width}.png" if name == "all" else None)
    assert m["pageWidth"] <= width, "the page scrolls sideways"
    assert len(m["cards"]) == (5 if name == "all" else 1)
    for card in m["cards"]:
        left, _, right, _ = card["box"]
        assert card["overflowing"] == [], (card["id"], width)
        plots = [s for s in card["svgs"] if s["cls"] in ("plot", "graph")]
        for svg in plots:
            assert left <= svg["box"][0] and svg["box"][2] <= right + 0.5, (card["id"], svg, width)
        assert card["outliers"], card["id"]  # every real finding marks the engine's wrong cell
        for cell in card["outliers"]:
            x0, _, x1, _ = cell["box"]
            wx0, _, wx1, _ = cell["wrap"]
            # visible: inside the table's scroll box (not scrolled away) and inside the card
            assert wx0 - 0.5 <= x0 and x1 <= wx1 + 0.5 and x1 <= right, (card["id"], cell, width)
        if card["id"] == "Fwide" or name == "fragment":
            assert any(s["cls"] == "plot" for s in plots)
    if width == 420:  # the plot shrank to the card instead of keeping its 500 px
        plot = next(s for s in m["cards"][0]["svgs"] if s["cls"] == "plot")
        assert plot["box"][2] - plot["box"][0] < 420


@pytest.mark.parametrize("name", ["float32", "student"])
def test_the_first_screen_shows_the_headline_and_the_first_finding(chromium, pages, real_reports, tmp_path, name):
    m = measure(chromium, pages[name], tmp_path, 1280, 800)
    ops = [f["blame"]["op"] for f in real_reports[name]["discrepancies"]]
    assert all(op in m["banner"]["text"] for op in ops)
    assert m["banner"]["box"][3] < 800
    first = m["cards"][0]
    assert first["id"] == real_reports[name]["discrepancies"][0]["id"]
    assert first["heading"][3] < 800
    assert first["outliers"] and all(cell["box"][3] <= 800 for cell in first["outliers"]), first["outliers"]


# -- the defined ops section ----------------------------------------------------------------------

MEASURE_DEFS = """
(function () {
  function box(e) { var b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }
  var out = {width: window.innerWidth, height: window.innerHeight,
             pageWidth: document.documentElement.scrollWidth, defs: []};
  document.querySelectorAll('#defined-ops article.def').forEach(function (card) {
    var c = {name: card.querySelector('h3').textContent.trim(), box: box(card), maths: [], overflowing: []};
    card.querySelectorAll('math').forEach(function (m) { c.maths.push(box(m).concat([m.parentElement.getBoundingClientRect().right])); });
    card.querySelectorAll('*').forEach(function (e) {
      if (e.closest('.def-math') && !e.classList.contains('def-math')) return;  // a wide formula scrolls in its box
      var b = box(e);
      if (b[2] - b[0] > 0 && (b[2] > c.box[2] + 0.5 || b[0] < c.box[0] - 0.5))
        c.overflowing.push(e.tagName + '.' + (e.getAttribute('class') || '') + ' ' + JSON.stringify(b));
    });
    out.defs.push(c);
  });
  var pre = parent.document.createElement('pre');
  pre.id = 'measurements';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();
"""


@pytest.mark.parametrize("width", [420, 1280])
def test_the_defined_ops_render_their_math_without_overflow(chromium, tmp_path, width):
    from tests.test_reports_defined_ops import defined_campaign

    page = write_html(defined_campaign(), tmp_path / "defined.html")
    m = measure(chromium, page, tmp_path, width, 2400, shot=tmp_path / f"defined-{width}.png", script=MEASURE_DEFS)
    assert m["pageWidth"] <= width, "the page scrolls sideways"
    assert [d["name"].split()[0] for d in m["defs"]] == ["gelu(x)", "maximum(x,", "leaky_relu(x)", "log1p(x)"]
    for card in m["defs"]:
        assert card["overflowing"] == [], (card["name"], width)
        assert len(card["maths"]) >= 2, card["name"]  # the formula and its derivatives, as MathML
        for left, top, right, bottom, box_right in card["maths"]:
            assert right - left > 5 and bottom - top > 5, (card["name"], width)  # laid out, not empty
            assert left >= card["box"][0] - 0.5 and min(right, box_right) <= card["box"][2] + 0.5
