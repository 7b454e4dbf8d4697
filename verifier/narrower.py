"""An engine that computes in a narrower format than it says: one finding, not dozens.

An engine judged as float64 that really computes in float32 gets a precision error
at nearly every op (``exp(1)`` off by 1.6e-7), plus overflows at 3.4e38 and
underflows at 1e-38. Each is true, and none is the point: the point is the format.
So when every error finding of a campaign passes once judged in a narrower format
(float32, then bfloat16 and float16), the campaign reports that single fact, with
its evidence, and how to say the format (``--dtype float32`` or the class's
``crossgrad_format``). A real bug among them (a wrong derivative) does not pass in
float32 (at its finding's point, or alone at ordinary inputs), and keeps the
findings as they are.

Example::

    found = narrower_format(host, findings)   # "float32", or None
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Any, Sequence

from verifier.evidence import engine_outcome
from verifier.evaluate import judge_case
from verifier.expr import apply, compile_program, var
from verifier.findings import Finding
from verifier.formats import FORMATS, current, using
from verifier.judge import judge_point
from verifier.ops import OPS
from verifier.parsing import parse
from verifier.reference import truth_at

__all__ = ["narrower_format", "one_finding", "CANDIDATES"]

CANDIDATES = ("float32", "bfloat16", "float16")
# An engine's typical relative error must be at least unit_roundoff / LIKE for the
# format to be its own: float32 errors of 3e-8 are not bfloat16's (4e-3).
LIKE = 16.0
MINIMUM = 2  # one finding is left as it is: it is already one


def _verdicts(host: Any, finding: Finding) -> tuple[Any, list[Any]] | None:
    """The truth and the engine's verdicts at the finding's point, in the current
    format (at the point as that format holds it); None if the engine crashed there."""
    program = compile_program(parse(finding.expression))
    point = tuple(current().round(finding.point))
    outcome, crash_kind, _ = engine_outcome(host, program, point)
    if crash_kind or outcome is None:
        return None
    truth = truth_at(program, point)
    return truth, judge_point(truth, outcome, program.variables)


def _passes(host: Any, finding: Finding) -> bool:
    """Whether the engine's answer at the finding's point is right in the current format."""
    judged = _verdicts(host, finding)
    return judged is not None and not [v for v in judged[1] if v.severity == "error"]


def narrower_format(host: Any, findings: Sequence[Finding]) -> str | None:
    """The narrower format in which every error finding passes, if any."""
    errors = [f for f in findings if f.severity == "error" and f.kind in ("value", "gradient", "exception")]
    if current().name != "float64" or len(errors) < MINIMUM or len(errors) != len([f for f in findings if f.severity == "error"]):
        return None
    if not any(f.cause == "precision" for f in errors):
        return None  # no finding even looks like lost precision
    ops = {f.blame.op for f in errors if f.blame.op in OPS}
    typical = _typical_relative_error(host, [f for f in errors if f.cause == "precision"])
    for name in CANDIDATES:
        if not typical >= FORMATS[name].unit_roundoff / LIKE:
            continue  # far more precise than that format: not its rounding
        with using(name):
            # A finding's own point may hide a real bug within the narrower format's
            # floor (tanh' off by 1e-4 where tanh' is 1e-8): each op must also pass
            # alone at ordinary inputs.
            if all(_passes(host, f) for f in errors) and all(_alone_passes(host, op) for op in ops):
                return name
    return None


def _typical_relative_error(host: Any, findings: Sequence[Finding]) -> float:
    """The median relative error of the engine's answers at these (float64) findings."""
    seen = []
    for finding in findings:
        judged = _verdicts(host, finding)
        if judged is None:
            continue
        truth, verdicts = judged
        for v in verdicts:
            want = truth.value if v.kind == "value" else truth.gradient[v.variable] if v.variable is not None else math.nan
            if math.isfinite(v.error) and want:
                seen.append(v.error / abs(want))
    return statistics.median(seen) if seen else 0.0


ORDINARY = ((0.75, 1.25), (-0.6, 0.3), (1.9, -1.4), (0.2, 2.6), (-2.2, -0.9))


def _alone_passes(host: Any, op: str) -> bool:
    arity = OPS[op].arity
    expr = apply(op, *(var(n) for n in ("a", "b")[:arity]), param=2.5 if op == "pow" else None)
    report = judge_case(host, compile_program(expr), [p[:arity] for p in ORDINARY], oracles=False)
    return report.crash is None and report.error is None


def one_finding(findings: Sequence[Finding], name: str) -> Finding:
    """The findings as one: the first precision finding, saying what they all show."""
    errors = [f for f in findings if f.severity == "error"]
    first = next(f for f in errors if f.cause == "precision")
    ops = sorted({f.blame.op for f in errors if f.blame.op})
    message = (f"the engine computes in {name}, not float64 as it says: all {len(errors)} error findings "
               f"({', '.join(ops)}) are within what {name} allows, e.g. {first.message}. Pass --dtype {name} "
               f"(check_engine(dtype={name!r}), or crossgrad_format = {name!r} on the class) to judge it as the {name} engine it is")
    others = [{"expression": f.expression, "point": list(f.point), "message": f.message} for f in errors if f is not first]
    return replace(first, message=message, cause="precision", extra={**first.extra, "narrower_format": name, "same_cause": others})
