"""How results show in a notebook and on a terminal: short reprs, HTML views and
progress.

The HTML comes from :mod:`reports.html` (``finding_card``, ``summary_fragment``:
the very cards of the HTML report) whenever it has them; this module only picks
what to show and, if ``reports`` cannot render, falls back to an escaped ``<pre>``
of the text. Nothing here computes or judges anything.

Example:
    >>> plural(1, "example"), plural(3, "warning"), plural(2, "is", "are")
    ('1 example', '3 warnings', '2 are')
    >>> "&lt;b&gt;" in html_text("<b>")
    True
"""

from __future__ import annotations

import html
import re
import time
from typing import Any, Callable, Mapping, Sequence

__all__ = ["plural", "html_text", "finding_html", "result_html", "comparison_html", "NotebookProgress",
           "notebook_progress", "in_notebook", "MAX_CARDS"]

MAX_CARDS = 20  # finding cards in a notebook view; the HTML report holds them all
_STYLE = "font-family:monospace;white-space:pre-wrap;margin:0"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 example"``, ``"2 examples"`` (``words``: an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def html_text(text: str) -> str:
    """Plain text as an escaped, preformatted HTML fragment."""
    return f'<pre style="{_STYLE}">{html.escape(str(text))}</pre>'


def _reports_html(name: str) -> Callable[..., str] | None:
    """``reports.html.<name>`` if the reports package has it (and can be imported)."""
    try:
        from reports import html as pages
    except Exception:  # noqa: BLE001 - jinja2 missing, or reports mid-edit: fall back to text
        return None
    return getattr(pages, name, None)


def finding_html(finding: Mapping[str, Any], text: str, *, engine: str | None = None,
                 json_path: str | None = None) -> str:
    """A finding's card (``finding``: its ``to_dict()``), the report's own; ``text``
    (escaped) if the report cannot render it."""
    card = _reports_html("finding_card")
    if card is not None:
        try:
            options: dict[str, Any] = {"json_path": json_path}
            if engine:
                options["engine"] = engine
            return card(finding, **options)
        except Exception:  # noqa: BLE001 - a view must never raise in a notebook
            pass
    return html_text(text)


def result_html(report: Mapping[str, Any], text: str, cards: Sequence[tuple[Mapping[str, Any], str]],
                engine: str | None = None) -> str:
    """A campaign: its verdict and findings by op (``summary_fragment``), then each
    finding's card, at most :data:`MAX_CARDS` of them.

    Args:
        report: the campaign's ``to_dict()``.
        text: the short text view, shown if the report cannot render.
        cards: ``(finding.to_dict(), str(finding))`` for each finding to show.
        engine: the engine's target, for the cards' reproducers.
    """
    summary = _reports_html("summary_fragment")
    head = None
    if summary is not None:
        try:
            head = summary(report)
        except Exception:  # noqa: BLE001
            head = None
    parts = [head or html_text(text)]
    for data, line in cards[:MAX_CARDS]:
        parts.append(finding_html(data, line, engine=engine))
    if len(cards) > MAX_CARDS:
        parts.append(html_text(f"... and {plural(len(cards) - MAX_CARDS, 'more finding')}: "
                               "result.write_report('report.html') writes them all"))
    return "\n".join(parts)


def _table(rows: Sequence[Sequence[str]]) -> str:
    """A header row and body rows as an HTML table, every cell escaped."""
    table = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr></thead>", "<tbody>"]
    for row in rows[1:]:
        table.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    table.append("</tbody></table>")
    return "".join(table)


def comparison_html(rows: Sequence[Sequence[str]], head: str, tail: Sequence[str],
                    cards: Sequence[tuple[Mapping[str, Any], str]], engine: str | None = None,
                    more: Sequence[tuple[str, Sequence[Sequence[str]]]] = ()) -> str:
    """A comparison: a heading line, the oracle table, ``more`` tables each under its
    caption (the Hessian at order 2), the verdict lines (blame included), then each
    engine finding's card."""
    parts = [f"<p>{html.escape(head)}</p>", _table(rows)]
    parts += [f"<p>{html.escape(caption)}</p>" + _table(table) for caption, table in more if table]
    if tail:
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in tail) + "</ul>")
    parts += [finding_html(data, line, engine=engine) for data, line in cards]
    return '<div class="cg-comparison">' + "\n".join(parts) + "</div>"


# -- progress ---------------------------------------------------------------------

def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (a shell with a kernel: Jupyter, Colab,
    VS Code), where output can be updated in place."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class NotebookProgress:
    """A progress line in a notebook cell, updated in place: ``checking 120/300`` then
    ``shrinking 1/3``; cleared by :meth:`close`. Updates at most every
    ``interval`` seconds, and at each phase's start and end.

    Args:
        show: ``show(html) -> handle`` with ``handle.update(html)``; default
            IPython's ``display(..., display_id=True)``.
    """

    def __init__(self, show: Callable[[str], Any] | None = None, interval: float = 0.2) -> None:
        self._show = show or _ipython_show
        self._handle: Any = None
        self._interval = interval
        self._last = -float("inf")
        self._phase = ""
        self._started = time.monotonic()

    def __call__(self, done: int, total: int, phase: str = "checking") -> None:
        now = time.monotonic()
        if done < total and phase == self._phase and now - self._last < self._interval:
            return
        self._last, self._phase = now, phase
        seconds = now - self._started
        text = f"{phase} {done}/{total} · {seconds:.0f} s"
        fragment = (f'<div class="cg-progress"><progress value="{int(done)}" max="{max(int(total), 1)}"></progress> '
                    f"{html.escape(text)}</div>")
        if self._handle is None:
            self._handle = self._show(fragment)
        else:
            self._handle.update(fragment)

    def close(self) -> None:
        """Clear the line (the result shows what was found)."""
        if self._handle is not None:
            self._handle.update("")
            self._handle = None


def _bundle(fragment: str) -> dict[str, str]:
    """The fragment as HTML and as plain text (a console shows the text)."""
    return {"text/html": fragment, "text/plain": html.unescape(re.sub(r"<[^>]*>", "", fragment)).strip()}


class _Shown:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def update(self, fragment: str) -> None:
        self.handle.update(_bundle(fragment), raw=True)


def _ipython_show(fragment: str) -> _Shown:
    from IPython.display import display

    return _Shown(display(_bundle(fragment), raw=True, display_id=True))


def notebook_progress() -> NotebookProgress | None:
    """A :class:`NotebookProgress` in a notebook, None elsewhere (a script stays quiet)."""
    return NotebookProgress() if in_notebook() else None
