"""Re-running recorded findings: does it still fail there?

Every finding is judged again at its expression and point, whatever its severity
and kind: an engine finding (error or warning: a wrong value or gradient, an
exception, an invalid result, a crash or a hang) against the engine, and an oracle
finding (torch disagreeing with the exact reference) against that oracle. It still
fails if the re-judged point shows anything for that backend; it is fixed only when
the point is clean.

Example:
    >>> import json, tempfile, pathlib
    >>> report = {"engine": "engine:Value", "discrepancies": [{"id": "F1", "kind": "gradient",
    ...     "expression": "tanh(x0)", "point": {"x0": 1.0}, "blame": {"backend": "engine", "op": "tanh"}}]}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.json"
    >>> _ = path.write_text(json.dumps(report))
    >>> _, chosen = load_findings(path, "F1")
    >>> replay_finding("engine:Value", chosen[0])[0]
    False
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from verifier import torch_oracle
from verifier.evaluate import CaseReport, judge_case
from verifier.expr import Program, compile_program
from verifier.hosts import Sandbox
from verifier.judge import format_point, judge_oracle, worst
from verifier.parsing import parse
from verifier.reference import truth_at
from verifier.second_order import FIRST_ORDER, HIGHER_KINDS, Checks, checking

__all__ = ["load_findings", "replay_finding", "ENGINE_KEYS", "ORACLES"]

# The report's lists of engine findings (replayed by default) and of oracle findings
# (replayed by id: they are about torch, which fixing the engine does not change).
ENGINE_KEYS = ("discrepancies", "warnings")
ORACLE_KEY = "oracle_findings"
ORACLES = ("torch",)  # oracles a finding can be replayed against


def load_findings(path: Path, finding_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report and its findings to replay: every engine finding (errors and
    warnings), or the one finding (of any list) with ``finding_id``.

    Raises:
        ValueError: a missing or malformed file, or an unknown id (one line).
    """
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"findings file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"findings file {str(path)!r} is not readable JSON ({error})") from None
    if not isinstance(report, dict) or not isinstance(report.get("discrepancies", []), list):
        raise ValueError(f"findings file {str(path)!r} has no 'discrepancies' list; expected a crossgrad JSON report")
    _define_again(report.get("definitions", []), path)

    def listed(*keys: str) -> list[dict[str, Any]]:
        lists = [report.get(key) for key in keys]
        return [f for found in lists if isinstance(found, list) for f in found if isinstance(f, dict)]

    if finding_id is None:
        return report, listed(*ENGINE_KEYS)
    everything = listed(*ENGINE_KEYS, ORACLE_KEY)
    chosen = [f for f in everything if f.get("id") == finding_id]
    if not chosen:
        known = ", ".join(str(f.get("id")) for f in everything) or "none"
        raise ValueError(f"no finding with id {finding_id!r} in {str(path)!r} (ids there: {known})")
    return report, chosen


def _define_again(records: Any, path: Path) -> None:
    """The report's defined ops, defined again: the report needs nothing else."""
    if not records:
        return
    from verifier.define import restore

    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str)
                                               and isinstance(r.get("formula"), str) for r in records):
        raise ValueError(f"findings file {str(path)!r}: 'definitions' is not a list of op definitions")
    try:
        restore(records)
    except (ValueError, TypeError) as error:
        raise ValueError(f"findings file {str(path)!r}: a recorded op definition does not define again ({error})") from None


def _number(x: Any) -> float:
    if isinstance(x, str):
        return float(x)  # "nan", "inf", "-inf"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"point coordinate {x!r} is not a number")
    return float(x)


def _backend(finding: dict[str, Any]) -> str:
    """``engine``, or the oracle the finding is about (``torch``)."""
    blame = finding.get("blame")
    backend = blame.get("backend") if isinstance(blame, dict) else None
    if backend in (None, "engine") and finding.get("cause") != "oracle":
        return "engine"
    return str(backend or "torch")


def _engine_seen(report: CaseReport) -> str:
    """What the engine still does wrong at the point ("" if nothing)."""
    if report.crash:
        return f"{report.crash[0]}: {report.crash[1]}"
    for judgement in (report.error, report.warning):
        if judgement is not None:
            verdict = worst(judgement.verdicts)
            return f"{verdict.severity} ({verdict.kind}): {verdict.message}"
    return ""


def _oracle_seen(oracle: str, program: Program, point: Sequence[float]) -> str:
    """What ``oracle`` still does wrong at the point, against the exact reference."""
    if oracle not in ORACLES:
        raise ValueError(f"cannot replay a finding about {oracle!r}; expected one of: engine, {', '.join(ORACLES)}")
    result = torch_oracle.evaluate(program, np.asarray([point], dtype=float))
    truth = truth_at(program, point)
    verdicts = judge_oracle(truth, float(result.value[0]), [float(g) for g in result.gradient[0]], program.variables, oracle)
    verdict = worst(verdicts)
    return f"{verdict.severity} ({verdict.kind}): {verdict.message}" if verdict is not None else ""


def replay_finding(engine: str, finding: dict[str, Any], *, timeout: float = 10.0) -> tuple[bool, str]:
    """Judge the finding's expression and point again: the engine for an engine
    finding, the oracle (torch) for an oracle finding.

    Returns:
        ``(still_fails, text)``: ``"still fails: <label>"`` and what was seen, or
        ``"fixed: <label>"`` when the re-judged point is clean for that backend.

    Raises:
        ValueError: a finding without an expression or point, or about an oracle
            that cannot be replayed (one line).
    """
    try:
        expr = parse(finding["expression"])
        point_map = finding["point"]
        values = [_number(point_map[name]) for name in expr.variables]
    except KeyError as missing:
        raise ValueError(f"finding {finding.get('id')!r} lacks {missing}") from None
    except TypeError:
        raise ValueError(f"finding {finding.get('id')!r} has a malformed expression or point") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"finding {finding.get('id')!r} has a non-finite point")
    program = compile_program(expr)
    backend = _backend(finding)
    blame = finding.get("blame") if isinstance(finding.get("blame"), dict) else {}
    severity = f"{finding['severity']} " if finding.get("severity") == "warning" else ""
    label = (f"{finding.get('id', '?')} {severity}{finding.get('kind', '?')} · {blame.get('op') or backend}: "
             f"{finding['expression']} at {format_point(program.variables, values)}")
    if backend == "engine":
        kind = finding.get("kind")
        # A Hessian or forward-mode finding is judged again at that order, in that mode.
        checks = Checks(2 if kind == "hessian" else 1, kind == "jvp") if kind in HIGHER_KINDS else FIRST_ORDER
        with Sandbox(engine, timeout=timeout) as host, checking(checks):
            seen = _engine_seen(judge_case(host, program, [values], oracles=False))
    else:
        seen = _oracle_seen(backend, program, values)
    if seen:
        return True, f"still fails: {label}\n    {seen}"
    return False, f"fixed: {label}\n    {'the engine' if backend == 'engine' else backend} now agrees with the exact reference"
