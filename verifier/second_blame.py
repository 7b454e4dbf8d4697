"""Naming the op at fault at second order or in forward mode.

Each op node of a failing expression is checked alone at the exact inputs it saw
(as first-order blame does, :mod:`verifier.blame`), now at second order (its
Hessian) or in forward mode (its tangents). An op wrong alone is to blame: its
second derivative is wrong, its backward is detached from the graph under
``create_graph=True`` (its second derivatives come out 0), or its tangent rule is
wrong. An op whose argument is shared (``a * a``) and is wrong only in that form,
right with distinct arguments at the same values, points at how the engine
accumulates gradients that are themselves graphs: the ``create_graph`` machinery.
If every op is right alone, the machinery is to blame: ``create_graph`` for a
Hessian, ``forward`` for a tangent.

Example (blame is asked for only where a finding was judged; on a right engine no op
is wrong alone, so this would fall to the machinery):
    >>> from engine import Value
    >>> from verifier.hosts import InProcess
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> from verifier.reference import exact
    >>> program = compile_program(parse("x * y"))
    >>> blame_higher(InProcess(Value), program, (2.0, 3.0), "hessian", exact(program, (2.0, 3.0)).node_values).op
    'create_graph'
"""

from __future__ import annotations

from typing import Any, Sequence

from verifier.blame import alone_expression
from verifier.expr import Expr, Program, apply, compile_program, var
from verifier.findings import Blame
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import Verdict, format_point
from verifier.reference import truth_at
from verifier.second_order import hessian_at, judge_hessian, judge_tangents

__all__ = ["blame_higher", "wrong_alone", "MACHINERY"]

MACHINERY = {"hessian": "create_graph", "jvp": "forward"}


def wrong_alone(host: Any, expr: Expr, point: Sequence[float], kind: str) -> tuple[Verdict, Any] | None:
    """The engine's first error on ``expr`` at ``point`` at second order (``kind``
    ``hessian``) or in forward mode (``jvp``), with its outcome; None if right."""
    program = compile_program(expr)
    try:
        [outcome] = host.run(program, [point], order=2 if kind == "hessian" else 1, forward=kind == "jvp")
    except (EngineCrash, EngineTimeout):
        return None  # a crash is a first-order finding of its own
    truth = truth_at(program, point)
    if kind == "hessian":
        verdicts = judge_hessian(hessian_at(program, point, truth), outcome)
    else:
        verdicts = judge_tangents(truth, outcome, program.variables, program, point)
    errors = [v for v in verdicts if v.severity == "error"]
    return (errors[0], outcome) if errors else None


def _distinct(program: Program, node: int, inputs: Sequence[Any]) -> tuple[Expr, tuple[float, ...]] | None:
    """A node's op over distinct variables at its inputs' values (``a * b`` for ``x * x``)."""
    point = tuple(float(inputs[j]) for j in program.args[node])
    names = ("a", "b")[: len(point)]
    return apply(program.ops[node], *(var(n) for n in names), param=program.params[node]), point


def _why(op: str, kind: str, verdict: Verdict, outcome: Any) -> str:
    if kind == "jvp":
        return f"{op}'s tangent rule (forward mode) is wrong alone: {verdict.message}"
    if outcome.hessian is not None and all(h == 0 for row in outcome.hessian for h in row):
        return (f"{op}'s backward is detached from the graph under create_graph=True (its second derivatives are all 0): "
                f"{verdict.message}")
    return f"{op}'s second derivative is wrong alone: {verdict.message}"


def blame_higher(host: Any, program: Program, point: Sequence[float], kind: str, node_values: Sequence[Any],
                 prefer: str | None = None) -> Blame:
    """Who is at fault for a ``hessian`` or ``jvp`` finding (see the module docstring)."""
    for node in sorted(program.op_nodes(), key=lambda i: program.ops[i] != prefer):
        alone = alone_expression(program, node, node_values)
        if alone is None:
            continue
        expr, at = alone
        wrong = wrong_alone(host, expr, at, kind)
        if wrong is None:
            continue
        op = program.ops[node]
        names = compile_program(expr).variables
        where = f"{expr} at {format_point(names, at)}"
        args = program.args[node]
        if len(set(args)) < len(args):
            distinct, at2 = _distinct(program, node, node_values)
            if wrong_alone(host, distinct, at2, kind) is None:
                return Blame("engine", MACHINERY[kind], str(expr),
                             f"{op} is right alone with distinct arguments ({distinct}) but wrong as {where}: a gradient "
                             f"accumulated twice into one node loses part of its graph: {wrong[0].message}", node, at)
        return Blame("engine", op, str(expr), f"{where}: {_why(op, kind, *wrong)}", node, at)
    what = "at second order" if kind == "hessian" else "in forward mode"
    return Blame("engine", MACHINERY[kind], "",
                 f"every op is right alone {what}: the engine's {MACHINERY[kind]} machinery is at fault (how gradients "
                 "that are graphs are accumulated and connected)" if kind == "hessian" else
                 f"every op is right alone {what}: the engine's forward-mode machinery is at fault (how tangents are combined)")
