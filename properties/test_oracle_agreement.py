"""Oracle agreement: the engine's values and gradients of random expressions
against the exact reference (SymPy's derivatives at 50 digits), with torch float64
and central differences alongside, judged with float64 noise floors.

A failure shows the smallest expression Hypothesis found, the point, every
oracle's answer, the op to blame and the ``verifier replay`` command. Each example counts the points whose value and
gradient met the truth; one with none (all outside the domain, say) is assumed
away.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import compared
from verifier.assertions import assert_gradients
from verifier.expr import Expr, apply, const, var
from verifier.ops import OPS
from verifier.strategies import CONSTANTS, EXPONENTS, cases, points


@given(data=st.data())
def test_random_expressions_agree_with_every_oracle(verifier_engine, verifier_ops, data):
    """Random DAGs (shared nodes, numbers on either side) over the engine's ops,
    each at 8 points: simple, ordinary, huge, tiny and repeated coordinates."""
    case = data.draw(cases(ops=verifier_ops, variables=3, max_leaves=6, count=8), label="case")
    compared(assert_gradients(case.expr, case.points, engine=verifier_engine))


def _forms(op: str) -> list[str]:
    """The ways an op meets the engine: on variables, with a number on either side
    (``3 - x`` calls ``__rsub__``), or with one argument twice (``x * x``)."""
    if OPS[op].arity == 1:
        return ["alone"]
    return ["variables", "number-left", "number-right", "shared"]


def _op_expression(op: str, form: str, number: float, exponent: float) -> Expr:
    a, b = var("a"), var("b")
    if OPS[op].arity == 1:
        return apply(op, a, param=exponent if op == "pow" else None)
    arguments = {
        "variables": (a, b),
        "number-left": (const(number), b),
        "number-right": (a, const(number)),
        "shared": (a, a),
    }[form]
    return apply(op, *arguments)


@pytest.mark.parametrize(
    ("op", "form"),
    [pytest.param(op, form, marks=pytest.mark.requires_ops(op), id=f"{op}-{form}") for op in OPS for form in _forms(op)],
)
@given(data=st.data())
def test_each_op_agrees_with_every_oracle(verifier_engine, op, form, data):
    """Each op alone, in each form: a wrong local derivative shows here first."""
    number = data.draw(st.sampled_from(CONSTANTS), label="number") if form.startswith("number") else 1.0
    exponent = data.draw(st.sampled_from(EXPONENTS), label="exponent") if op == "pow" else 2.0
    expr = _op_expression(op, form, number, exponent)
    at = data.draw(points(expr.variables, count=8), label="points")
    compared(assert_gradients(expr, at, engine=verifier_engine))
