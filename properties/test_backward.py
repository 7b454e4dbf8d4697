"""Backward semantics: reused nodes, accumulation over backward() calls, zeroing.

Conventions (those of torch and of micrograd's training loop):

* a node used twice receives the sum of both gradients (``+=``, not ``=``), in
  every graph shape: shared by two branches, reached at two depths, used twice by
  one op;
* leaves accumulate: ``backward()`` on a second graph that shares leaves with the
  first adds that graph's gradient to theirs;
* after ``.grad = 0`` on the leaves (what micrograd's ``Module.zero_grad`` does),
  the next graph's gradient is exactly its own; ``Value.zero_grad()``, where the
  engine has one, resets what ``backward()`` accumulated;
* two ``backward()`` calls on one graph give the leaves twice the gradient (torch
  with ``retain_graph=True``). micrograd does not reset interior gradients between
  calls, so leaves two levels down get 3x; that is its documented convention
  (karpathy/micrograd#53, closed), not a wrong derivative, so it is reported as an
  expected failure (xfail) with that reason. Any other result fails.

Each example counts what it compared (:func:`properties.compared`): the
semantics are checked at a point where every expression is clean, and an example
whose points have none is assumed away, not passed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import clean_points, compared
from verifier.assertions import GradientMismatch, assert_gradients
from verifier.expr import Expr, compile_program, natural_key, var
from verifier.findings import Blame, Finding
from verifier.judge import PASS, format_point
from verifier.ops import OPS, U
from verifier.reference import sweep
from verifier.run_engine import build
from verifier.strategies import expressions, points

UNARY = tuple(name for name, op in OPS.items() if op.arity == 1)


def _unary(name: str) -> Callable[[Any], Any]:
    """Apply a one-argument op to an Expr or an engine Value alike."""
    if name == "pow":
        return lambda v: v**2
    if name == "neg":
        return lambda v: -v
    return lambda v: getattr(v, name)()


# Graph shapes where a node's gradient arrives from two places (the mutants of an
# `=` instead of `+=`, or of a traversal that is not reverse topological, fail here).
SHAPES: dict[str, Callable[..., Any]] = {
    "shared-by-two-branches": lambda x, y, u, v: u(x * y) + v(x * y),
    "shared-at-two-depths": lambda x, y, u, v: (lambda c: c + u(c))(x * y),
    "mul-input-reused": lambda x, y, u, v: (x * y) * x,
    "add-input-reused": lambda x, y, u, v: (x + y) * x,
    "same-argument-twice": lambda x, y, u, v: (lambda c: c * c + c)(u(x) + y),
    "diamond-chain": lambda x, y, u, v: (lambda a: (lambda b: b * b + a)(a + u(a)))(x * y + v(x)),
}


@pytest.mark.requires_ops("add", "mul")
@pytest.mark.parametrize("shape", list(SHAPES))
@given(data=st.data())
def test_reused_nodes_receive_every_gradient(verifier_engine, verifier_ops, shape, data):
    unary = [op for op in UNARY if op in verifier_ops]
    u = _unary(data.draw(st.sampled_from(unary), label="u")) if unary else (lambda v: v)
    v = _unary(data.draw(st.sampled_from(unary), label="v")) if unary else (lambda v: v)
    expr = SHAPES[shape](var("x"), var("y"), u, v)
    at = data.draw(points(expr.variables, count=8), label="points")
    compared(assert_gradients(expr, at, engine=verifier_engine))


# -- building on given leaves (several graphs over the same leaves) -----------------------

def _build(engine: type, expr: Expr, leaves: dict[str, Any]) -> Any:
    """``expr`` built with the engine's operators over existing leaves."""
    program = compile_program(expr)
    return build(engine, program, [leaves[n] for n in program.variables])[-1]


def _gradient(engine: type, expr: Expr, point: dict[str, float], names: tuple[str, ...]) -> list[float]:
    """The gradient of ``expr`` alone, on fresh leaves."""
    leaves = {n: engine(point[n]) for n in names}
    _build(engine, expr, leaves).backward()
    return [float(leaves[n].grad) for n in names]


