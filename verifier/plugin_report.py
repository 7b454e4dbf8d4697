"""What crossgrad's pytest plugin reports: failures of
:class:`verifier.assertions.GradientMismatch` as the compact table instead of a
traceback, and the session's findings (one per op, kind and cause) as the JSON
report of ``verifier check``.

The hooks stay in :mod:`verifier.pytest_plugin`; this module holds what they
show and write, as plain functions of the session's state.

Example:
    >>> crash = _Crash("test_ops.py", 12, "GradientMismatch: engine d/dx0 is wrong")
    >>> str(_Compact("engine d/dx0 is wrong", crash)), _Compact("", crash).reprcrash is crash
    ('engine d/dx0 is wrong', True)
    >>> str(crash)
    'test_ops.py:12: GradientMismatch: engine d/dx0 is wrong'
"""

from __future__ import annotations

import builtins
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from verifier.pytest_plugin import _State


class _Crash:
    """The one-line form of a failure (pytest's ``reprcrash``)."""

    def __init__(self, path: str, lineno: int, message: str) -> None:
        self.path, self.lineno, self.message = path, lineno, message

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"


class _Compact:
    """A failure shown as text (the table), with a one-line crash message for the
    short summary and ``--tb=line``."""

    def __init__(self, text: str, crash: _Crash) -> None:
        self.text, self.reprcrash = text, crash

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


_GROUP = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+; Hypothesis groups multiple failures


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if _GROUP is not None and isinstance(error, _GROUP):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _mismatches(error: BaseException) -> tuple[list[Any], bool]:
    """The GradientMismatch errors in ``error`` and whether they are all there is."""
    module = sys.modules.get("verifier.assertions")
    if module is None:
        return [], False
    leaves = list(_leaves(error))
    found = [e for e in leaves if isinstance(e, module.GradientMismatch)]
    return found, len(found) == len(leaves)


def _notes(error: BaseException) -> list[str]:
    """Hypothesis's notes (the falsifying example and how to reproduce it), without
    the explain phase's list of lines run: the blame already names the op."""
    kept, explaining = [], False
    for note in getattr(error, "__notes__", ()):
        if not isinstance(note, str):
            continue
        if note.startswith("Explanation:"):
            explaining = True  # then indented lines: "These lines were ...", file:line
        elif explaining and note.startswith(" "):
            continue
        else:
            explaining = False
            kept.append(note)
    return kept


# -- the session's findings ----------------------------------------------------------------


def _report_dict(config: pytest.Config, session: pytest.Session, state: _State) -> dict[str, Any]:
    from hypothesis import settings

    from verifier import __version__

    findings = list(state.findings.values())
    errors = [f for f in findings if f.get("severity") == "error" and f.get("blame", {}).get("backend") == "engine"]
    warnings = [f for f in findings if f.get("severity") != "error" and f.get("blame", {}).get("backend") == "engine"]
    oracle = [f for f in findings if f.get("blame", {}).get("backend") != "engine"]
    by_op: Counter = Counter()
    for f in errors + warnings:  # each merged finding counts the times it was found
        by_op[(f["blame"].get("op") or f["blame"].get("backend"), f["kind"], f["severity"])] += 1 + f.get("extra", {}).get("duplicates", 0)
    points = {k.split(".", 1)[1]: v for k, v in state.stats.items() if k.startswith("points.")}
    interrupted = session.shouldstop or session.exitstatus == pytest.ExitCode.INTERRUPTED
    return {
        "schema": "crossgrad-findings/1",
        "tool": {"name": "crossgrad", "version": __version__},
        "engine": state.target,
        "seed": state.seed,
        # Examples judged over every property test; max_examples (per test) is in settings.
        "examples": state.stats.get("examples", 0),
        "examples_requested": state.stats.get("examples", 0),
        "ops": list(state.supported),
        "ops_supported": list(state.supported),
        "ops_missing": list(state.missing),
        # Reported once, by their test alone; then not generated (verifier_ops).
        "ops_quarantined": sorted(state.failing_alone),
        "duration_s": round(time.time() - state.started, 3),
        "stopped": "interrupted" if interrupted else "completed",
        "workers": max(1, len(state.workers)),
        "settings": {  # flat scalars, as the JSON schema wants
            "runner": "pytest",
            "hypothesis_profile": settings.get_current_profile_name(),
            "max_examples": settings.default.max_examples,
            **{f"tests_{outcome}": n for outcome, n in sorted(Counter(state.outcomes.values()).items())},
            "args": " ".join(config.invocation_params.args),
        },
        "summary": {
            "errors": len(errors),
            "warnings": len(warnings),
            "by_op": [{"op": op, "kind": kind, "severity": sev, "count": n} for (op, kind, sev), n in sorted(by_op.items(), key=str)],
            "points": points,
            "oracle_notes": {},
            "skipped_examples": 0,
        },
        "conventions": sorted({f["convention"] for f in findings if f.get("convention")}),
        "discrepancies": errors,
        "warnings": warnings,
        "oracle_findings": oracle,
    }


def _merge_duplicates(state: _State) -> None:
    """One finding per op, kind and cause: the one with the shortest expression,
    which records how many others it stands for, their ids and the tests that
    found them; the failures shown point their replay line at it."""
    groups: dict[tuple, list[dict]] = {}
    for data in state.findings.values():
        blame = data.get("blame") or {}
        key = (blame.get("backend"), blame.get("op"), data.get("kind"), data.get("cause"), data.get("severity"))
        groups.setdefault(key, []).append(data)
    kept: dict[str, dict] = {}
    renamed: dict[str, str] = {}
    for group in groups.values():
        group.sort(key=lambda f: (len(str(f.get("expression", ""))), str(f.get("id"))))
        first, others = group[0], group[1:]
        if others:
            extra = first.setdefault("extra", {})
            extra["duplicates"] = len(others)
            extra["duplicate_ids"] = [f["id"] for f in others]
            extra["tests"] = list(dict.fromkeys(str(f.get("extra", {}).get("test", "")) for f in group))
            renamed.update((f["id"], first["id"]) for f in others)
        kept[first["id"]] = first
    state.findings = kept
    for shown in state.compact:
        for old, new in renamed.items():
            shown.text = shown.text.replace(f"--id {old}", f"--id {new}  (found here as {old}: same op, kind and cause)")


def _write_json(data: dict[str, Any], path: Path) -> None:
    try:
        from reports import write_json
    except ImportError:  # reports/ not installed or not written yet: plain JSON is enough
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        return
    write_json(data, path)
