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
from verifier.reference import JUDGED, PointReference, Sweep, exact, sweep_many
from verifier.run_engine import EngineOutcome
from verifier.second_order import Checks, current_checks, hessian_at, judge_hessian, judge_tangents

__all__ = ["PointJudgement", "CaseReport", "judge_case", "judge_cases", "close_to_sweep"]


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
    if not isinstance(value, float) or gradient is None or not all(isinstance(g, float) for g in gradient):
        return False
    return bool(_close_arrays(ref, np.array([value]), np.array([gradient], dtype=float), [p])[0])


def _close_points(ref: Sweep, outcomes: Sequence[EngineOutcome]) -> np.ndarray:
    """:func:`close_to_sweep` of every point's answer at once (the usual case: all of them)."""
    nvars = ref.gradient.shape[1]
    usable = np.array([o.status == "ok" and type(o.value) is float and o.gradient is not None
                       and all(type(g) is float for g in o.gradient) for o in outcomes], dtype=bool)
    value = np.array([o.value if ok else 0.0 for o, ok in zip(outcomes, usable)])
    gradient = np.array([o.gradient if ok else (0.0,) * nvars for o, ok in zip(outcomes, usable)], dtype=float).reshape(-1, nvars)
    return usable & _close_arrays(ref, value, gradient)


def _close_arrays(ref: Sweep, value: np.ndarray, gradient: np.ndarray, at: Any = slice(None)) -> np.ndarray:
    """:func:`close_to_sweep` of float answers at every point (or the points ``at``), as arrays."""
    slack = PASS - 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # a floor near DBL_MAX times the slack: inf, rightly
        close = np.abs(value - ref.value[at]) <= slack * ref.value_floor[at]
        close &= (np.abs(gradient - ref.gradient[at]) <= slack * ref.gradient_floor[at]).all(axis=1)
    return ref.clean[at] & close


def judge_case(host: Any, program: Program, points: Sequence[Sequence[float]], *, oracles: bool = True) -> CaseReport:
    """Judge the engine (and, if ``oracles``, torch and central differences)."""
    return judge_cases(host, [program], [points], oracles=oracles)[0]


def judge_cases(host: Any, programs: Sequence[Program], points: Sequence[Sequence[Sequence[float]]], *,
                oracles: bool = True) -> list[CaseReport]:
    """:func:`judge_case` of each ``(program, points)`` in turn, with one round trip to
    the engine and each oracle for the batch: the reports up to and including the
    first case that crashes or hangs the engine (the cases after it are not run)."""
    checks = current_checks()
    grids = [current_format().round(np.asarray(p, dtype=float).reshape(-1, len(program.variables)))
             for program, p in zip(programs, points)]
    answers = host.run_batch(list(zip(programs, grids)), order=checks.order, forward=checks.forward)
    ran = [b for b, answer in enumerate(answers) if not isinstance(answer, (EngineCrash, EngineTimeout))]
    sweeps = dict(zip(ran, sweep_many([programs[b] for b in ran], [grids[b] for b in ran])))
    reports, truths = [], {}
    for b, answer in enumerate(answers):
        report = CaseReport()
        reports.append(report)
        if isinstance(answer, (EngineCrash, EngineTimeout)):
            report.crash = ("crash" if isinstance(answer, EngineCrash) else "timeout", str(answer))
            continue
        truths[b] = {}
        _judge_first(report, host, programs[b], grids[b], answer, sweeps[b], truths[b])
        if checks.higher and report.error is None:  # a first-order error comes first
            _judge_higher(report, checks, programs[b], grids[b], answer, sweeps[b], truths[b])
    if oracles and ran:
        _check_oracles([reports[b] for b in ran], [programs[b] for b in ran], [grids[b] for b in ran],
                       [sweeps[b] for b in ran], [truths[b] for b in ran])
    return reports


def _judge_first(report: CaseReport, host: Any, program: Program, points: np.ndarray, outcomes: Sequence[EngineOutcome],
                 ref: Sweep, truths: dict[int, PointReference]) -> None:
    """Judge the engine's values and gradients at every point of one case."""
    nvars = len(program.variables)
    close = _close_points(ref, outcomes)
    for p, outcome in enumerate(outcomes):
        if close[p]:
            report.counts["defined"] += 1
            report.judged["value", JUDGED] += 1
            report.judged["partial", JUDGED] += nvars
            continue
        # The class of a point is the sweep's where it found it clean or clearly
        # outside the domain, the exact reference's elsewhere: never a function of
        # the engine's answer.
        outside = bool(ref.outside[p])
        if outside:
            report.counts["outside-domain"] += 1
            report.judged["value", "outside-domain"] += 1
            report.judged["partial", "outside-domain"] += nvars
            if outcome.status == "exception" or not finite_or_complex(outcome.value):
                continue  # raising, nan and inf are all fine there: no need for the truth
        truth = _truth(truths, program, points, ref, p)
        if not outside:
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
        truths[p] = exact(program, points[p], classify=not ref.clean[p], floats=bool(ref.finite[p]))
    return truths[p]


def _recorded(host: Any, program: Program, point: Sequence[float], fallback: EngineOutcome) -> EngineOutcome:
    try:
        return host.run(program, [point], record=True)[0]
    except (EngineCrash, EngineTimeout):
        return fallback


def _check_oracles(reports: Sequence[CaseReport], programs: Sequence[Program], grids: Sequence[np.ndarray],
                   refs: Sequence[Sweep], truths: Sequence[dict[int, PointReference]]) -> None:
    """Torch and central differences against the truth, for a batch of cases (their
    disagreements are notes about the oracles)."""
    for report, program, points, ref, known, result in zip(reports, programs, grids, refs, truths,
                                                          torch_oracle.evaluate_many(programs, grids)):
        settled = _close_arrays(ref, result.value, result.gradient) | (ref.outside & ~np.isfinite(result.value))
        for p in np.flatnonzero(~settled):
            value, gradient = float(result.value[p]), [float(g) for g in result.gradient[p]]
            truth = _truth(known, program, points, ref, p)
            verdicts = [v for v in judge_oracle(truth, value, gradient, program.variables, "torch") if v.severity == "error"]
            if verdicts:
                report.notes["torch"] += 1
                if report.oracle is None:
                    report.oracle = PointJudgement(p, truth, None, verdicts, "torch")
    some = [b for b, ref in enumerate(refs) if ref.clean.any()]
    differences = numeric.central_differences_many([programs[b] for b in some], [grids[b][refs[b].clean] for b in some],
                                                   [refs[b].value_floor[refs[b].clean] for b in some])
    for b, fd in zip(some, differences):
        clean = refs[b].clean
        with np.errstate(over="ignore"):
            allowed = fd.estimate + PASS * refs[b].gradient_floor[clean]
        broke = ~(np.abs(fd.gradient - refs[b].gradient[clean]) <= allowed) | np.isinf(fd.estimate)
        if broke.any():
            reports[b].notes["numeric"] += int(broke.any(axis=1).sum())
