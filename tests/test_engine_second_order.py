"""Unit tests of engine.value's second-order and forward mode: Hessians through
backward(create_graph=True) against SymPy second derivatives (evaluated by mpmath at
1000 digits), from tiny to huge inputs; tangents against reverse mode; accumulation
semantics; deep graphs; and the mutants of tests/engines/second_order.py."""

from __future__ import annotations

import math

import pytest
import sympy
from mpmath import mp, mpf

from engine import DomainError, Value
from tests.engines import second_order
from verifier.loader import load_engine

X, Y, Z = sympy.symbols("x y z", real=True)
SYMBOLS = (X, Y, Z)


def close(got: float, want: float, rel: float = 1e-12, abs_: float = 1e-300) -> bool:
    """Relative 1e-12; absolute only where float64 has no relative precision left."""
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)


def as_float(g) -> float:
    return g.data if hasattr(g, "data") else float(g)  # a Value of any engine class, or a number


def engine_hessian(f, point, cls=Value):
    """Gradient (as floats) and Hessian of f at point, by create_graph and a second
    backward() per row. A grad that is a plain number is a constant: its row is 0."""
    vs = [cls(p) for p in point]
    f(*vs).backward(create_graph=True)
    grads = [v.grad for v in vs]
    rows = []
    for g in grads:
        for v in vs:
            v.grad = 0.0
        if isinstance(g, cls):
            g.backward()
            rows.append([v.grad for v in vs])
        else:
            rows.append([0.0] * len(vs))
    return [as_float(g) for g in grads], rows


def sympy_hessian(expr, point):
    """Exact gradient and Hessian of a SymPy expression, rounded once to float64."""
    symbols = SYMBOLS[: len(point)]
    with mp.workdps(1000):  # cancellations up to e**-700 * e**700 still leave digits
        args = [mpf(p) for p in point]

        def value(e):
            return float(sympy.lambdify(symbols, e, "mpmath")(*args))

        grad = [value(sympy.diff(expr, s)) for s in symbols]
        return grad, [[value(sympy.diff(expr, s, t)) for t in symbols] for s in symbols]


def assert_hessian(f, expr, point, rel=1e-12, abs_=1e-300):
    grad, hess = engine_hessian(f, point)
    want_grad, want_hess = sympy_hessian(expr, point)
    for got, want in zip(grad, want_grad):
        assert close(got, want, rel, abs_), (point, grad, want_grad)
    for got_row, want_row in zip(hess, want_hess):
        for got, want in zip(got_row, want_row):
            assert close(got, want, rel, abs_), (point, hess, want_hess)


# -- every unary op, at tails and tiny inputs ---------------------------------------

def branch(positive, negative):
    """The SymPy expression of a kinked op on the side of 0 where the point is."""
    return lambda x: positive if x > 0 else negative


