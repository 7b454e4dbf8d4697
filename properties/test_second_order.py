"""Second derivatives and forward mode (``--verifier-order``, ``--verifier-modes``).

Run where the engine can (``auto``, the default): second order where its
``backward`` accepts ``create_graph=True`` (each ``.grad`` is then a Value that is
back-propagated again), forward mode where ``Value(x, tangent=t)`` carries a
``.tangent``; elsewhere skipped with the reason. ``--verifier-order 2`` or
``--verifier-modes fwd,rev`` make an engine that cannot fail instead.

* the Hessian of random expressions against the exact one (SymPy's second
  derivatives composed along the graph, at 50 digits), judged with float64 noise
  floors, and the Hessian of each op alone, in each form (``x * x`` too);
* relations that need no oracle: the Hessian is symmetric, and the chain rule at
  second order (``u(g)`` has ``u''(g) grad g grad g^T + u'(g) H g``) holds for
  the engine's own answers;
* forward mode: each tangent against the exact partial, and against the engine's
  own reverse-mode gradient.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import clean_points, compared
from properties.test_oracle_agreement import _forms, _op_expression
from verifier.assertions import assert_hessians, assert_tangents
from verifier.expr import apply, compile_program, var
from verifier.judge import PASS, format_point
from verifier.ops import OPS
from verifier.reference import exact
from verifier.run_engine import run
from verifier.second_order import hessian_at
from verifier.strategies import CONSTANTS, EXPONENTS, cases, expressions, points

UNARY = tuple(name for name, op in OPS.items() if op.arity == 1 and name != "pow")


@given(data=st.data())
def test_random_hessians_agree_with_the_exact_one(verifier_second_order, verifier_ops, data):
    case = data.draw(cases(ops=verifier_ops, variables=3, max_leaves=5, count=4), label="case")
    compared(assert_hessians(case.expr, case.points, engine=verifier_second_order))


@pytest.mark.parametrize(
    ("op", "form"),
    [pytest.param(op, form, marks=pytest.mark.requires_ops(op), id=f"{op}-{form}") for op in OPS for form in _forms(op)],
)
@given(data=st.data())
def test_each_op_has_the_exact_second_derivative(verifier_second_order, op, form, data):
    """Each op alone, in each form: a wrong second derivative, or a backward that
    detaches under create_graph, shows here first (``x * x``: accumulation)."""
    number = data.draw(st.sampled_from(CONSTANTS), label="number") if form.startswith("number") else 1.0
    exponent = data.draw(st.sampled_from(EXPONENTS), label="exponent") if op == "pow" else 2.0
    expr = _op_expression(op, form, number, exponent)
    at = data.draw(points(expr.variables, count=6), label="points")
    compared(assert_hessians(expr, at, engine=verifier_second_order))


def _hessians(engine: type, program, rows) -> list:
    return [o.hessian if o.status == "ok" else None for o in run(engine, program, [tuple(r) for r in rows], order=2)]


@given(data=st.data())
def test_the_hessian_is_symmetric(verifier_second_order, verifier_ops, data):
    """d2f/dxdy is d2f/dydx: the engine's two passes reach it from either side."""
    expr = data.draw(expressions(ops=verifier_ops, variables=2, max_leaves=5), label="expr")
    rows = clean_points(data, [expr], expr.variables, count=4)
    program = compile_program(expr)
    judged = 0
    for row, h in zip(rows, _hessians(verifier_second_order, program, rows)):
        ref = hessian_at(program, row)
        if h is None or not ref.all_judged:
            continue
        n = len(row)
        for i in range(n):
            for j in range(i + 1, n):
                allowed = PASS * (ref.floor[i][j] + ref.floor[j][i])
                assert abs(h[i][j] - h[j][i]) <= allowed, (
                    f"{expr} at {format_point(program.variables, row)}: d2/d{program.variables[i]}d{program.variables[j]} "
                    f"is {h[i][j]!r} one way and {h[j][i]!r} the other (allowed {allowed:.3g})")
        judged += 1
    compared(judged)


