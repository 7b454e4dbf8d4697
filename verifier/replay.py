"""Re-running recorded findings: does the engine still fail there?

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
from typing import Any

from verifier.evaluate import judge_case
from verifier.expr import compile_program
from verifier.hosts import Sandbox
from verifier.judge import format_point, worst
from verifier.parsing import parse

__all__ = ["load_findings", "replay_finding"]


def load_findings(path: Path, finding_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report and its findings to replay (errors, or the one with ``finding_id``).

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
    everything = [f for key in ("discrepancies", "warnings", "oracle_findings") for f in report.get(key, []) if isinstance(f, dict)]
    if finding_id is None:
        return report, list(report.get("discrepancies", []))
    chosen = [f for f in everything if f.get("id") == finding_id]
    if not chosen:
        known = ", ".join(str(f.get("id")) for f in everything) or "none"
        raise ValueError(f"no finding with id {finding_id!r} in {str(path)!r} (ids there: {known})")
    return report, chosen


def _number(x: Any) -> float:
    if isinstance(x, str):
        return float(x)  # "nan", "inf", "-inf"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"point coordinate {x!r} is not a number")
    return float(x)


def replay_finding(engine: str, finding: dict[str, Any], *, timeout: float = 10.0) -> tuple[bool, str]:
    """Judge the engine again on the finding's expression and point.

    Returns:
        ``(still_fails, one-line text)``.
    """
    try:
        expr = parse(finding["expression"])
        point_map = finding["point"]
        values = [_number(point_map[name]) for name in expr.variables]
    except KeyError as missing:
        raise ValueError(f"finding {finding.get('id')!r} lacks {missing}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"finding {finding.get('id')!r} has a non-finite point")
    program = compile_program(expr)
    label = f"{finding.get('id', '?')} {finding.get('kind', '?')} · {finding.get('blame', {}).get('op')}: {finding['expression']} at {format_point(program.variables, values)}"
    with Sandbox(engine, timeout=timeout) as host:
        report = judge_case(host, program, [values], oracles=False)
    if report.crash:
        return True, f"still fails: {label}\n    {report.crash[1]}"
    if report.error is not None:
        return True, f"still fails: {label}\n    {worst(report.error.verdicts).message}"
    return False, f"fixed: {label}\n    the engine now agrees with the exact reference"
