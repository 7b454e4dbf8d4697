"""Metamorphic relations: facts about derivatives that need no oracle.

Two ways of writing one function must get the same value and gradient from the
engine (``x - y`` and ``x + (-y)``, ``tanh(x)`` and ``2*sigmoid(2x) - 1``, ...),
and the gradients of random expressions must obey the sum, product and chain
rules, all within the float64 noise floors of the expressions involved. Here
``x`` and ``y`` are random subexpressions, not just variables. When a relation
breaks, the exact reference judges each side to name the op at fault.

The relations hold where both sides are smooth and finite, so the points are drawn
there (:func:`properties.clean_points`); each example counts the points it
compared, and one that compared none is assumed away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import clean_points, compared
from verifier.assertions import GradientMismatch, assert_gradients, assert_same_gradients
from verifier.expr import Expr, apply, compile_program, const, natural_key
from verifier.judge import PASS, format_point
from verifier.ops import U
from verifier.reference import sweep
from verifier.run_engine import run
from verifier.strategies import expressions

VARIABLES = ("x0", "x1")


def _subexpression(data: st.DataObject, ops: tuple[str, ...], label: str, variables=VARIABLES) -> Expr:
    return data.draw(expressions(ops=ops, variables=variables, max_leaves=3), label=label)


def _names(*exprs: Expr) -> tuple[str, ...]:
    return tuple(sorted({v for e in exprs for v in e.variables}, key=natural_key))


# -- two ways of writing the same function --------------------------------------------

RELATIONS: dict[str, tuple[tuple[str, ...], Callable[[Expr, Expr], tuple[Expr, Expr]]]] = {
    # name: (ops the relation itself uses, (x, y) -> (f, g) with f = g)
    "sub-is-add-neg": (("sub", "add", "neg"), lambda x, y: (x - y, x + (-y))),
    "div-is-mul-pow": (("div", "mul", "pow"), lambda x, y: (x / y, x * y**-1)),
    "tanh-is-sigmoid": (("tanh", "sigmoid", "mul", "sub"), lambda x, y: (x.tanh(), 2 * (2 * x).sigmoid() - 1)),
    "exp-log-is-identity": (("exp", "log"), lambda x, y: (x.log().exp(), x)),  # inside log's domain
    "f-plus-f-is-twice-f": (("add", "mul"), lambda x, y: (x + x, 2 * x)),  # a shared node accumulates
}


@pytest.mark.parametrize(
    "relation",
    [pytest.param(name, marks=pytest.mark.requires_ops(*ops), id=name) for name, (ops, _) in RELATIONS.items()],
)
@given(data=st.data())
def test_equivalent_forms_have_the_same_gradient(verifier_engine, verifier_ops, relation, data):
    x = _subexpression(data, verifier_ops, "x")
    y = _subexpression(data, verifier_ops, "y")
    f, g = RELATIONS[relation][1](x, y)
    at = clean_points(data, [f, g], _names(f, g))
    compared(assert_same_gradients(f, g, at, engine=verifier_engine) if len(at) else 0)


# -- identities of defined ops (define_op(..., relations=[...]), --verifier-op) --------------

def _stated_relations() -> list:
    from verifier.define import definitions

    return [pytest.param(relation, marks=pytest.mark.requires_ops(d.name), id=f"{d.name}: {relation}")
            for d in definitions() for relation in d.relations]


@pytest.mark.parametrize("relation", _stated_relations() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no defined op states a relation (define_op(..., relations=[...]) or pyproject's [tool.crossgrad.ops])"))])
@given(data=st.data())
def test_stated_relations_of_defined_ops_hold(verifier_engine, relation, data):
    from verifier.define import relation_sides

    f, g = relation_sides(relation)
    at = clean_points(data, [f, g], _names(f, g))
    compared(assert_same_gradients(f, g, at, engine=verifier_engine) if len(at) else 0)


# -- the rules of differentiation -----------------------------------------------------------

@dataclass(frozen=True)
class _At:
    """The engine's answer for one expression at one point, with the noise floors of
    a valid float64 computation there; gradients over all the relation's variables."""

    expr: Expr
    point: dict[str, float]
    value: float
    gradient: tuple[float, ...]
    value_floor: float
    gradient_floor: tuple[float, ...]
    error: str


def _evaluate(engine: type, expr: Expr, point: dict[str, float], names: tuple[str, ...]) -> _At | None:
    """None where the float64 reference is not clean there: outside the domain,
    near a kink or an edge, or overflowing (the rules hold for smooth functions)."""
    program = compile_program(expr)
    row = [point[v] for v in program.variables]
    ref = sweep(program, [row])
    if not ref.clean[0]:
        return None
    [outcome] = run(engine, program, [row])
    gradient, floors = [0.0] * len(names), [0.0] * len(names)
    for k, v in enumerate(program.variables):
        gradient[names.index(v)] = outcome.gradient[k] if outcome.gradient else math.nan
        floors[names.index(v)] = float(ref.gradient_floor[0, k])
    value = outcome.value if isinstance(outcome.value, float) else math.nan
    error = outcome.error if outcome.status != "ok" else ""
    return _At(expr, {v: point[v] for v in program.variables}, value, tuple(gradient), float(ref.value_floor[0]), tuple(floors), error)


