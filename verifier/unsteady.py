"""Nondeterminism: an engine that answers the same case two ways.

A campaign asks the engine twice at every failing point (the second time recording
node values for blame). Two answers that differ beyond rounding noise are a finding
of their own, never a crash of the shrinker: :func:`differ` decides, and
:func:`unsteady_blame` finds the op that wavers alone. A racy cache shows only when
the op meets other inputs in between (it returns the previous call's value), so
each op alone is run at its inputs alternating with other ones, in one batch.

Example:
    >>> from engine import Value
    >>> from verifier.hosts import InProcess
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> program = compile_program(parse("tanh(x0)"))
    >>> unsteady_blame(InProcess(Value), program, (0.5,), (0.5, 0.46)).op is None
    True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from verifier.blame import BENIGN, alone_expression
from verifier.expr import Program, apply, compile_program, var
from verifier.findings import Blame, Finding
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import PASS, format_number, format_point
from verifier.ops import OPS
from verifier.run_engine import EngineOutcome

__all__ = ["differ", "unsteady_blame", "answer", "answer_in", "answer_text", "REPEATS", "ALTERNATIONS"]

REPEATS = 4  # runs of each op alone at its inputs, back to back
ALTERNATIONS = 24  # then runs at its inputs, each followed by a run at other inputs


def _same(a: Any, b: Any, floor: Any) -> bool:
    """Two answers for one quantity agree: equal (nan included), or both within the
    noise a correct engine may show between runs (accumulation order from a set of
    children changes the rounding, not the verdict)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, complex) or isinstance(b, complex):
        return a == b
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    if not (isinstance(floor, float) and math.isfinite(floor)):
        return math.isfinite(a) and math.isfinite(b)  # no floor to go by: only non-finite vs finite counts
    return abs(a - b) <= 2 * PASS * floor


def differ(first: EngineOutcome | None, second: EngineOutcome | None, value_floor: Any, gradient_floor: Any) -> bool:
    """Whether the engine answered one case two ways (beyond rounding noise)."""
    if first is None or second is None:
        return False
    if first.status != second.status or not _same(first.value, second.value, value_floor):
        return True
    if first.gradient is None or second.gradient is None:
        return (first.gradient is None) != (second.gradient is None)
    floors = tuple(gradient_floor) if gradient_floor is not None else (math.nan,) * len(first.gradient)
    return len(first.gradient) != len(second.gradient) or not all(
        _same(g, h, f) for g, h, f in zip(first.gradient, second.gradient, floors))


def answer(host: Any, program: Program, point: Sequence[float]) -> EngineOutcome | None:
    try:
        return host.run(program, [point])[0]
    except (EngineCrash, EngineTimeout):
        return None


def answer_in(finding: Finding) -> EngineOutcome | None:
    """The engine's answer a finding shows."""
    report = next((o for o in finding.oracles if o.name == "engine"), None)
    if report is None or report.status not in ("ok", "exception", "invalid"):
        return None
    return EngineOutcome(report.status, report.value, report.gradient, report.error)


def answer_text(got: EngineOutcome | None) -> str:
    """One answer in words, for a nondeterministic finding's message."""
    if got is None:
        return "no answer (a crash or a hang)"
    if got.status == "exception":
        return f"an exception ({got.error})"
    gradient = "None" if got.gradient is None else "(" + ", ".join(map(format_number, got.gradient)) + ")"
    return f"value {format_number(got.value)}, gradient {gradient}" + (f" ({got.error})" if got.error else "")


def _wavers(host: Any, expr: Any, at: Sequence[float]) -> tuple[EngineOutcome, EngineOutcome] | None:
    """Two different answers of ``expr`` at ``at`` over a batch of runs, alternating
    with runs at other inputs (a stale cached value shows only then), or None."""
    other = tuple(x * 1.5 + 0.25 for x in at)
    program = compile_program(expr)
    try:
        # Back to back (a state that flips every call), then alternating.
        answers = host.run(program, [at] * REPEATS) + host.run(program, [at, other] * ALTERNATIONS)[::2]
    except (EngineCrash, EngineTimeout):
        return None
    for again in answers[1:]:
        # Exactly: one op alone has no accumulation order to vary.
        if differ(answers[0], again, 0.0, (0.0,) * len(at)):
            return answers[0], again
    return None


def unsteady_blame(host: Any, program: Program, point: Sequence[float], node_values: Sequence[float]) -> Blame:
    """The op that answers differently at the same inputs: each op of the case alone,
    a few times, at the inputs it had; and, as a control, an op the case does not use.
    If the control wavers too, the backward pass (or state kept between calls) is to
    blame, not an op."""
    wavering: list[tuple[int, str, Any, tuple, tuple]] = []
    seen: set[str] = set()
    for node in program.op_nodes():
        op = program.ops[node]
        if op in seen:
            continue
        seen.add(op)
        alone = alone_expression(program, node, node_values)
        if alone is None:
            continue
        answers = _wavers(host, *alone)
        if answers is not None:
            wavering.append((node, op, alone[0], alone[1], answers))
    control = next((op for op in ("add", "mul", "sub", "neg") if op in getattr(host, "supported", ()) and op not in seen), None)
    if wavering and control is not None:
        expr = apply(control, var("a")) if OPS[control].arity == 1 else apply(control, var("a"), var("b"))
        at = BENIGN[: OPS[control].arity]
        if _wavers(host, expr, at) is not None:
            return Blame("engine", "backward", "", f"every op tried answers differently from call to call, even {expr} "
                         f"at {format_point(('a', 'b'), at)}, which this case does not use: the backward pass, or state "
                         "the engine keeps between calls, is nondeterministic")
    if wavering:
        node, op, expr, at, (one, two) = wavering[0]
        names = compile_program(expr).variables
        return Blame("engine", op, str(expr), f"{op} alone answers differently at the same inputs ({expr} at "
                     f"{format_point(names, at)}): {answer_text(one)}, then {answer_text(two)}", node, tuple(at))
    return Blame("engine", None, "", "every op alone answers the same each time; only the whole expression does not")
