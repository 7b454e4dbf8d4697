"""Turning findings (plain data) into a JSON report and one self-contained HTML page.

``reports`` never computes a gradient or judges anything: it takes the dictionary
made by :meth:`verifier.result.CampaignResult.to_dict` and writes it out.

Example:
    >>> import tempfile, pathlib
    >>> report = {"engine": "engine:Value", "seed": 0, "examples": 10, "ops": ["add"], "discrepancies": []}
    >>> validate(report)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(report, folder / "findings.json").name
    'findings.json'
    >>> "No discrepancies in 10 examples" in render_html(report)
    True
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

__all__ = ["write_json", "render_html", "write_html", "finding_card", "summary_fragment", "validate", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "findings.schema.json"


def _write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one,
    never half of one: a temporary file in the same directory (same file system,
    so the rename is atomic), flushed, then ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)  # `--json out/findings.json` in a fresh checkout
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open()
        # would have: the old file's, or the usual one under the umask.
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return target


def _where(path: Any) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _not_json(report: Any) -> tuple[str, str] | None:
    """The first place that is not plain JSON data (what ``json.loads`` could
    return, with finite numbers only), and what is wrong there; None if none."""
    stack: list[tuple[Any, tuple]] = [(report, ())]
    while stack:
        x, path = stack.pop()
        if isinstance(x, dict):
            for key, value in reversed(list(x.items())):
                if not isinstance(key, str):
                    return _where(path), f"key {key!r} is not a string"
                stack.append((value, path + (key,)))
        elif isinstance(x, list):
            stack.extend((value, path + (i,)) for i, value in reversed(list(enumerate(x))))
        elif isinstance(x, float):
            if x != x or x in (float("inf"), float("-inf")):
                name = "nan" if x != x else ("inf" if x > 0 else "-inf")
                return _where(path), f"the float {name} is not JSON: write it as the string {name!r}"
        elif not (x is None or isinstance(x, (str, int))):  # bool is an int
            return _where(path), f"a {type(x).__name__} is not JSON data"
    return None


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report as pretty JSON, atomically.

    The report must already be JSON-safe (``CampaignResult.to_dict()`` writes
    non-finite numbers as ``"nan"``/``"inf"`` strings); nothing is coerced here,
    so a mistake upstream shows up instead of becoming invalid JSON.

    Args:
        report: the report dictionary.
        path: where to write it (missing folders are made); an existing file is
            replaced only on success.

    Returns:
        The path written.

    Raises:
        ValueError: the report holds something JSON cannot represent (a float nan
            or inf, a set, an object...); the file at ``path`` is left untouched.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "findings.json"
        >>> _ = write_json({"engine": "engine:Value", "discrepancies": []}, path)
        >>> json.loads(path.read_text())["engine"]
        'engine:Value'
        >>> write_json({"x": float("nan")}, path)
        Traceback (most recent call last):
        ...
        ValueError: report is not JSON-safe at $.x: the float nan is not JSON: write it as the string 'nan'
    """
    try:
        # Serialize before opening any file: a failure leaves nothing behind.
        text = json.dumps(report, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as error:
        where = _not_json(report)
        detail = f"at {where[0]}: {where[1]}" if where else str(error)
        raise ValueError(f"report is not JSON-safe {detail}") from None
    return _write_atomic(path, text)


def render_html(report: Mapping[str, Any], *, json_path: str | os.PathLike[str] | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script).

    Args:
        report: the report dictionary.
        json_path: the JSON report's path, quoted in the ``verifier replay`` lines
            (default ``findings.json``).

    Returns:
        The page, as a string.

    Example:
        >>> page = render_html({"engine": "<b>x</b>", "seed": 0, "examples": 1, "ops": [], "discrepancies": []})
        >>> "<b>x</b>" in page, "&lt;b&gt;x&lt;/b&gt;" in page
        (False, True)
    """
    from reports.html import render

    return render(report, json_path=None if json_path is None else os.fspath(json_path))


def write_html(report: Mapping[str, Any], path: str | os.PathLike[str], *, json_path: str | os.PathLike[str] | None = None) -> Path:
    """Render the page and write it atomically.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "report.html"
        >>> write_html({"engine": "e:V", "seed": 0, "examples": 1, "ops": [], "discrepancies": []}, path).suffix
        '.html'
    """
    return _write_atomic(path, render_html(report, json_path=json_path))


def finding_card(finding: Mapping[str, Any], *, engine: str = "engine:Value", json_path: str | os.PathLike[str] | None = None) -> str:
    """One finding's card, the one the page shows, as a self-contained HTML
    fragment (scoped inline CSS, no script, every text escaped): for a
    notebook's ``_repr_html_``. See :func:`reports.html.finding_card`.

    Example:
        >>> card = finding_card({"kind": "gradient", "expression": "tanh(x0)", "point": {"x0": 1.0},
        ...                      "blame": {"backend": "engine", "op": "tanh"}, "oracles": {},
        ...                      "severity": "error", "cause": "engine", "message": "d/dx0 is wrong"})
        >>> "<script" in card, "tanh(x0)" in card
        (False, True)
    """
    from reports.html import finding_card as card

    return card(finding, engine=engine, json_path=None if json_path is None else os.fspath(json_path))


def summary_fragment(report: Mapping[str, Any]) -> str:
    """A campaign's verdict (naming the ops at fault, and what was judged), its
    findings by op and an index of its findings, as a self-contained HTML
    fragment. See :func:`reports.html.summary_fragment`.

    Example:
        >>> "No discrepancies in 4 examples" in summary_fragment(
        ...     {"engine": "e:V", "seed": 0, "examples": 4, "ops": [], "discrepancies": []})
        True
    """
    from reports.html import summary_fragment as fragment

    return fragment(report)


_SCHEMA: dict[str, Any] | None = None


def _schema() -> dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return _SCHEMA


def validate(report: Mapping[str, Any]) -> None:
    """Check the report against ``SCHEMA_PATH`` (JSON Schema, draft 2020-12).

    Raises:
        ValueError: one line naming the first failing place, e.g.
            ``$.discrepancies[0].kind: 'oops' is not one of [...]``.
        ImportError: the optional ``jsonschema`` package is not installed.

    Example:
        >>> validate({"engine": "e:V", "seed": 0, "examples": 1, "ops": []})
        Traceback (most recent call last):
        ...
        ValueError: report does not match crossgrad-findings/1 at $: 'discrepancies' is a required property
    """
    try:
        import jsonschema
    except ImportError as error:  # a dev dependency: rendering does not need it
        raise ImportError("reports.validate needs the jsonschema package: pip install 'jsonschema>=4.20'") from error
    where = _not_json(report)
    if where:  # JSON Schema takes a float nan for a number: check plain data first
        raise ValueError(f"report does not match crossgrad-findings/1 at {where[0]}: {where[1]}")
    validator = jsonschema.Draft202012Validator(_schema())
    # best_match: the most relevant error (shallowest place, then into anyOf branches).
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is not None:
        message = error.message.splitlines()[0] if error.message else error.validator
        if len(message) > 200:
            message = message[:197] + "..."
        raise ValueError(f"report does not match crossgrad-findings/1 at {_where(error.absolute_path)}: {message}")