def _broken(engine: type, rule: str, whole: _At, parts: list[_At], k: int, names: tuple[str, ...], expected: float, allowed: float) -> GradientMismatch:
    """Judge every piece against the exact reference (which names the op); if each
    is right alone, report the rule itself."""
    for piece in [whole, *parts]:
        assert_gradients(piece.expr, piece.point, engine=engine)  # raises, with blame, if wrong
    lines = [
        f"the {rule} rule fails for d/d{names[k]}: the engine gives {whole.gradient[k]!r}, "
        f"its parts give {expected!r} (allowed {allowed:.2g})",
        f"  whole  {whole.expr}   at {format_point(names, [whole.point.get(n, math.nan) for n in names])}",
    ]
    lines += [f"  part   {p.expr}   at {format_point(tuple(p.point), tuple(p.point.values()))}" for p in parts]
    return GradientMismatch("\n".join(lines))


def _check(engine: type, rule: str, whole: _At | None, parts: list[_At | None], names: tuple[str, ...], predict) -> int:
    if whole is None or any(p is None for p in parts):
        return 0
    for piece in [whole, *parts]:
        if piece.error or not all(math.isfinite(g) for g in piece.gradient):
            assert_gradients(piece.expr, piece.point, engine=engine)  # an exception where all is defined
            return 0
    for k in range(len(names)):
        expected, allowed = predict(k)
        if not abs(whole.gradient[k] - expected) <= allowed:
            raise _broken(engine, rule, whole, parts, k, names, expected, allowed)
    return 1


def _rows(data: st.DataObject, exprs: list[Expr], names: tuple[str, ...]) -> list[dict[str, float]]:
    """Points where every expression of the rule is clean (the rules hold there)."""
    return [dict(zip(names, map(float, row))) for row in clean_points(data, exprs, names)]


@pytest.mark.requires_ops("add")
@given(data=st.data())
def test_sum_rule(verifier_engine, verifier_ops, data):
    """d(a + b) = da + db."""
    a, b = _subexpression(data, verifier_ops, "a"), _subexpression(data, verifier_ops, "b")
    names = _names(a, b)
    judged = 0
    for point in _rows(data, [a + b, a, b], names):
        w, pa, pb = (_evaluate(verifier_engine, e, point, names) for e in (a + b, a, b))

        def predict(k):
            expected = pa.gradient[k] + pb.gradient[k]
            slack = PASS * (w.gradient_floor[k] + pa.gradient_floor[k] + pb.gradient_floor[k])
            return expected, slack + 2 * U * (abs(pa.gradient[k]) + abs(pb.gradient[k]))

        judged += _check(verifier_engine, "sum", w, [pa, pb], names, predict)
    compared(judged)


@pytest.mark.requires_ops("mul")
@given(data=st.data())
def test_product_rule(verifier_engine, verifier_ops, data):
    """d(a * b) = a db + b da."""
    a, b = _subexpression(data, verifier_ops, "a"), _subexpression(data, verifier_ops, "b")
    names = _names(a, b)
    judged = 0
    for point in _rows(data, [a * b, a, b], names):
        w, pa, pb = (_evaluate(verifier_engine, e, point, names) for e in (a * b, a, b))

        def predict(k):
            left, right = pa.value * pb.gradient[k], pb.value * pa.gradient[k]
            slack = PASS * (
                w.gradient_floor[k]
                + abs(pa.value) * pb.gradient_floor[k] + abs(pb.gradient[k]) * pa.value_floor
                + abs(pb.value) * pa.gradient_floor[k] + abs(pa.gradient[k]) * pb.value_floor
            )
            return left + right, slack + 3 * U * (abs(left) + abs(right))

        judged += _check(verifier_engine, "product", w, [pa, pb], names, predict)
    compared(judged)


def _substitute(outer: Expr, name: str, inner: Expr) -> Expr:
    """``outer`` with the variable ``name`` replaced by ``inner``."""
    built: dict[int, Expr] = {}
    for node in outer.nodes():
        if node.op == "var":
            built[id(node)] = inner if node.param == name else node
        elif node.op == "const":
            built[id(node)] = const(node.param)
        else:
            built[id(node)] = apply(node.op, *(built[id(a)] for a in node.args), param=node.param)
    return built[id(outer)]


@given(data=st.data())
def test_chain_rule(verifier_engine, verifier_ops, data):
    """d f(g(x)) / dx = f'(g(x)) g'(x), for random f and g."""
    f = _subexpression(data, verifier_ops, "f", variables=("u",))
    g = _subexpression(data, verifier_ops, "g")
    composed = _substitute(f, "u", g)
    names = _names(g)
    judged = 0
    for point in _rows(data, [g, composed], names):
        pg = _evaluate(verifier_engine, g, point, names)
        if pg is None or pg.error or not math.isfinite(pg.value):
            continue
        # f' at the very number the engine computed for g(x): the composed graph
        # evaluates f's nodes on that same number.
        pf = _evaluate(verifier_engine, f, {"u": pg.value}, ("u",))
        w = _evaluate(verifier_engine, composed, point, names)
        if pf is None or w is None:
            continue

        def predict(k):
            expected = pf.gradient[0] * pg.gradient[k]
            slack = PASS * (w.gradient_floor[k] + abs(pf.gradient[0]) * pg.gradient_floor[k] + abs(pg.gradient[k]) * pf.gradient_floor[0])
            return expected, slack + 2 * U * abs(expected)

        judged += _check(verifier_engine, "chain", w, [pf, pg], names, predict)
    compared(judged)