WIDE = [-700.0, -30.0, -3.0, -0.5, 1e-300, 0.7, 3.0, 30.0, 700.0]
POSITIVE = [1e-150, 0.5, 3.0, 30.0, 700.0, 1e300]
# name -> (engine op, SymPy expression (or a function of the point giving it), points)
UNARY = {
    "exp": (lambda v: v.exp(), sympy.exp(X), [-700.0, -30.0, -0.5, 1e-300, 3.0, 700.0]),
    "log": (lambda v: v.log(), sympy.log(X), POSITIVE),
    "sqrt": (lambda v: v.sqrt(), sympy.sqrt(X), POSITIVE),
    "sin": (lambda v: v.sin(), sympy.sin(X), WIDE),
    "cos": (lambda v: v.cos(), sympy.cos(X), WIDE),
    "tanh": (lambda v: v.tanh(), sympy.tanh(X), WIDE + [-19.5, 1e-20]),
    "sigmoid": (lambda v: v.sigmoid(), 1 / (1 + sympy.exp(-X)), WIDE + [1e-20]),
    "neg": (lambda v: -v, -X, WIDE),
    "square": (lambda v: v**2, X**2, WIDE),
    "cube": (lambda v: v**3, X**3, [-30.0, -0.5, 1e-300, 3.0, 1e100]),
    "pow_half": (lambda v: v**0.5, sympy.sqrt(X), POSITIVE),
    "pow_2.5": (lambda v: v**2.5, X ** sympy.Rational(5, 2), POSITIVE[:-1]),
    "pow_-1": (lambda v: v**-1, 1 / X, [-30.0, -0.5, 0.7, 3.0, 1e100]),
    "pow_0": (lambda v: v**0, sympy.Integer(1), [-3.0, 0.7]),
    "rpow": (lambda v: 2**v, 2**X, [-30.0, -0.5, 0.7, 30.0, 700.0]),
    "relu": (lambda v: v.relu(), branch(X, sympy.Integer(0)), WIDE),
    "abs": (lambda v: v.abs(), branch(X, -X), WIDE),
    "leaky_relu": (lambda v: v.leaky_relu(), branch(X, X / 100), WIDE),
    "elu": (lambda v: v.elu(), branch(X, sympy.exp(X) - 1), WIDE),
    "clamp": (lambda v: v.clamp(-1, 1), lambda x: X if -1 < x < 1 else sympy.Integer(int(math.copysign(1, x))),
              WIDE),
    "softplus": (lambda v: v.softplus(), sympy.log(1 + sympy.exp(X)), WIDE + [-36.0, 36.0]),
    "gelu": (lambda v: v.gelu(), X * sympy.erfc(-X / sympy.sqrt(2)) / 2,
             WIDE + [-37.0, -10.0, 1.4142135623730951, -1.4142135623730951, 8.0]),
    "silu": (lambda v: v.silu(), X / (1 + sympy.exp(-X)), WIDE + [-40.0, 40.0]),
    "softsign": (lambda v: v.softsign(), branch(X / (1 + X), X / (1 - X)), WIDE + [1e154, -1e100]),
    "tan": (lambda v: v.tan(), sympy.tan(X), WIDE + [1.5707963267948966, -1.57]),
    "atan": (lambda v: v.atan(), sympy.atan(X), WIDE + [1e50, -1e100, 1e-160]),
    "log1p": (lambda v: v.log1p(), sympy.log(1 + X), [-0.9999999999, -0.5, 1e-300, 3.0, 700.0, 1e300]),
    "expm1": (lambda v: v.expm1(), sympy.exp(X) - 1, [-700.0, -30.0, -1e-20, 1e-300, 3.0, 700.0]),
    "erf": (lambda v: v.erf(), sympy.erf(X), WIDE + [-6.0, 1e-20, 5.0]),
}
UNARY_CASES = [(name, x) for name, (_, _, xs) in UNARY.items() for x in xs]


@pytest.mark.parametrize("name, x", UNARY_CASES, ids=[f"{n}({x!r})" for n, x in UNARY_CASES])
def test_second_derivative_of_every_unary_op_matches_sympy(name, x):
    f, expr, _ = UNARY[name]
    assert_hessian(f, expr(x) if callable(expr) else expr, [x])


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "gelu", "silu", "softsign", "atan", "erf", "elu"])
@pytest.mark.parametrize("x", [-math.inf, math.inf])
def test_second_derivative_and_tangent_at_infinity_are_limits_not_nan(name, x):
    f = UNARY[name][0]
    [g], [[h]] = engine_hessian(f, [x])
    assert h == 0.0 and not math.isnan(g)
    assert f(Value(x, tangent=1.0)).tangent == g


# -- expressions of several variables -----------------------------------------------

def seed(a, b, c):
    return -a**3 + (3 * b).sin() - 1.0 / c + b**2.5 - a**0.5


SEED_SYMPY = -X**3 + sympy.sin(3 * Y) - 1 / Z + Y ** sympy.Rational(5, 2) - sympy.sqrt(X)

