"""Unit tests of engine.value's library ops (abs, leaky_relu, elu, softplus, gelu, silu,
softsign, tan, atan, log1p, expm1, erf, clamp, maximum, minimum): value and gradient
against mpmath at 50 digits, from tiny to huge inputs; kink conventions; domains."""

from __future__ import annotations

import math

import mpmath
import pytest
from mpmath import mp, mpf

from engine import DomainError, Value

mp.dps = 50
INF, NAN = math.inf, math.nan


def close(got: float, want: mpmath.mpf | float, rel: float = 1e-13) -> bool:
    """Relative 1e-13; absolute only in the subnormal range, where float64 itself has
    no relative precision (5e-324 steps)."""
    return math.isclose(got, float(want), rel_tol=rel, abs_tol=1e-320)


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _ncdf(x):  # mpmath's erfc fails past ~1e150 (an int-to-float overflow); Phi is 0 or 1 there
    return mp.ncdf(x) if abs(x) < 1e6 else mpf(x > 0)


# name -> (mpmath value, mpmath derivative, points in the op's domain)
WIDE = [-1e200, -800.0, -700.0, -30.0, -5.0, -1.5, -0.3, -1e-300, 0.0, 1e-300, 0.3, 1.5, 5.0, 30.0,
        700.0, 800.0, 1e200]
REFS = {
    "abs": (abs, lambda x: mp.sign(x), WIDE),
    "leaky_relu": (lambda x: x if x > 0 else mpf(0.01) * x, lambda x: 1 if x > 0 else mpf(0.01), WIDE),
    "elu": (lambda x: x if x > 0 else mp.expm1(x), lambda x: 1 if x > 0 else mp.exp(x), WIDE),
    "softplus": (lambda x: mp.log1p(mp.exp(x)), _sigmoid, WIDE + [-36.0, 36.0, -1e-20]),
    "gelu": (lambda x: x * _ncdf(x), lambda x: _ncdf(x) + x * mp.npdf(x),
             WIDE + [-37.0, -36.521016771477804, -33.3, -25.0, -10.0, -3.0, -0.5, 8.0]),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),
             WIDE + [-40.0, 40.0, -3.0]),
    "softsign": (lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2, WIDE + [-1e154, 1e155, 1e160]),
    "tan": (mp.tan, lambda x: mp.sec(x) ** 2, WIDE + [1.5707963267948966, -1.57, 1e16, 3.0]),
    "atan": (mp.atan, lambda x: 1 / (1 + x * x), WIDE + [-1e150, 1e154, 2e154, -1e155, 1e160, 1e-160]),
    "log1p": (mp.log1p, lambda x: 1 / (1 + x), [x for x in WIDE if x > -1]
              + [-0.9999999999, -1 + 2**-52, 1e308, -1e-20]),
    "expm1": (mp.expm1, mp.exp, [x for x in WIDE if x < 709] + [709.7, -1e-20, 1e-10, -40.0]),
    "erf": (mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x),
            WIDE + [-26.5, -20.0, -6.0, -2.0, 1e-20, 10.0, 25.0, 27.0]),
}
CASES = [(name, x) for name, (_, _, xs) in REFS.items() for x in xs]


@pytest.mark.parametrize("name, x", CASES, ids=[f"{n}({x!r})" for n, x in CASES])
def test_value_and_gradient_match_mpmath(name, x):
    f, df, _ = REFS[name]
    v = Value(x)
    out = getattr(v, name)()
    out.backward()
    assert close(out.data, f(mpf(x))), (out.data, f(mpf(x)))
    assert close(v.grad, df(mpf(x))), (v.grad, df(mpf(x)))


@pytest.mark.parametrize("name", list(REFS))
def test_upstream_gradient_is_multiplied_and_leaves_accumulate(name):
    x = Value(0.7)
    y = 3 * getattr(x, name)()
    y.backward()
    once = x.grad
    assert close(once, 3 * REFS[name][1](mpf(0.7)))
    y.backward()
    assert x.grad == 2 * once
    # Through another op: d/dx f(f(x)) = f'(f(x)) f'(x).
    x2 = Value(0.7)
    getattr(getattr(x2, name)(), name)().backward()
    f, df, _ = REFS[name]
    assert close(x2.grad, df(f(mpf(0.7))) * df(mpf(0.7)), rel=1e-12)