@pytest.mark.parametrize("outer", [pytest.param(op, marks=pytest.mark.requires_ops(op)) for op in UNARY])
@given(data=st.data())
def test_the_chain_rule_holds_at_second_order(verifier_second_order, verifier_ops, outer, data):
    """The engine's Hessian of u(g) is u''(g) grad g grad g^T + u'(g) H g, from its
    own answers for u alone and for g: no oracle needed."""
    inner = data.draw(expressions(ops=verifier_ops, variables=2, max_leaves=4), label="inner")
    whole = apply(outer, inner)
    rows = clean_points(data, [whole, inner], inner.variables, count=4)
    g_program, f_program = compile_program(inner), compile_program(whole)
    u_program = compile_program(apply(outer, var("t")))
    judged = 0
    for row in rows:
        [g], [f] = run(verifier_second_order, g_program, [tuple(row)], order=2), run(verifier_second_order, f_program, [tuple(row)], order=2)
        if g.status != "ok" or f.status != "ok" or g.hessian is None or f.hessian is None:
            continue
        [u] = run(verifier_second_order, u_program, [(g.value,)], order=2)
        f_ref, g_ref = hessian_at(f_program, row), hessian_at(g_program, row)
        u_ref = hessian_at(u_program, (g.value,))
        if u.status != "ok" or u.hessian is None or not (f_ref.all_judged and g_ref.all_judged and u_ref.all_judged):
            continue
        g_truth = exact(g_program, row)
        slope, curvature = u.gradient[0], u.hessian[0][0]
        n = len(row)
        if not all(math.isfinite(g.gradient[i] * g.gradient[j]) for i in range(n) for j in range(n)):
            continue  # the relation's own terms overflow float64 here
        for i in range(n):
            for j in range(n):
                want = curvature * g.gradient[i] * g.gradient[j] + slope * g.hessian[i][j]
                terms = (f_ref.floor[i][j], abs(slope) * g_ref.floor[i][j], u_ref.floor[0][0] * abs(g.gradient[i] * g.gradient[j]),
                         abs(curvature) * (abs(g.gradient[i]) * g_truth.gradient_floor[j] + abs(g.gradient[j]) * g_truth.gradient_floor[i]),
                         4 * 2.0**-53 * (abs(curvature * g.gradient[i] * g.gradient[j]) + abs(slope * g.hessian[i][j])))
                allowed = PASS * sum(t for t in terms if t == t)  # nan: a product 0 * inf, which is 0 here
                assert abs(f.hessian[i][j] - want) <= 2 * allowed, (
                    f"{whole} at {format_point(f_program.variables, row)}: entry [{i}][{j}] is {f.hessian[i][j]!r}, the chain rule "
                    f"from the engine's own {outer}'={slope!r}, {outer}''={curvature!r} and Hessian of {inner} gives {want!r}")
        judged += 1
    compared(judged)


@given(data=st.data())
def test_tangents_agree_with_the_exact_gradient(verifier_forward_mode, verifier_ops, data):
    case = data.draw(cases(ops=verifier_ops, variables=3, max_leaves=6, count=8), label="case")
    compared(assert_tangents(case.expr, case.points, engine=verifier_forward_mode))


@given(data=st.data())
def test_forward_and_reverse_mode_agree(verifier_forward_mode, verifier_ops, data):
    """The engine's tangents (JVPs with unit tangents) are its own gradient (VJP)."""
    expr = data.draw(expressions(ops=verifier_ops, variables=3, max_leaves=6), label="expr")
    rows = clean_points(data, [expr], expr.variables, count=4)
    program = compile_program(expr)
    judged = 0
    for row, o in zip(rows, run(verifier_forward_mode, program, [tuple(r) for r in rows], forward=True)):
        if o.status != "ok" or o.tangents is None:
            continue
        truth = exact(program, row)
        for k, name in enumerate(program.variables):
            allowed = 2 * PASS * truth.gradient_floor[k]
            assert abs(o.tangents[k] - o.gradient[k]) <= allowed, (
                f"{expr} at {format_point(program.variables, row)}: forward mode gives d/d{name} = {o.tangents[k]!r}, "
                f"reverse mode {o.gradient[k]!r} (allowed {allowed:.3g})")
        judged += 1
    compared(judged)