# (engine function, SymPy expression, points)
MULTI = [
    (lambda x, y: x * y, X * Y, [(2.0, 3.0), (-1.5, 0.25)]),
    (lambda x, y: x * x * y, X * X * Y, [(3.0, 2.0), (-0.5, 7.0)]),
    (lambda x, y: x / y, X / Y, [(2.0, 3.0), (-1.5, 1e-100), (1e-299, 1e-247)]),
    (lambda x, y: x - y, X - Y, [(2.0, 3.0)]),
    (lambda x, y: (x - y) ** 2, (X - Y) ** 2, [(2.0, 3.5)]),
    (lambda x, y: x**y, X**Y, [(2.0, 3.0), (0.5, -1.5), (30.0, 0.1)]),
    (lambda x, y: (x * y).sqrt(), sympy.sqrt(X * Y), [(2.0, 3.0), (1e-100, 5.0)]),
    (lambda x, y: (x * y).exp(), sympy.exp(X * Y), [(2.0, 3.0), (-1.0, 30.0)]),
    (lambda x, y: (x * y).log(), sympy.log(X * Y), [(2.0, 3.0)]),
    (lambda x, y: x.sin() * y.cos(), sympy.sin(X) * sympy.cos(Y), [(2.0, 3.0), (-0.3, 1e-300)]),
    (lambda x, y: (x * y).tanh(), sympy.tanh(X * Y), [(0.5, 2.0), (3.0, -10.0)]),
    (lambda x, y: (x + y).sigmoid() * x, X / (1 + sympy.exp(-X - Y)), [(0.5, 2.0), (-30.0, 2.0)]),
    (lambda x, y: x.relu() * y, X * Y, [(2.0, 3.0)]),
    (lambda x, y: x.maximum(y) * x, X * X, [(2.0, 1.0)]),
    (lambda x, y: x.maximum(y) * x, Y * X, [(1.0, 2.0)]),
    (lambda x, y: x.minimum(y) * y, X * Y, [(1.0, 2.0)]),
    (lambda x, y: (x * y).clamp(-1, 1) * x, X * Y * X, [(0.5, 0.5)]),
    (lambda x, y: (x * y).clamp(-1, 1) * x, X, [(2.0, 3.0)]),
    (lambda x, y: (x * y).gelu(), X * Y * sympy.erfc(-X * Y / sympy.sqrt(2)) / 2, [(0.5, 2.0), (-3.0, 2.0)]),
    (lambda x, y: (x / y).softplus() + y.silu(), sympy.log(1 + sympy.exp(X / Y)) + Y / (1 + sympy.exp(-Y)),
     [(0.5, 2.0), (-3.0, 0.1)]),
    (lambda x, y: x.atan() * y.erf() + (x * y).softsign(), sympy.atan(X) * sympy.erf(Y) + X * Y / (1 + X * Y),
     [(0.5, 2.0), (30.0, 0.25)]),
    (lambda x, y: (x * y).tan() + x.log1p() * y.expm1() + (x - y).elu(),
     sympy.tan(X * Y) + sympy.log(1 + X) * (sympy.exp(Y) - 1) + (X - Y),
     [(0.5, 0.25)]),
    (lambda x, y: (x * y).leaky_relu() + (x - y).abs() * x, X * Y / 100 + (Y - X) * X, [(-0.5, 0.25)]),
    (seed, SEED_SYMPY, [(2.0, 3.0, 4.0), (0.25, 1e-5, -30.0)]),
]
MULTI_CASES = [(i, p) for i, (_, _, points) in enumerate(MULTI) for p in points]


@pytest.mark.parametrize("i, point", MULTI_CASES, ids=[f"{i}-{p}" for i, p in MULTI_CASES])
def test_hessian_of_expressions_matches_sympy(i, point):
    f, expr, _ = MULTI[i]
    # Absolute 1e-15 of the terms: entries that cancel to 0 exactly keep a rounding error.
    assert_hessian(f, expr, point, abs_=1e-15)


