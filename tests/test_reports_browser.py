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
        self.headings: list[str] = []  # the text of each h3

    def _classes(self) -> tuple[str, ...]:
        return tuple(c for _, attrs in self.stack for c in (attrs.get("class") or "").split())

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, dict(attrs), self._classes()))
        if tag == "h3":
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
        if any(t == "h3" for t, _ in self.stack):
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
