"""The judge: does an engine's answer at one point really disagree with the truth?

The reference (:mod:`verifier.reference`) has already classified the point and
given, for the value and each partial derivative, the noise floor of a correct
float64 computation there. The judge compares with that floor, not with fixed
tolerances:

==========================  =================================================
error <= ``PASS`` floors    agrees
up to ``ERROR`` floors      precision warning (worse than float64 allows here)
beyond                      error: a wrong value or derivative
==========================  =================================================

Exceptions are part of the contract: where the value is defined, raising is a
finding; outside the domain, raising or returning nan/inf are both fine, while a
complex number or a finite number is a (warning-level) robustness finding. At kinks
anything between the one-sided derivatives passes.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> from verifier.reference import exact
    >>> from verifier.run_engine import EngineOutcome
    >>> program = compile_program(parse("tanh(x)"))
    >>> truth = exact(program, (0.5,))
    >>> [v.kind for v in judge_point(truth, EngineOutcome("ok", 0.46211715726000974, (0.7,)), ("x",))]
    ['gradient']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from verifier.expr import Program
from verifier.formats import current as current_format
from verifier.ops import OPS
from verifier.printing import format_number as print_number
from verifier.reference import PointReference
from verifier.run_engine import EngineOutcome

__all__ = ["Verdict", "judge_point", "judge_oracle", "compare_quantity", "finite_or_complex", "PASS", "ERROR", "format_point"]

PASS = 4.0
ERROR = 1024.0  # in float64; each format has its own (verifier.formats: error_ulps, precision_only)
PRECISION_ONLY = 1e-5  # relative errors below this are precision losses, not wrong formulas
KIND_ORDER = ("crash", "timeout", "nondeterministic", "exception", "invalid", "value", "gradient", "jvp", "hessian")


@dataclass(frozen=True)
class Verdict:
    """One disagreement at one point.

    Attributes:
        kind: ``value``, ``gradient``, ``exception``, ``invalid``; at second order
            ``hessian``, in forward mode ``jvp``.
        severity: ``error`` or ``warning``.
        cause: ``engine`` (wrong), ``precision`` (right formula, too much rounding),
            ``domain`` (robustness outside the domain).
        message: one labelled sentence.
        variable: index of the partial derivative concerned, if any.
        error, floor: absolute error against the reference and the noise floor.
        node: for a domain warning, the node whose engine input left the domain.
    """

    kind: str
    severity: str
    cause: str
    message: str
    variable: int | None = None
    error: float = math.nan
    floor: float = math.nan
    node: int | None = None
    column: int | None = None  # a Hessian entry's second variable (``variable`` is its first)

    @property
    def ratio(self) -> float:
        if not (self.floor > 0):
            return math.inf if self.error > 0 else math.nan
        return self.error / self.floor


def format_number(x: Any) -> str:
    if x is None:
        return "None"
    if isinstance(x, complex):
        return f"complex {x}"
    if isinstance(x, float) and math.isfinite(x):
        return print_number(x)  # the shortest text that parses back to x
    return repr(x) if isinstance(x, float) else str(x)


def format_point(variables: Sequence[str], point: Sequence[float]) -> str:
    """``x0=1.5, x1=-2`` (numbers shown so that they parse back exactly)."""
    return ", ".join(f"{name}={format_number(float(x))}" for name, x in zip(variables, point))


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def compare_quantity(kind: str, label: str, got: Any, want: float, low: float, high: float, floor: float) -> Verdict | None:
    """The verdict on one quantity (``label``, e.g. ``d/dx0``): None if ``got`` is
    within ``PASS`` floors of ``[low, high]`` (``want`` itself, away from kinks)."""
    if isinstance(got, complex):
        return Verdict(kind, "error", "engine", f"{label} is a complex number {got}; exact {format_number(want)}")
    if not _is_finite_number(got):
        return Verdict(kind, "error", "engine", f"{label} is {format_number(got)}; exact {format_number(want)}", error=math.inf, floor=floor)
    error = max(low - got, got - high, 0.0)
    if error == 0.0 or error <= PASS * floor:
        return None
    ratio = error / floor if floor > 0 else math.inf
    relative = error / abs(want) if want else math.inf
    shown = f"exact {format_number(want)}" if low == high else f"exact between {format_number(low)} and {format_number(high)} (kink)"
    if ratio < 1e6:
        text = f"{label} is {format_number(got)}, {shown}: error {error:.3g} = {ratio:.3g} x the {current_format().name} noise floor"
    else:
        text = f"{label} is {format_number(got)}, {shown}: error {error:.3g}, where {current_format().name} allows {floor:.2g}"
    if ratio <= current_format().error_ulps:
        return Verdict(kind, "warning", "precision", text + f" (more rounding than {current_format().name} needs here)", error=error, floor=floor)
    cause = "precision" if relative <= current_format().precision_only else "engine"
    if cause == "precision":
        text += f" (relative error {relative:.2g}: precision lost, e.g. single precision or cancellation)"
    return Verdict(kind, "error", cause, text, error=error, floor=floor)


def judge_point(truth: PointReference, outcome: EngineOutcome, variables: Sequence[str], who: str = "engine",
                program: Program | None = None) -> list[Verdict]:
    """Every disagreement between ``outcome`` and the truth at one point.

    The value and each partial are judged on their own, wherever the reference says
    so (``truth.value_status``, ``truth.gradient_status``). ``program`` (with an
    outcome that recorded its node values) lets a domain warning name the node
    whose engine input actually left the domain.
    """
    status = truth.status
    if outcome.status == "invalid":
        return [Verdict("invalid", "error", "engine", f"{who}: {outcome.error}")]
    if status == "ill-conditioned":
        return []
    if status == "outside-domain":
        return _outside_domain(truth, outcome, who, program)
    judged = [k for k in range(len(variables)) if truth.partial_judged(k)]
    if outcome.status == "exception":
        # Raising is fine where some quantity of this stage lies beyond float64
        # (math.exp(1000) raises OverflowError): not where all of them are judged.
        forward = outcome.stage == "forward"
        if truth.value_judged and (forward or len(judged) == len(variables)):
            where = "computing the value" if forward else "in backward()"
            return [Verdict("exception", "error", "engine", f"{who} raised {outcome.error} {where}, where the value and gradient are defined")]
        if forward:
            return []
    verdicts: list[Verdict] = []
    if truth.value_judged:
        value = compare_quantity("value", f"{who} value", outcome.value, truth.value, truth.value, truth.value, truth.value_floor)
        if value is not None:
            verdicts.append(value)
    if outcome.status == "ok":
        for k in judged:
            verdict = compare_quantity(
                "gradient", f"{who} d/d{variables[k]}", outcome.gradient[k], truth.gradient[k],
                truth.gradient_low[k], truth.gradient_high[k], truth.gradient_floor[k],
            )
            if verdict is not None:
                verdicts.append(Verdict(verdict.kind, verdict.severity, verdict.cause, verdict.message, k, verdict.error, verdict.floor))
        if not verdicts and len(truth.gradient_sides) == 2 and len(judged) > 1:
            verdicts.extend(_mixed_sides(truth, outcome.gradient, judged, variables, who))
    return verdicts


def _mixed_sides(truth: PointReference, gradient: Sequence[float], judged: Sequence[int], variables: Sequence[str],
                 who: str) -> list[Verdict]:
    """At one kink the right gradients are the mixes ``(1 - t) g0 + t g1`` of the
    one-sided ones, 0 <= t <= 1: each partial within its own range is not enough
    (maximum at a tie giving (1, 1) where (1, 0) and (0, 1) are the sides)."""
    g0, g1 = truth.gradient_sides
    low, high = 0.0, 1.0  # the mixes t that every partial allows
    for k in judged:
        step = g1[k] - g0[k]
        if step == 0:
            continue  # that partial is the same on both sides: judged on its own above
        t = (gradient[k] - g0[k]) / step
        slack = current_format().error_ulps * truth.gradient_floor[k] / abs(step)
        low, high = max(low, t - slack), min(high, t + slack)
    if low <= high:
        return []
    sides = " and ".join("(" + ", ".join(format_number(g[q]) for q in judged) + ")" for g in (g0, g1))
    got = "(" + ", ".join(format_number(gradient[q]) for q in judged) + ")"
    names = ", ".join(f"d/d{variables[q]}" for q in judged)
    k = judged[0]
    error = min(abs(gradient[k] - g0[k]), abs(gradient[k] - g1[k]))
    return [Verdict("gradient", "error", "engine",
                    f"{who} gradient ({names}) is {got} at a kink: not a mix of the one-sided gradients {sides}",
                    k, error, truth.gradient_floor[k])]


def finite_or_complex(x: Any) -> bool:
    """Whether ``x`` is an answer an engine made up (a finite float or a complex
    number), not an exception's None, nan or inf."""
    return isinstance(x, complex) or _is_finite_number(x)