def test_seed_function_hessian_at_2_3_4_matches_the_exact_one():
    _, hess = engine_hessian(seed, (2.0, 3.0, 4.0))
    a, b, c = sympy.Integer(2), sympy.Integer(3), sympy.Integer(4)
    # Diagonal: -6a + a**-1.5/4, -9 sin(3b) + 3.75 b**0.5, -2/c**3; no mixed terms.
    want = [float(-6 * a + a ** sympy.Rational(-3, 2) / 4),
            float(-9 * sympy.sin(3 * b) + sympy.Rational(15, 4) * sympy.sqrt(b)),
            float(-2 / c**3)]
    for i in range(3):
        for j in range(3):
            assert close(hess[i][j], want[i] if i == j else 0.0, abs_=0.0), (hess, want)


# -- first order is unchanged, accumulation --------------------------------------

def deep_expression(x, y):
    h = (x * y + x).tanh()
    g = (h * h + y.exp()).log() * x
    return (g + h).sigmoid() * g / y.sqrt() + x**2.5 - (x / y) ** 3 + (2 ** y).gelu()


@pytest.mark.parametrize("point", [(0.3, 1.1), (2.0, 0.5), (1e-3, 30.0)])
def test_create_graph_gives_the_same_first_order_floats(point):
    xs = [Value(p) for p in point]
    deep_expression(*xs).backward()
    plain = [v.grad for v in xs]
    vs = [Value(p) for p in point]
    deep_expression(*vs).backward(create_graph=True)
    assert [v.grad.data for v in vs] == plain


def test_a_constant_gradient_stays_a_number():
    x, y = Value(2.0), Value(3.0)
    (x + y + x).backward(create_graph=True)  # additions only: no Value enters the grads
    assert (x.grad, y.grad) == (2.0, 1.0) and type(x.grad) is float and type(y.grad) is float
    x.grad = 0.0
    (x * 4).backward(create_graph=True)  # the constant 4 is a Value leaf: a Value grad
    assert isinstance(x.grad, Value) and x.grad.data == 4.0


def test_leaves_accumulate_across_create_graph_calls_and_interior_nodes_do_not():
    x, y = Value(1.5), Value(-2.0)
    h = x * y
    out = h * x
    out.backward(create_graph=True)
    gx = x.grad.data
    out.backward(create_graph=True)
    assert x.grad.data == 2 * gx and h.grad.data == 1.5  # h.grad is x: once, not twice
    g = x.grad
    x.grad = y.grad = 0.0
    g.backward()
    assert (x.grad, y.grad) == (2 * 2 * y.data, 2 * 2 * x.data)  # twice d2/dx2 = 2y, d2/dxdy = 2x


def test_a_kept_float_grad_is_added_to_a_value_grad():
    x = Value(3.0)
    x.grad = 5.0
    (x * x).backward(create_graph=True)
    assert isinstance(x.grad, Value) and x.grad.data == 11.0
    g = x.grad
    x.grad = 0.0
    g.backward()
    assert x.grad == 2.0  # the kept 5.0 is a constant


def test_a_failed_create_graph_call_leaves_the_leaves_as_they_were():
    x, y = Value(0.0), Value(2.0)
    out = x.sqrt() * y + y * y
    y.grad = 5.0
    with pytest.raises(DomainError, match="sqrt: derivative is infinite"):
        out.backward(create_graph=True)
    assert y.grad == 5.0 and x.grad == 0.0


def test_an_infinite_second_derivative_raises_domain_error():
    x = Value(0.0)
    (x**1.5).backward(create_graph=True)  # 1.5 * x**0.5: finite, its derivative is not
    g, x.grad = x.grad, 0.0
    assert g.data == 0.0
    with pytest.raises(DomainError, match="infinite"):
        g.backward()


def test_third_derivative_of_tanh_raises_not_implemented():
    x = Value(0.5)
    x.tanh().backward(create_graph=True)
    g, x.grad = x.grad, 0.0
    with pytest.raises(NotImplementedError, match=r"engine\.Value: the third derivative of tanh is not implemented"):
        g.backward(create_graph=True)
    assert x.grad == 0.0
    g.backward()  # the second derivative itself is fine
    assert close(x.grad, -2 * math.tanh(0.5) * (1 - math.tanh(0.5) ** 2))