def _clean_point(data: st.DataObject, exprs: list[Expr], names: tuple[str, ...]) -> tuple[dict[str, float], list[Any]] | None:
    """A point where every expression is smooth and finite, with their sweeps
    (which give the noise floors); None if the drawn points have none."""
    rows = clean_points(data, exprs, names, count=1)
    if not len(rows):
        return None
    point = dict(zip(names, map(float, rows[0])))
    refs = []
    for e in exprs:
        program = compile_program(e)
        refs.append(sweep(program, [[point[v] for v in program.variables]]))
    return point, refs


def _floors(expr: Expr, ref: Any, names: tuple[str, ...]) -> list[float]:
    out = [0.0] * len(names)
    for k, v in enumerate(compile_program(expr).variables):
        out[names.index(v)] = float(ref.gradient_floor[0, k])
    return out


def _semantics_failure(title: str, expr: Expr, point: dict[str, float], names: tuple[str, ...], rows: list[tuple[str, list[float]]], reason: str) -> GradientMismatch:
    """A failure about state kept between calls: no single evaluation is wrong, so
    the finding is blamed on the backward pass and reported as is."""
    lines = [title, f"  expression   {expr}", f"  point        {format_point(names, [point[n] for n in names])}"]
    width = max(len(label) for label, _ in rows)
    lines.append("  " + " " * width + "  " + "  ".join(f"d/d{n}" for n in names))
    lines += ["  " + label.ljust(width) + "  " + "  ".join(repr(g) for g in grads) for label, grads in rows]
    finding = Finding(
        kind="gradient", severity="error", cause="engine", message=title, expression=str(expr),
        variables=names, point=tuple(point[n] for n in names), status="defined", detail="",
        blame=Blame("engine", "backward", "", reason),
    )
    lines.append(f"  blame        backward — {reason}")
    return GradientMismatch("\n".join(lines), finding)


def _point_of(expr: Expr, point: dict[str, float]) -> dict[str, float]:
    return {v: point[v] for v in expr.variables}


def _agree(got: list[float], want: list[float], allowed: list[float]) -> bool:
    return all(math.isfinite(g) and abs(g - w) <= a for g, w, a in zip(got, want, allowed))


@pytest.mark.requires_ops("add", "mul")
@given(data=st.data())
def test_leaves_accumulate_over_two_graphs(verifier_engine, verifier_ops, data):
    """backward() of f, then of g on the same leaves: the leaves hold df + dg."""
    f = data.draw(expressions(ops=verifier_ops, variables=2, max_leaves=4), label="f")
    g = data.draw(expressions(ops=verifier_ops, variables=2, max_leaves=4), label="g")
    names = tuple(sorted(set(f.variables) | set(g.variables), key=natural_key))
    found = _clean_point(data, [f, g], names)
    if found is None:
        compared(0)  # no clean point drawn: assumed away
    point, (ref_f, ref_g) = found
    assert_gradients(f, _point_of(f, point), engine=verifier_engine)  # each alone first: names a wrong op
    assert_gradients(g, _point_of(g, point), engine=verifier_engine)
    df, dg = _gradient(verifier_engine, f, point, names), _gradient(verifier_engine, g, point, names)
    leaves = {n: verifier_engine(point[n]) for n in names}
    _build(verifier_engine, f, leaves).backward()
    _build(verifier_engine, g, leaves).backward()
    got = [float(leaves[n].grad) for n in names]
    want = [a + b for a, b in zip(df, dg)]
    allowed = [PASS * (a + b) + 2 * U * (abs(x) + abs(y)) for a, b, x, y in zip(_floors(f, ref_f, names), _floors(g, ref_g, names), df, dg)]
    if not _agree(got, want, allowed):
        raise _semantics_failure(
            "leaves do not accumulate: backward() of a second graph over the same leaves should add to their .grad",
            f + g, point, names, [("f alone", df), ("g alone", dg), ("f then g", got), ("expected", want)],
            "backward() overwrites or resets the leaves' .grad instead of adding to it",
        )
    compared(1)


def _judged_case(engine: type, ops: tuple[str, ...], data: st.DataObject) -> tuple[Expr, tuple[str, ...], dict[str, float], Any, list[float]] | None:
    """An expression, a clean point, its sweep and the engine's one-call gradient
    there (after checking that gradient against the oracles: a wrong op is named
    before any semantics); None if the drawn points have no clean one."""
    f = data.draw(expressions(ops=ops, variables=2, max_leaves=4), label="f")
    names = f.variables
    found = _clean_point(data, [f], names)
    if found is None:
        return None
    point, (ref,) = found
    assert_gradients(f, point, engine=engine)
    return f, names, point, ref, _gradient(engine, f, point, names)