def test_softplus_with_upstream_three_is_three_sigmoid_in_both_tails():
    for xv in (-800.0, -700.0, 0.0, 800.0):
        x = Value(xv)
        (3 * x.softplus()).backward()
        assert close(x.grad, 3 * _sigmoid(mpf(xv)))


# -- kinks ---------------------------------------------------------------------------

def grad_of(f, x: float) -> float:
    v = Value(x)
    f(v).backward()
    return v.grad


def test_abs_kink_has_derivative_zero():
    for zero in (0.0, -0.0):
        v = Value(zero)
        out = v.abs()
        out.backward()
        assert out.data == 0.0 and math.copysign(1, out.data) == 1 and v.grad == 0.0
    assert grad_of(Value.abs, -2.0) == -1.0 and grad_of(Value.abs, 2.0) == 1.0


def test_leaky_relu_kink_takes_the_left_slope():
    assert grad_of(Value.leaky_relu, 0.0) == 0.01
    assert grad_of(Value.leaky_relu, 1e-300) == 1.0
    assert grad_of(Value.leaky_relu, -1e-300) == 0.01
    assert Value(-2.0).leaky_relu().data == -0.02


def test_elu_is_smooth_at_zero():
    assert grad_of(Value.elu, 0.0) == 1.0
    assert Value(-1e-300).elu().data == -1e-300  # expm1, not exp(x) - 1 == 0


@pytest.mark.parametrize("x, lo, hi, value, grad", [
    (0.5, -1.0, 1.0, 0.5, 1.0),
    (-1.0, -1.0, 1.0, -1.0, 1.0),  # bounds inclusive (torch)
    (1.0, -1.0, 1.0, 1.0, 1.0),
    (-1.0000000000000002, -1.0, 1.0, -1.0, 0.0),
    (1.0000000000000002, -1.0, 1.0, 1.0, 0.0),
    (-800.0, -1.0, 1.0, -1.0, 0.0),
    (1e200, -1.0, 1.0, 1.0, 0.0),
    (INF, -1.0, 1.0, 1.0, 0.0),
    (-INF, -1.0, 1.0, -1.0, 0.0),
    (3.0, 2.0, 5.0, 3.0, 1.0),
    (7.0, 2.0, 5.0, 5.0, 0.0),
    (0.0, 0.0, 0.0, 0.0, 1.0),
    (0.0, 2.0, 1.0, 1.0, 0.0),  # lo > hi: min(max(x, lo), hi) == hi, as torch
])
def test_clamp(x, lo, hi, value, grad):
    v = Value(x)
    out = v.clamp(lo, hi)
    out.backward()
    assert (out.data, v.grad) == (value, grad)


def test_clamp_defaults_and_upstream():
    v = Value(0.25)
    (5 * v.clamp()).backward()
    assert v.grad == 5.0
    assert Value(3.0).clamp().data == 1.0
    assert Value(3.0).clamp(hi=4).data == 3.0
    with pytest.raises(TypeError, match="clamp"):
        Value(1.0).clamp(Value(0.0), 2.0)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_extremum_of_a_value_with_itself_has_total_gradient_one(op):
    x = Value(1.5)
    out = getattr(x, op)(x)
    out.backward()
    assert out.data == 1.5 and x.grad == 1.0


@pytest.mark.parametrize("a, b, mx, gmx, mn, gmn", [
    (2.0, 3.0, 3.0, (0.0, 1.0), 2.0, (1.0, 0.0)),
    (3.0, 2.0, 3.0, (1.0, 0.0), 2.0, (0.0, 1.0)),
    (2.0, 2.0, 2.0, (0.5, 0.5), 2.0, (0.5, 0.5)),  # tie: half each (torch)
    (-INF, 1e200, 1e200, (0.0, 1.0), -INF, (1.0, 0.0)),
    (INF, INF, INF, (0.5, 0.5), INF, (0.5, 0.5)),
    (-1e-300, 1e-300, 1e-300, (0.0, 1.0), -1e-300, (1.0, 0.0)),
])
def test_maximum_minimum(a, b, mx, gmx, mn, gmn):
    for op, value, grads in (("maximum", mx, gmx), ("minimum", mn, gmn)):
        x, y = Value(a), Value(b)
        out = getattr(x, op)(y)
        (2 * out).backward()  # non-unit upstream gradient
        assert out.data == value
        assert (x.grad, y.grad) == (2 * grads[0], 2 * grads[1])