def test_third_derivative_of_polynomials_and_sin_works():
    x = Value(0.7)
    (x**4 + x.sin()).backward(create_graph=True)
    g, x.grad = x.grad, 0.0
    g.backward(create_graph=True)
    h, x.grad = x.grad, 0.0
    h.backward()
    assert close(x.grad, 24 * 0.7 - math.cos(0.7))


# -- forward mode -----------------------------------------------------------------

def tangents(f, point):
    """df/dx_k for each k, by one forward-mode evaluation per variable."""
    return [f(*[Value(p, tangent=1.0 if i == k else 0.0) for i, p in enumerate(point)]).tangent
            for k in range(len(point))]


TANGENT_CASES = [(f, p) for f, _, points in MULTI for p in points] + \
                [(lambda x: f(x), (x,)) for f, _, xs in UNARY.values() for x in xs]


@pytest.mark.parametrize("f, point", TANGENT_CASES)
def test_tangents_equal_the_reverse_mode_gradient(f, point):
    vs = [Value(p) for p in point]
    f(*vs).backward()
    for got, want in zip(tangents(f, point), [v.grad for v in vs]):
        assert close(got, want, rel=1e-13), (got, want)


def test_a_tangent_is_a_jacobian_vector_product_and_is_kept():
    x, y = Value(3.0, tangent=2.0), Value(2.0, tangent=-1.0)
    out = x * x * y
    assert out.tangent == 2 * 12.0 - 1 * 9.0
    assert out._tangent == out.tangent and x.tangent == 2.0 and Value(1.0).tangent == 0.0


def test_an_unused_partial_is_not_evaluated():
    zero = Value(0.0)
    x = Value(2.0, tangent=1.0)
    assert (zero.sqrt() * x).tangent == 0.0  # sqrt'(0) is infinite, but zero's tangent is 0
    assert (Value(math.inf) * x).tangent == math.inf  # no inf * 0 nan from the other side
    with pytest.raises(DomainError, match="sqrt: derivative is infinite"):
        Value(0.0, tangent=1.0).sqrt().tangent  # noqa: B018
    with pytest.raises(DomainError, match="infinite"):
        (Value(0.0, tangent=1.0) ** 0.5).tangent  # noqa: B018
    assert (Value(0.0, tangent=1.0) ** 0).tangent == 0.0


def test_tangent_argument_is_checked():
    with pytest.raises(TypeError, match="tangent must be a real number"):
        Value(1.0, tangent="1")
    with pytest.raises(AttributeError):
        Value(1.0).tangent = 2.0


def test_forward_over_reverse_gives_a_hessian_vector_product():
    x, y = Value(0.5, tangent=1.0), Value(2.0)
    (x * y).tanh().backward(create_graph=True)
    t = math.tanh(1.0)
    # d/dx of d/dx tanh(xy) = y**2 tanh''(xy)
    assert close(x.grad.tangent, 4 * -2 * t * (1 - t * t))


def test_an_op_without_a_tangent_rule_raises():
    class Custom(Value):
        def twice(self):
            out = Custom(2 * self.data, (self,), "twice")

            def _backward():
                self.grad += 2 * out.grad

            out._backward = _backward
            return out

    x = Custom(1.0, tangent=1.0)
    y = x.twice() * 3  # a subclass's micrograd-style _backward() still works in backward()
    y.backward()
    assert x.grad == 6.0 and type(y) is Custom
    with pytest.raises(NotImplementedError, match="no tangent rule for op 'twice'"):
        y.tangent  # noqa: B018


def test_results_are_of_the_operands_class():
    class Sub(Value):
        pass

    x = Sub(0.5)
    for out in (x * 2, 2 - x, 1 / x, 2**x, x**2, x.tanh(), x.gelu(), x.maximum(1.0), -x, x.clamp()):
        assert type(out) is Sub, out._op
    out = (x * x).tanh()
    out.backward(create_graph=True)
    assert type(x.grad) is Sub


# -- deep graphs ------------------------------------------------------------------