def _outside_domain(truth: PointReference, outcome: EngineOutcome, who: str, program: Program | None) -> list[Verdict]:
    """Outside the domain raising, nan and inf are all fine; a complex or finite
    number is a robustness warning, named at the op whose engine input left its
    domain (not where the exact reference leaves it: the engine's own upstream
    rounding may have kept it inside)."""
    value = outcome.value
    if outcome.status == "exception" or not finite_or_complex(value):
        return []
    node, detail = truth.node, truth.detail
    if outcome.node_values and program is not None:
        found = _first_domain_exit(program, outcome.node_values)
        if found is None:
            return []  # no op of the engine was given an input outside its domain
        node, detail = found
    seen = outcome.node_values[node] if outcome.node_values and node is not None else value
    if not finite_or_complex(seen):
        return []  # nan or inf where the domain ends, turned finite later by IEEE rules (1/inf)
    shown = f"a complex number {seen}" if isinstance(seen, complex) else format_number(seen)
    at_output = not outcome.node_values or node in (None, len(outcome.node_values) - 1)
    where = "" if at_output else f" at the {detail.split(' of ')[0]} that leaves its domain"
    return [Verdict("value", "warning", "domain", f"{who} returned {shown}{where} where the value is undefined ({detail}); raise an error or return nan instead", node=node)]


def _first_domain_exit(program: Program, node_values: Sequence[Any]) -> tuple[int, str] | None:
    """The first node whose inputs, as the engine computed them, are outside its
    op's domain: ``(node, "log of -2 (node 3)")``."""
    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if not args or i >= len(node_values):
            continue
        inputs = [node_values[j] for j in args]
        if not all(_is_finite_number(x) for x in inputs):
            continue
        for rule in OPS[op].domain(param):
            if not rule.gradient_only and not rule.holds(rule.at(math, inputs)):
                shown = ", ".join(format_number(x) for x in inputs)
                return i, f"{op} of {shown} (node {i})"
    return None


def judge_oracle(truth: PointReference, value: float, gradient: Sequence[float], variables: Sequence[str], who: str) -> list[Verdict]:
    """Judge another float64 oracle (torch) like the engine."""
    return judge_point(truth, EngineOutcome("ok", float(value), tuple(float(g) for g in gradient)), variables, who)


def worst(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The verdict that names the finding: errors first, then by kind."""
    if not verdicts:
        return None
    return min(verdicts, key=lambda v: (v.severity != "error", KIND_ORDER.index(v.kind) if v.kind in KIND_ORDER else 99))