def test_maximum_minimum_lift_numbers_and_reject_others():
    x = Value(2.0)
    out = x.maximum(3)
    out.backward()
    assert out.data == 3.0 and x.grad == 0.0
    x = Value(2.0)
    out = x.minimum(2.0)  # a tie with a constant: half the gradient still goes to x
    out.backward()
    assert out.data == 2.0 and x.grad == 0.5
    for bad in ("3", None, True, [1.0]):
        with pytest.raises(TypeError, match="maximum"):
            Value(1.0).maximum(bad)
        with pytest.raises(TypeError, match="minimum"):
            Value(1.0).minimum(bad)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@pytest.mark.parametrize("a, b", [(NAN, 1.0), (1.0, NAN), (NAN, NAN), (NAN, INF), (-INF, NAN)])
def test_extremum_propagates_nan(op, a, b):
    x, y = Value(a), Value(b)
    out = getattr(x, op)(y)
    out.backward()
    assert math.isnan(out.data)
    assert (x.grad, y.grad) == (1.0, 1.0)  # torch's formula: every comparison is False


# -- domains, infinities, nan --------------------------------------------------------

@pytest.mark.parametrize("x", [-1.0, -1.5, -800.0, -INF])
def test_log1p_at_or_below_minus_one_is_a_domain_error(x):
    with pytest.raises(DomainError, match="log1p"):
        Value(x).log1p()


@pytest.mark.parametrize("x", [INF, -INF])
def test_tan_at_infinity_is_a_domain_error(x):
    with pytest.raises(DomainError, match="tan"):
        Value(x).tan()


@pytest.mark.parametrize("x", [709.8, 710.0, 800.0, 1e200])
def test_expm1_beyond_float64_overflows(x):
    with pytest.raises(OverflowError, match="expm1"):
        Value(x).expm1()


# op, x, value, derivative: the limits at +-inf, never an inf * 0 nan
LIMITS = [
    ("abs", INF, INF, 1.0), ("abs", -INF, INF, -1.0),
    ("leaky_relu", INF, INF, 1.0), ("leaky_relu", -INF, -INF, 0.01),
    ("elu", INF, INF, 1.0), ("elu", -INF, -1.0, 0.0),
    ("softplus", INF, INF, 1.0), ("softplus", -INF, 0.0, 0.0),
    ("gelu", INF, INF, 1.0), ("gelu", -INF, 0.0, 0.0),
    ("silu", INF, INF, 1.0), ("silu", -INF, 0.0, 0.0),
    ("softsign", INF, 1.0, 0.0), ("softsign", -INF, -1.0, 0.0),
    ("atan", INF, math.pi / 2, 0.0), ("atan", -INF, -math.pi / 2, 0.0),
    ("log1p", INF, INF, 0.0),
    ("expm1", INF, INF, INF), ("expm1", -INF, -1.0, 0.0),
    ("erf", INF, 1.0, 0.0), ("erf", -INF, -1.0, 0.0),
]


@pytest.mark.parametrize("name, x, value, grad", LIMITS)
def test_infinite_inputs_give_the_limits(name, x, value, grad):
    v = Value(x)
    out = getattr(v, name)()
    out.backward()
    assert (out.data, v.grad) == (value, grad)


@pytest.mark.parametrize("name", [*REFS, "clamp"])
def test_nan_propagates_to_the_value(name):
    out = getattr(Value(NAN), name)()
    out.backward()
    assert math.isnan(out.data)


def test_ops_are_recorded_in_the_graph():
    x = Value(0.5)
    for name in REFS:
        out = getattr(x, name)()
        assert out._op == name and out._prev == (x,)
    out = x.maximum(1.0)
    assert out._op == "maximum" and out._prev[0] is x and out._prev[1].data == 1.0


def test_sigmoid_unchanged_in_both_tails():
    for xv in (-800.0, -40.0, 0.0, 40.0, 800.0):
        v = Value(xv)
        out = v.sigmoid()
        out.backward()
        assert close(out.data, _sigmoid(mpf(xv)))
        assert close(v.grad, _sigmoid(mpf(xv)) * (1 - _sigmoid(mpf(xv))))