def test_create_graph_and_tangent_on_a_5000_deep_graph():
    n, c0 = 5000, 1.0001
    x, c = Value(1.5, tangent=1.0), Value(c0)
    y = x
    for _ in range(n):
        y = y * c
    # y = x c**n: d2y/dx dc = n c**(n-1), d2y/dc2 = x n(n-1) c**(n-2), dy/dx = c**n
    assert close(y.tangent, c0**n, rel=1e-9)
    y.backward(create_graph=True)
    gx, gc = x.grad, c.grad
    x.grad = c.grad = 0.0
    gc.backward()
    assert close(x.grad, n * c0 ** (n - 1), rel=1e-9) and close(c.grad, 1.5 * n * (n - 1) * c0 ** (n - 2), rel=1e-9)
    x.grad = c.grad = 0.0
    gx.backward()
    assert x.grad == 0.0 and close(c.grad, n * c0 ** (n - 1), rel=1e-9)


def test_deep_sin_chain_tangent_read_from_the_bottom_up():
    x = Value(0.3, tangent=1.0)
    nodes = [x]
    for _ in range(5000):
        nodes.append(nodes[-1].sin())
    for v in nodes:  # each reading stops at the node below, already done
        v.tangent  # noqa: B018
    want = 1.0
    for v in nodes[:-1]:
        want *= math.cos(v.data)
    assert close(nodes[-1].tangent, want)


# -- mutants ----------------------------------------------------------------------

@pytest.mark.parametrize("mutant", second_order.MUTANTS, ids=[m.name for m in second_order.MUTANTS])
def test_each_mutant_patch_applies_exactly_once(mutant, tmp_path):
    assert second_order.ENGINE_PATH.read_text(encoding="utf-8").count(mutant.old) == 1
    assert second_order.write(tmp_path, mutant).read_text(encoding="utf-8").count(mutant.new) >= 1


def mutant_engine(name, tmp_path):
    return load_engine(f"{second_order.write(tmp_path, second_order.BY_NAME[name])}:Value")


def first_order(cls, f, point):
    vs = [cls(p) for p in point]
    f(*vs).backward()
    return [v.grad for v in vs]


# name -> (expression, point, exact gradient, exact Hessian)
MUTANT_WITNESSES = {
    "tanh_second_derivative_wrong": (lambda x: x.tanh(), (0.5,), [1 - math.tanh(0.5) ** 2],
                                     [[-2 * math.tanh(0.5) * (1 - math.tanh(0.5) ** 2)]]),
    "mul_detached_in_create_graph": (lambda x, y: x * y, (2.0, 3.0), [3.0, 2.0], [[0.0, 1.0], [1.0, 0.0]]),
    "accumulation_detached": (lambda x: x * x, (3.0,), [6.0], [[2.0]]),
}


@pytest.mark.parametrize("name", list(MUTANT_WITNESSES))
def test_hessian_mutants_have_right_gradients_and_a_wrong_hessian(name, tmp_path):
    cls = mutant_engine(name, tmp_path)
    f, point, grad, hess = MUTANT_WITNESSES[name]
    assert all(close(g, w, rel=1e-15) for g, w in zip(first_order(cls, f, point), grad))
    got_grad, got_hess = engine_hessian(f, point, cls)
    assert all(close(g, w, rel=1e-15) for g, w in zip(got_grad, grad))

    def matches(h):
        return all(close(g, w, rel=1e-15) for row, want in zip(h, hess) for g, w in zip(row, want))

    assert not matches(got_hess), got_hess
    assert matches(engine_hessian(f, point)[1])  # the real engine


def test_sin_tangent_mutant_has_right_gradients_and_a_wrong_tangent(tmp_path):
    cls = mutant_engine("sin_tangent_sign", tmp_path)
    assert first_order(cls, lambda x: x.sin(), (0.5,)) == [math.cos(0.5)]
    assert cls(0.5, tangent=1.0).sin().tangent == -math.cos(0.5)
    assert Value(0.5, tangent=1.0).sin().tangent == math.cos(0.5)
    _, hess = engine_hessian(lambda x: x.sin(), (0.5,), cls)
    assert hess == [[-math.sin(0.5)]]  # its backward is untouched, also in create_graph