@pytest.mark.requires_ops("add", "mul")
@given(data=st.data())
def test_zeroed_leaves_give_a_fresh_gradient(verifier_engine, verifier_ops, data):
    """micrograd's training loop: backward(), set every parameter's .grad = 0,
    build the next graph, backward(): exactly that graph's gradient."""
    case = _judged_case(verifier_engine, verifier_ops, data)
    if case is None:
        compared(0)  # no clean point drawn: assumed away
    f, names, point, ref, fresh = case
    leaves = {n: verifier_engine(point[n]) for n in names}
    _build(verifier_engine, f, leaves).backward()
    for leaf in leaves.values():
        leaf.grad = 0.0
    _build(verifier_engine, f, leaves).backward()
    got = [float(leaves[n].grad) for n in names]
    allowed = [PASS * 2 * a for a in _floors(f, ref, names)]
    if not _agree(got, fresh, allowed):
        raise _semantics_failure(
            "after .grad = 0 on the leaves, a new graph's backward() should give exactly its own gradient",
            f, point, names, [("fresh leaves", fresh), ("zeroed leaves", got)],
            "backward() keeps state from an earlier call beyond the leaves' .grad",
        )
    compared(1)


@pytest.mark.requires_ops("add", "mul")
@given(data=st.data())
def test_zero_grad_method_resets_the_graph(verifier_engine, verifier_ops, data):
    """``out.zero_grad()`` (if the engine has it), then ``out.backward()`` again on
    the same graph: exactly one call's gradient."""
    if not callable(getattr(verifier_engine, "zero_grad", None)):
        pytest.skip("engine has no Value.zero_grad() (micrograd keeps zero_grad on nn.Module)")
    case = _judged_case(verifier_engine, verifier_ops, data)
    if case is None:
        compared(0)  # no clean point drawn: assumed away
    f, names, point, ref, fresh = case
    leaves = {n: verifier_engine(point[n]) for n in names}
    out = _build(verifier_engine, f, leaves)
    out.backward()
    out.zero_grad()
    after_zero = [float(leaves[n].grad) for n in names]
    out.backward()
    got = [float(leaves[n].grad) for n in names]
    allowed = [PASS * 2 * a for a in _floors(f, ref, names)]
    if any(g != 0.0 for g in after_zero) or not _agree(got, fresh, allowed):
        raise _semantics_failure(
            "zero_grad() then backward() on the same graph should give exactly one call's gradient",
            f, point, names, [("one call", fresh), ("after zero_grad", after_zero), ("then backward", got)],
            "zero_grad() does not reset the .grad that backward() accumulates",
        )
    compared(1)


# Two backward() calls on one graph: z = (x * y) * w puts x and y two levels down.
TWICE_POINT = {"x": 1.5, "y": -2.0, "w": 0.75}


@pytest.mark.requires_ops("mul")
def test_two_backward_calls_on_one_graph_double_the_gradient(verifier_engine):
    compared(assert_gradients("x * y * w", TWICE_POINT, engine=verifier_engine))  # one call is right
    x, y, w = (verifier_engine(TWICE_POINT[n]) for n in ("x", "y", "w"))
    z = (x * y) * w
    z.backward()
    once = [float(v.grad) for v in (x, y, w)]
    z.backward()
    twice = [float(v.grad) for v in (x, y, w)]
    names = ("x", "y", "w")
    if twice == [2 * g for g in once]:
        return
    if once == [y.data * w.data, x.data * w.data, x.data * y.data] and twice == [3 * once[0], 3 * once[1], 2 * once[2]]:
        pytest.xfail(
            "backward() does not reset interior gradients between calls, so leaves two levels "
            "down get 3x after two calls (micrograd's convention; torch gives 2x)"
        )
    raise _semantics_failure(
        "two backward() calls on one graph should give the leaves twice the gradient",
        var("x") * var("y") * var("w"), TWICE_POINT, names, [("one call", once), ("two calls", twice), ("expected", [2 * g for g in once])],
        "backward() accumulates neither like torch (2x) nor like micrograd (3x two levels down)",
    )
