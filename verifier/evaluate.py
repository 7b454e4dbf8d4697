"""Judging one case (an expression at a batch of points) with every oracle, fast.

The float64 reference decides the ordinary points: where every node is finite and
well inside its domain and the engine is within ``PASS - 1`` floors of it, the
engine is right (the float64 reference is itself within one floor of the truth).
Every other point goes to the exact reference. Torch and central differences are
checked the same way; their disagreements are notes about the oracles, not engine
findings.

Example:
    >>> from verifier.hosts import InProcess
    >>> from engine import Value
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> report = judge_case(InProcess(Value), compile_program(parse("log(x)")), [[2.0], [-1.0]])
    >>> report.error is None, report.counts["outside-domain"]
    (True, 1)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from verifier import numeric, torch_oracle
from verifier.expr import Program
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.formats import current as current_format
from verifier.judge import PASS, Verdict, finite_or_complex, judge_oracle, judge_point
from verifier.reference import JUDGED, PointReference, Sweep, exact, sweep
from verifier.run_engine import EngineOutcome
from verifier.second_order import Checks, current_checks, hessian_at, judge_hessian, judge_tangents

__all__ = ["PointJudgement", "CaseReport", "judge_case", "close_to_sweep"]


@dataclass
class PointJudgement:
    """The verdicts at one point, with what they were based on."""

    index: int
    truth: PointReference
    outcome: EngineOutcome | None
    verdicts: list[Verdict]
    who: str = "engine"


@dataclass
class CaseReport:
    """What judging one case found.

    Attributes:
        crash: ``("crash" | "timeout", message)`` if the engine's process died or hung.
        error: the first point with an error verdict.
        warning: the first point with only warning verdicts.
        oracle: the first point where torch disagrees with the truth.
        counts: points by class (``defined``, ``kink``, ``outside-domain``, ...).
        judged: quantities by whether they were judged: ``("value" | "partial",
            "judged" | reason)`` (reasons in :data:`verifier.reference.UNJUDGED`).
        notes: oracle limits seen (``torch``, ``numeric``).
        higher: points where something of second order or forward mode was judged.
    """

    crash: tuple[str, str] | None = None
    error: PointJudgement | None = None
    warning: PointJudgement | None = None
    oracle: PointJudgement | None = None
    counts: Counter = field(default_factory=Counter)
    judged: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    higher: int = 0  # points where a Hessian entry or a forward-mode partial was judged


def close_to_sweep(ref: Sweep, p: int, value: Any, gradient: Sequence[Any] | None) -> bool:
    """Whether an answer is certainly right: within ``PASS - 1`` floors of the
    float64 reference at a clean point."""
    if not ref.clean[p] or not isinstance(value, float) or gradient is None:
        return False
    slack = PASS - 1.0
    with np.errstate(over="ignore"):  # a floor near DBL_MAX times the slack: inf, rightly
        if not abs(value - ref.value[p]) <= slack * ref.value_floor[p]:
            return False
        return all(isinstance(g, float) and abs(g - ref.gradient[p, k]) <= slack * ref.gradient_floor[p, k]
                   for k, g in enumerate(gradient))


def judge_case(host: Any, program: Program, points: Sequence[Sequence[float]], *, oracles: bool = True) -> CaseReport:
    """Judge the engine (and, if ``oracles``, torch and central differences)."""
    report = CaseReport()
    points = current_format().round(np.asarray(points, dtype=float).reshape(-1, len(program.variables)))
    checks = current_checks()
    try:
        outcomes = host.run(program, points, order=checks.order, forward=checks.forward) if checks.higher else host.run(program, points)
    except EngineCrash as error:
        report.crash = ("crash", str(error))
        return report
    except EngineTimeout as error:
        report.crash = ("timeout", str(error))
        return report
    ref = sweep(program, points)
    truths: dict[int, PointReference] = {}
    nvars = len(program.variables)
    for p, outcome in enumerate(outcomes):
        clean = bool(ref.clean[p])
        if clean and outcome.status == "ok" and close_to_sweep(ref, p, outcome.value, outcome.gradient):
            report.counts["defined"] += 1
            report.judged["value", JUDGED] += 1
            report.judged["partial", JUDGED] += nvars
            continue
        # The class of a point is the sweep's where it found it clean or clearly
        # outside the domain, the exact reference's elsewhere: never a function of
        # the engine's answer.
        if ref.outside[p]:
            report.counts["outside-domain"] += 1
            report.judged["value", "outside-domain"] += 1
            report.judged["partial", "outside-domain"] += nvars
            if outcome.status == "exception" or not finite_or_complex(outcome.value):
                continue  # raising, nan and inf are all fine there: no need for the truth
            truth = truths[p] = exact(program, points[p])
        else:
            truth = truths[p] = exact(program, points[p], classify=not clean)
            report.counts[truth.status] += 1
            report.judged["value", truth.value_status] += 1
            report.judged.update(("partial", s) for s in truth.gradient_status)
        verdicts = judge_point(truth, outcome, program.variables, program=program)
        if truth.status == "outside-domain" and verdicts and outcome.node_values is None:
            # Was the finite answer made up at the op that left its domain, or is it
            # IEEE arithmetic on a nan/inf that op returned? Look at what each op
            # of the engine was given.
            outcome = _recorded(host, program, points[p], outcome)
            verdicts = judge_point(truth, outcome, program.variables, program=program)
        errors = [v for v in verdicts if v.severity == "error"]
        if errors and report.error is None:
            report.error = PointJudgement(p, truth, outcome, errors)
        elif verdicts and not errors and report.warning is None:
            report.warning = PointJudgement(p, truth, outcome, verdicts)
    if checks.higher and report.error is None:  # a first-order error comes first
        _judge_higher(report, checks, program, points, outcomes, ref, truths)
    if oracles:
        _check_oracles(report, program, points, ref, truths)
    return report


def _judge_higher(report: CaseReport, checks: Checks, program: Program, points: np.ndarray, outcomes: Sequence[EngineOutcome],
                  ref: Sweep, truths: dict[int, PointReference]) -> None:
    """Judge the engine's Hessians and forward-mode partials (see :mod:`verifier.second_order`)."""
    for p, outcome in enumerate(outcomes):
        if outcome.status != "ok" or ref.outside[p]:
            continue
        truth = _truth(truths, program, points, ref, p)
        verdicts: list[Verdict] = []
        judged = False
        if checks.forward:
            report.judged.update(("tangent", s) for s in truth.gradient_status)
            verdicts += judge_tangents(truth, outcome, program.variables, program, points[p])
            judged = truth.value_judged and any(s == JUDGED for s in truth.gradient_status)
        if checks.order >= 2:
            hessian = hessian_at(program, points[p], truth)
            report.judged.update(("hessian", s) for row in hessian.entry_status for s in row)
            verdicts += judge_hessian(hessian, outcome)
            judged = judged or hessian.any_judged
        report.higher += judged
        errors = [v for v in verdicts if v.severity == "error"]
        if errors:
            report.error = PointJudgement(p, truth, outcome, errors)
            return
        if verdicts and report.warning is None:
            report.warning = PointJudgement(p, truth, outcome, verdicts)


