"""Everything a person needs to see about one expression at one point: every
oracle's answer and error against the exact reference, the graph with the engine's
values, the finite-difference error-versus-step curve, and conventions at kinks.

Used by :func:`verifier.compare` and to turn a campaign's failing case into a
:class:`~verifier.findings.Finding`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from verifier import numeric, torch_oracle
from verifier.blame import blame_engine
from verifier.expr import Program, apply, compile_program, from_program, var
from verifier.findings import Blame, Finding, GraphNode, OracleReport
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import Verdict, format_number, judge_point, worst
from verifier.ops import OPS
from verifier.printing import format_number as print_number
from verifier.printing import to_latex, to_mathml, to_string
from verifier.reference import PointReference, sweep, truth_at
from verifier.run_engine import EngineOutcome
from verifier.stability import Instability, diagnose

__all__ = ["oracle_reports", "graph_nodes", "engine_outcome", "build_finding", "kink_conventions"]

MAX_GRAPH_NODES = 400


def _error(x: Any, truth: float) -> float | None:
    if isinstance(x, float) and math.isfinite(x) and math.isfinite(truth):
        return abs(x - truth)
    return None


def _errors(gradient: Sequence[Any] | None, truth: PointReference) -> tuple[float | None, ...] | None:
    """Distance to the exact partials (to the one-sided range, at kinks)."""
    if gradient is None:
        return None
    out = []
    for g, low, high in zip(gradient, truth.gradient_low, truth.gradient_high):
        if isinstance(g, float) and math.isfinite(g) and math.isfinite(low):
            out.append(max(low - g, g - high, 0.0))
        else:
            out.append(None)
    return tuple(out)


def engine_outcome(host: Any, program: Program, point: Sequence[float], **ask: Any) -> tuple[EngineOutcome | None, str, str]:
    """The engine's outcome with node values, or (None, "crash"|"timeout", message);
    ``ask`` may ask for more (``order=2``, ``forward=True``: see ``host.run``)."""
    try:
        return host.run(program, [point], record=True, **ask)[0], "", ""
    except EngineCrash as error:
        return None, "crash", str(error)
    except EngineTimeout as error:
        return None, "timeout", str(error)


def oracle_reports(program: Program, point: Sequence[float], truth: PointReference, outcome: EngineOutcome | None, crash: tuple[str, str] = ("", "")) -> tuple[OracleReport, ...]:
    """The reference, then engine, sympy (float64), torch and numeric answers."""
    reports = [OracleReport("reference", "ok" if truth.value_judged else "undefined", truth.value, truth.gradient, truth.detail)]
    if outcome is not None:
        reports.append(OracleReport(
            "engine", outcome.status, outcome.value, outcome.gradient, outcome.error,
            _error(outcome.value, truth.value), _errors(outcome.gradient, truth),
        ))
    elif crash[0]:
        reports.append(OracleReport("engine", crash[0], None, None, crash[1]))
    row = np.asarray([point], dtype=float)
    ref64 = sweep(program, row)
    g64 = tuple(float(g) for g in ref64.gradient[0])
    reports.append(OracleReport("sympy", "ok", float(ref64.value[0]), g64, "", _error(float(ref64.value[0]), truth.value), _errors(g64, truth)))
    t = torch_oracle.evaluate(program, row)
    gt = tuple(float(g) for g in t.gradient[0])
    reports.append(OracleReport("torch", "ok", float(t.value[0]), gt, "", _error(float(t.value[0]), truth.value), _errors(gt, truth)))
    fd = numeric.central_differences(program, row, ref64.value_floor)
    gn = tuple(float(g) for g in fd.gradient[0])
    reports.append(OracleReport(
        "numeric", "ok", None, gn, "", None, _errors(gn, truth), tuple(float(e) for e in fd.estimate[0]),
    ))
    return tuple(reports)


def _label(program: Program, i: int) -> str:
    op, param = program.ops[i], program.params[i]
    if op == "var":
        return program.variables[param]
    if op == "const":
        return print_number(param)
    if op == "pow":
        return f"**{print_number(param)}"
    return OPS[op].symbol or op


def graph_nodes(program: Program, truth: PointReference, outcome: EngineOutcome | None, blamed: set[int]) -> tuple[GraphNode, ...]:
    """The graph as report data (empty if too big to draw)."""
    if len(program) > MAX_GRAPH_NODES:
        return ()
    values = outcome.node_values if outcome is not None and outcome.node_values else (None,) * len(program)
    grads = outcome.node_grads if outcome is not None and outcome.node_grads else (None,) * len(program)
    return tuple(
        GraphNode(i, program.ops[i], _label(program, i), program.args[i], truth.node_values[i], values[i], grads[i], i in blamed,
                  truth.node_grads[i] if truth.node_grads else None)
        for i in range(len(program))
    )


def kink_conventions(host: Any, program: Program, truth: PointReference) -> str:
    """How the engine resolves each kink met at this point, e.g. ``relu'(0) = 0``
    or ``maximum'(1, 1) = (0.5, 0.5)``: the op alone at that node's arguments."""
    seen = []
    for node in truth.kink_nodes:
        op, args = program.ops[node], program.args[node]
        names = ("a", "b")[: len(args)]
        expr = apply(op, *(var(n) for n in names), param=program.params[node])
        at = tuple(truth.node_values[j] for j in args)
        try:
            [outcome] = host.run(compile_program(expr), [at])
        except (EngineCrash, EngineTimeout):
            continue
        if outcome.status == "ok" and outcome.gradient:
            shown = ", ".join(format_number(x) for x in at)
            slopes = ", ".join(format_number(g) for g in outcome.gradient)
            text = f"{op}'({shown}) = {slopes if len(args) == 1 else f'({slopes})'}"
            if text not in seen:
                seen.append(text)
    return ", ".join(seen)


def _node_of_blame(program: Program, blame: Blame) -> set[int]:
    if blame.node is not None and blame.node < len(program) and program.ops[blame.node] == blame.op:
        return {blame.node}
    return {i for i in program.op_nodes() if program.ops[i] == blame.op}


def _instability(host: Any, program: Program, blame: Blame, chosen: Verdict) -> Instability | None:
    """Whether the blamed op is right at ordinary inputs and breaks at extreme ones
    (a numerically unstable formula rather than a wrong rule)."""
    if chosen.severity != "error" or chosen.kind not in ("value", "gradient", "exception") or blame.op not in OPS:
        return None
    if blame.op == "pow" and blame.node is None:
        return None  # its exponent is unknown
    param = program.params[blame.node] if blame.node is not None and program.ops[blame.node] == blame.op else None
    return diagnose(host, blame.op, param)


def build_finding(
    host: Any,
    program: Program,
    point: Sequence[float],
    *,
    crash: tuple[str, str] | None = None,
    blame: Blame | None = None,
    shrunk: bool = False,
    original: str = "",
    who: str = "engine",
    verdicts: Sequence[Verdict] | None = None,
    unstable: str = "error",
) -> Finding | None:
    """A complete finding for ``program`` at ``point``; None if nothing is wrong there.

    Args:
        crash: the case crashed or hung before any outcome came back.
        blame: a blame already established (skips blaming again).
        who: ``engine``, or ``torch`` for an oracle disagreement.
        unstable: the severity of a finding whose op is right at ordinary inputs
            and breaks only at extreme ones (cause ``unstable``, with the ranges
            where it breaks and a stable formula): ``error`` or ``warning``.
        verdicts: the verdicts already found (for oracles other than the engine).
    """
    truth = truth_at(program, point)
    outcome, crash_kind, crash_message = (None, *crash) if crash else engine_outcome(host, program, point)
    if outcome is None and not crash_kind:
        return None
    if crash_kind:
        chosen = Verdict(crash_kind, "error", "engine", crash_message[:1].upper() + crash_message[1:])
    elif verdicts:
        chosen = worst(list(verdicts))
    else:
        chosen = worst(judge_point(truth, outcome, program.variables, program=program))
    if chosen is None:
        return None
    if blame is None:
        if who != "engine":
            blame = Blame(who, None, "", "this oracle disagrees with the exact reference")
        elif chosen.cause == "domain" and (node := chosen.node if chosen.node is not None else truth.node) is not None:
            # Outside the domain there is no local rule to replay: the op whose
            # engine input left its domain is the one that answered instead of raising.
            op = program.ops[node]
            blame = Blame("engine", op, "", f"{op} is outside its domain here: {truth.detail}", node)
        else:
            # The engine's own node values and .grads (recorded above) are what blame
            # replays; a warning is blamed with warnings counted as failures.
            blame = blame_engine(host, program, point, outcome, truth.node_values, chosen.severity)
    variable = program.variables[chosen.variable] if chosen.variable is not None else None
    steps: tuple[tuple[float, float, float], ...] = ()
    k = chosen.variable if chosen.variable is not None else 0
    if truth.value_judged:
        steps = tuple(numeric.step_sweep(program, point, k))
    expr = from_program(program)
    try:
        mathml, latex = to_mathml(expr), to_latex(expr)
    except ValueError:
        mathml = latex = ""
    cause = chosen.cause if who == "engine" else "oracle"
    severity = chosen.severity if who == "engine" else "warning"
    message = chosen.message
    instability = _instability(host, program, blame, chosen) if who == "engine" else None
    if instability is not None:
        cause, severity, message = "unstable", unstable, f"{message}. {instability.message}"
    return Finding(
        kind=chosen.kind, severity=severity, cause=cause, message=message,
        expression=to_string(expr), variables=program.variables, point=tuple(float(x) for x in point),
        status=truth.status, detail=truth.detail, blame=blame,
        oracles=oracle_reports(program, point, truth, outcome, (crash_kind, crash_message)),
        value_floor=truth.value_floor, gradient_floor=truth.gradient_floor,
        variable=variable, ratio=chosen.ratio if math.isfinite(chosen.ratio) else None,
        graph=graph_nodes(program, truth, outcome, _node_of_blame(program, blame)),
        steps=steps, steps_variable=program.variables[k] if steps else None,
        mathml=mathml, latex=latex, shrunk=shrunk, original=original,
        convention=kink_conventions(host, program, truth) if truth.kink_nodes else "",
    )

