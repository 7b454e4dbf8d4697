"""Naming the op at fault.

Each op node of a failing expression is checked alone, at the exact inputs the
engine saw there, in the same form (a number on the left of ``-`` exercises
``__rsub__``; ``x * x`` keeps its shared argument). An op that is wrong alone is to
blame. If every op is right alone, each op is checked while a gradient accumulates
into its argument from a second use (``f(a, b) + a``: an ``=`` instead of ``+=``
overwrites it); ``add`` goes first since the pattern itself uses it. If all of that
passes, the backward pass itself (traversal order, repeated visits) is to blame.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from verifier.expr import Expr, Program, apply, compile_program, const, var
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import Verdict, format_point, judge_point
from verifier.findings import Blame
from verifier.reference import exact
from verifier.run_engine import EngineOutcome

__all__ = ["blame_engine", "check_alone", "alone_expression"]

_NAMES = ("a", "b")


def alone_expression(program: Program, node: int, inputs: Sequence[Any]) -> tuple[Expr, tuple[float, ...]] | None:
    """Node ``node``'s op applied to fresh variables set to ``inputs`` of its
    arguments (constants stay constants; a shared argument stays shared)."""
    leaves: dict[int, Expr] = {}
    point: list[float] = []
    for j in program.args[node]:
        if j in leaves:
            continue
        if program.ops[j] == "const":
            leaves[j] = const(program.params[j])
            continue
        x = inputs[j]
        if not (isinstance(x, float) and math.isfinite(x)):
            return None
        leaves[j] = var(_NAMES[len(point)])
        point.append(x)
    if not point:
        return None
    expr = apply(program.ops[node], *(leaves[j] for j in program.args[node]), param=program.params[node])
    return expr, tuple(point)


def check_alone(host: Any, expr: Expr, point: Sequence[float], severity: str = "error") -> list[Verdict]:
    """The verdicts of the engine on ``expr`` at ``point`` (crashes and hangs
    included): errors only, or warnings too with ``severity="warning"``."""
    program = compile_program(expr)
    try:
        [outcome] = host.run(program, [point])
    except EngineCrash as error:
        return [Verdict("crash", "error", "engine", str(error))]
    except EngineTimeout as error:
        return [Verdict("timeout", "error", "engine", str(error))]
    truth = exact(program, point)
    return [v for v in judge_point(truth, outcome, program.variables) if severity == "warning" or v.severity == "error"]


def _op_order(program: Program, first: int | None, prefer: str | None) -> list[int]:
    """The node that raised first, then nodes of the preferred op, then the rest."""
    order = sorted(program.op_nodes(), key=lambda i: (i != first, program.ops[i] != prefer))
    return order


BENIGN = (0.75, 1.25)  # inside every op's domain, away from every kink


def _alone_at_benign(program: Program, node: int) -> tuple[Expr, tuple[float, ...]] | None:
    """Node ``node``'s op alone at :data:`BENIGN` inputs (same form as the node)."""
    fake = [BENIGN[k % 2] for k in range(len(program))]
    for k, j in enumerate(dict.fromkeys(program.args[node])):
        fake[j] = BENIGN[k]
    return alone_expression(program, node, fake)


def _try(host: Any, program: Program, node: int, alone: tuple[Expr, tuple[float, ...]] | None, severity: str, why: str) -> Blame | None:
    if alone is None:
        return None
    expr, at = alone
    failures = check_alone(host, expr, at, severity)
    if not failures:
        return None
    names = compile_program(expr).variables
    op = program.ops[node]
    return Blame("engine", op, str(expr), f"{op} is wrong alone{why}: {expr} at {format_point(names, at)}: {failures[0].message}", node, at)


def blame_engine(
    host: Any,
    program: Program,
    point: Sequence[float],
    outcome: EngineOutcome | None,
    reference_values: Sequence[float],
    severity: str = "error",
    prefer: str | None = None,
) -> Blame:
    """Blame an op (or the backward pass) for a failure at ``point``.

    Args:
        outcome: the engine's outcome there, with node values if it recorded them;
            None after a crash or a hang (then the reference's node values stand in
            for what the engine would have seen).
        reference_values: the exact value of every node, as floats.
        severity: ``"warning"`` to blame a warning (a robustness or precision issue).
        prefer: check nodes of this op first (when shrinking a finding about it).
    """
    inputs: Sequence[Any] = reference_values
    if outcome is not None and outcome.node_values is not None and len(outcome.node_values) == len(program):
        # Where the engine built the node, use what it saw; past a failure, the truth.
        inputs = [seen if isinstance(seen, float) else truth for seen, truth in zip(outcome.node_values, reference_values)]
    first = outcome.node if outcome is not None else None
    for i in _op_order(program, first, prefer):
        found = _try(host, program, i, alone_expression(program, i, inputs), severity, "")
        if found is None and i == first:
            # This op raised or returned junk; if its inputs here were garbage from
            # upstream, see whether it misbehaves on ordinary ones.
            found = _try(host, program, i, _alone_at_benign(program, i), severity, " even on ordinary inputs")
        if found is not None:
            return found
    if outcome is None:  # a crash or a hang: which op does it alone?
        for i in _op_order(program, None, prefer):
            found = _try(host, program, i, _alone_at_benign(program, i), severity, " on ordinary inputs")
            if found is not None:
                return found
        return Blame("engine", None, "", "no op crashes or hangs alone; only this whole expression does")
    if "add" in set(getattr(host, "supported", ())):
        present = list(dict.fromkeys(program.ops[i] for i in program.op_nodes()))
        present.sort(key=lambda op: (op != "add", op != prefer))
        for op in present:
            node = next(i for i in program.op_nodes() if program.ops[i] == op)
            alone = alone_expression(program, node, inputs) or _alone_at_benign(program, node)
            if alone is None:
                continue
            expr, at = alone
            for leaf in compile_program(expr).variables:
                pattern = apply("add", expr, var(leaf))
                failures = check_alone(host, pattern, at, severity)
                if failures:
                    return Blame(
                        "engine", op, str(pattern),
                        f"{op} overwrites the gradient of its argument instead of adding to it (= instead of +=): "
                        f"{pattern} at {format_point(compile_program(pattern).variables, at)}: {failures[0].message}",
                        node, at,
                    )
    return Blame(
        "engine", "backward", "",
        "every op is right alone and accumulates correctly, so the backward pass itself "
        "(its traversal order or repeated visits of shared nodes) is wrong",
    )