def _truth(truths: dict[int, PointReference], program: Program, points: np.ndarray, ref: Sweep, p: int) -> PointReference:
    """Point ``p``'s exact reference, classified as the judge classifies it, computed
    once per case (kept in ``truths``)."""
    if p not in truths:
        truths[p] = exact(program, points[p], classify=not ref.clean[p])
    return truths[p]


def _recorded(host: Any, program: Program, point: Sequence[float], fallback: EngineOutcome) -> EngineOutcome:
    try:
        return host.run(program, [point], record=True)[0]
    except (EngineCrash, EngineTimeout):
        return fallback


def _check_oracles(report: CaseReport, program: Program, points: np.ndarray, ref: Sweep, truths: dict[int, PointReference]) -> None:
    result = torch_oracle.evaluate(program, points)
    for p in range(points.shape[0]):
        value, gradient = float(result.value[p]), [float(g) for g in result.gradient[p]]
        if close_to_sweep(ref, p, value, gradient) or (ref.outside[p] and not np.isfinite(value)):
            continue
        truth = _truth(truths, program, points, ref, p)
        verdicts = [v for v in judge_oracle(truth, value, gradient, program.variables, "torch") if v.severity == "error"]
        if verdicts:
            report.notes["torch"] += 1
            if report.oracle is None:
                report.oracle = PointJudgement(p, truth, None, verdicts, "torch")
    clean = ref.clean
    if clean.any():
        fd = numeric.central_differences(program, points[clean], ref.value_floor[clean])
        with np.errstate(over="ignore"):
            allowed = fd.estimate + PASS * ref.gradient_floor[clean]
        broke = ~(np.abs(fd.gradient - ref.gradient[clean]) <= allowed) | np.isinf(fd.estimate)
        if broke.any():
            report.notes["numeric"] += int(broke.any(axis=1).sum())
