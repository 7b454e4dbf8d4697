"""Unit tests of engine.value: every op's value and gradient (by hand and vs torch
float64), operator plumbing, backward semantics, numerical soundness, bad inputs."""

from __future__ import annotations

import fractions
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import engine
import engine.value
from engine import DomainError, Value, topological_order, zero_grad

F64 = torch.float64


def eng(f, *xs):
    """Value and gradient of f at xs, through the engine."""
    vs = [Value(x) for x in xs]
    out = f(*vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def tor(f, *xs):
    """Value and gradient of f at xs, through torch float64 autograd."""
    ts = [torch.tensor(float(x), dtype=F64, requires_grad=True) for x in xs]
    out = f(*ts)
    out.backward()
    return out.item(), [t.grad.item() for t in ts]


def close(a: float, b: float, rel: float = 1e-13, abs_: float = 1e-300) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# name, engine op, torch op, value by math, derivative by hand, points
UNARY = [
    ("exp", lambda v: v.exp(), torch.exp, math.exp, math.exp, [-2.0, 0.0, 0.5, 3.0]),
    ("log", lambda v: v.log(), torch.log, math.log, lambda x: 1 / x, [0.1, 1.0, 7.5]),
    ("tanh", lambda v: v.tanh(), torch.tanh, math.tanh, lambda x: 1 - math.tanh(x) ** 2,
     [-3.0, -0.2, 0.0, 0.7, 2.0]),
    ("relu", lambda v: v.relu(), torch.relu, lambda x: max(0.0, x), lambda x: float(x > 0), [-1.5, 2.5]),
    ("sigmoid", lambda v: v.sigmoid(), torch.sigmoid, lambda x: 1 / (1 + math.exp(-x)),
     lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2, [-4.0, 0.0, 0.3, 5.0]),
    ("sin", lambda v: v.sin(), torch.sin, math.sin, math.cos, [-1.0, 0.0, 2.0, 10.0]),
    ("cos", lambda v: v.cos(), torch.cos, math.cos, lambda x: -math.sin(x), [-1.0, 0.0, 2.0, 10.0]),
    ("sqrt", lambda v: v.sqrt(), torch.sqrt, math.sqrt, lambda x: 0.5 / math.sqrt(x), [0.25, 2.0, 9.0]),
    ("neg", lambda v: -v, torch.neg, lambda x: -x, lambda x: -1.0, [-2.0, 3.0]),
    ("pos", lambda v: +v * 1, lambda t: +t * 1, lambda x: x, lambda x: 1.0, [-2.0, 3.0]),
]
for _p, _xs in [(2, [-1.5, 0.0, 3.0]), (3, [-2.0, 1.5]), (0.5, [0.3, 4.0]), (-1, [-2.0, 0.5]),
                (2.5, [0.0, 3.0]), (-2, [-3.0, 1.5]), (0, [-2.0, 0.0, 5.0]), (1, [0.0, -4.0])]:
    UNARY.append((f"**{_p}", lambda v, p=_p: v**p, lambda t, p=_p: t**p, lambda x, p=_p: x**p,
                  lambda x, p=_p: 0.0 if p == 0 else p * x ** (p - 1), _xs))

UNARY_CASES = [pytest.param(op, x, id=f"{op[0]}({x})") for op in UNARY for x in op[5]]


@pytest.mark.parametrize("op,x", UNARY_CASES)
def test_unary_value_and_gradient_by_hand_and_vs_torch(op, x):
    name, fe, ft, fv, fd, _ = op
    value, (grad,) = eng(fe, x)
    assert type(value) is float and type(grad) is float
    assert close(value, fv(x)), f"{name}({x}) = {value}, math says {fv(x)}"
    assert close(grad, fd(x)), f"d {name}/dx at {x} = {grad}, by hand {fd(x)}"
    tv, (tg,) = tor(ft, x)
    assert close(value, tv) and close(grad, tg), f"{name}({x}): engine {value, grad}, torch {tv, tg}"


BINARY = [
    ("+", lambda a, b: a + b, lambda a, b: (1.0, 1.0)),
    ("-", lambda a, b: a - b, lambda a, b: (1.0, -1.0)),
    ("*", lambda a, b: a * b, lambda a, b: (b, a)),
    ("/", lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2)),
    ("**", lambda a, b: a**b, lambda a, b: (b * a ** (b - 1), a**b * math.log(a))),
]
BINARY_POINTS = [(2.0, 1.5), (0.5, -2.0), (3.0, 0.0), (7.25, 0.3)]


BINARY_CASES = [pytest.param(op, a, b, id=f"{a}{op[0]}{b}")
                for op in BINARY for a, b in BINARY_POINTS if not (op[0] == "/" and b == 0)]


@pytest.mark.parametrize("op,a,b", BINARY_CASES)
def test_binary_value_and_gradients(op, a, b):
    name, f, d = op
    value, grads = eng(f, a, b)
    assert close(value, f(a, b), rel=1e-15)
    for got, want in zip(grads, d(a, b)):
        assert close(got, want, rel=1e-14, abs_=1e-300), (name, a, b, grads)
    tv, tg = tor(f, a, b)
    assert close(value, tv) and all(close(g, t) for g, t in zip(grads, tg)), (name, grads, tg)


@pytest.mark.parametrize("name,f", [
    ("c+x", lambda x: 2.5 + x), ("x+c", lambda x: x + 2.5), ("c-x", lambda x: 2.5 - x),
    ("x-c", lambda x: x - 2.5), ("c*x", lambda x: 2.5 * x), ("x*c", lambda x: x * 2.5),
    ("c/x", lambda x: 2.5 / x), ("x/c", lambda x: x / 2.5), ("c**x", lambda x: 2.5**x),
    ("x**c", lambda x: x**2.5), ("int c/x", lambda x: 3 / x), ("int c**x", lambda x: 2**x),
])
def test_number_on_either_side(name, f):
    x = 1.75
    value, (grad,) = eng(f, x)
    tv, (tg,) = tor(f, x)
    assert close(value, tv) and close(grad, tg), (name, value, grad, tv, tg)


def test_division_by_a_tiny_number_keeps_a_representable_gradient():
    # as a * b**-1 the local derivative b**-2 = 1e494 would overflow
    value, grads = eng(lambda a, b: a / b, -1e-299, -1e-247)
    tv, tg = tor(lambda a, b: a / b, -1e-299, -1e-247)
    assert close(value, 1e-52) and close(grads[0], -1e247) and close(grads[1], 1e195)
    assert close(value, tv) and close(grads[0], tg[0]) and close(grads[1], tg[1])


def test_power_gradient_when_the_local_derivative_alone_would_overflow():
    x = Value(1e-110)
    (x**-2 * 1e-100).backward()  # -2 x**-3 = -2e330 overflows; times 1e-100 it does not
    assert close(x.grad, -2e230, rel=1e-14)
    x = Value(-1e-268)
    (x**-1).tanh().backward()  # tanh' underflows to 0 and the true gradient is 0, not nan
    assert x.grad == 0.0
    with pytest.raises(OverflowError, match=r"^\*\*: derivative of x \*\* -2.0 at 1e-150 overflows"):
        (Value(1e-150) ** -2).backward()  # -2e450 is really beyond float64


def test_numpy_scalars_work_on_both_sides_and_give_plain_floats():
    x = Value(3.0)
    for out in (np.float64(2.0) * x, x * np.float64(2.0), np.float32(2.0) + x + x, np.int64(2) ** x):
        assert isinstance(out, Value) and type(out.data) is float
    assert (np.float64(2.0) * x).data == 6.0 and (np.int64(2) ** x).data == 8.0


@pytest.mark.parametrize("bad", ["a", None, [1.0], 1j, True])
def test_unsupported_operands_raise_type_error(bad):
    x = Value(2.0)
    for f in (lambda: x + bad, lambda: bad + x, lambda: x * bad, lambda: x - bad,
              lambda: x / bad, lambda: bad / x, lambda: x**bad):
        with pytest.raises(TypeError):
            f()


def test_composite_expressions_vs_torch():
    def f1(a, b, c):
        return ((a * b).tanh() + c.exp() / (a**2 + 1)).log() - (b - c).sigmoid() * 3

    def f2(a, b, c):
        return (a.sin() * b.cos() + c.relu()) ** 3 / (b * b + c.sqrt())

    def f3(a, b, c):
        return a ** b * c - 2.0 ** (a - c) + (1 / c) ** 0.5

    f1t = lambda a, b, c: torch.log(torch.tanh(a * b) + torch.exp(c) / (a**2 + 1)) - torch.sigmoid(b - c) * 3
    f2t = lambda a, b, c: (torch.sin(a) * torch.cos(b) + torch.relu(c)) ** 3 / (b * b + torch.sqrt(c))
    for fe, ft in ((f1, f1t), (f2, f2t), (f3, f3)):
        for point in ((0.7, -1.2, 0.4), (1.3, 0.5, 2.2)):
            value, grads = eng(fe, *point)
            tv, tg = tor(ft, *point)
            assert close(value, tv, rel=1e-12), (fe.__name__, point)
            assert all(close(g, t, rel=1e-12) for g, t in zip(grads, tg)), (fe.__name__, grads, tg)


# -- graph structure and backward semantics ------------------------------------------

def test_prev_is_a_tuple_in_argument_order_with_duplicates():
    a, b = Value(2.0), Value(3.0)
    assert (a * b)._prev == (a, b) and (b * a)._prev[0] is b
    sq = a * a
    assert isinstance(sq._prev, tuple) and len(sq._prev) == 2 and sq._prev[0] is sq._prev[1] is a
    assert (a * b)._op == "*" and (a / b)._op == "/" and (a + b)._op == "+" and (a**2)._op == "**2" and a.tanh()._op == "tanh"
    assert Value(1.0, label="w").label == "w" and Value(1.0)._prev == ()


@pytest.mark.parametrize("f,want", [
    (lambda x: x * x, 2 * 3.0),  # d x^2 = 2x
    (lambda x: x + x, 2.0),
    (lambda x: x * x * x, 3 * 3.0**2),
    (lambda x: (x * 2).exp() + (x * 2) * x, None),
])
def test_shared_nodes_counted_every_time(f, want):
    value, (grad,) = eng(f, 3.0)
    _, (tg,) = tor(f, 3.0)
    assert close(grad, tg)
    if want is not None:
        assert grad == want


def test_node_used_by_two_parents():
    a = Value(0.5)
    b = a * 3  # b feeds both c and d
    c, d = b.tanh(), b * b
    out = c + d
    out.backward()
    t = torch.tensor(0.5, dtype=F64, requires_grad=True)
    tb = t * 3
    (torch.tanh(tb) + tb * tb).backward()
    assert close(a.grad, t.grad.item()) and close(b.grad, (1 - math.tanh(1.5) ** 2) + 2 * 1.5)


def deep_expression():
    x, y = Value(0.3), Value(-1.1)
    h = (x * y + x).tanh()
    g = (h * h + y.exp()).log() * x
    return x, y, h, (g + h).sigmoid() * g  # depth >= 5, x and y shared


def test_two_backward_calls_give_exactly_twice_at_leaves_and_once_inside():
    x, y, h, out = deep_expression()
    out.backward()
    gx, gy, gh = x.grad, y.grad, h.grad
    out.backward()
    assert (x.grad, y.grad) == (2 * gx, 2 * gy)  # exact, at depth >= 3 and with sharing
    assert h.grad == gh and out.grad == 1.0  # interior nodes hold the latest call only


def test_micrograd_itself_gets_three_times_at_depth_two():
    """Documents why we reset interior grads: micrograd accumulates them too."""
    from micrograd.engine import Value as MicroValue

    x = MicroValue(3.0)
    y = (x * 2) * 5
    y.backward(); y.backward()
    assert x.grad == 30  # 3 x 10
    x2 = Value(3.0)
    y2 = (x2 * 2) * 5
    y2.backward(); y2.backward()
    assert x2.grad == 20.0


def test_backward_on_a_leaf_accumulates_one_per_call():
    x = Value(4.0)
    x.backward(); x.backward()
    assert x.grad == 2.0


def test_zero_grad_function_and_method():
    x, y, h, out = deep_expression()
    out.backward()
    other = Value(2.0)
    (other * 3).backward()
    zero_grad(out, other)
    assert all(v.grad == 0.0 for v in topological_order(out)) and other.grad == 0.0
    out.backward()
    g = x.grad
    out.zero_grad()
    assert x.grad == y.grad == h.grad == out.grad == 0.0
    out.backward()
    assert x.grad == g != 0.0


def test_failed_backward_leaves_leaf_grads_untouched():
    x, y = Value(0.0), Value(2.0)
    out = x.sqrt() * y + y * y
    y.grad = 5.0
    with pytest.raises(DomainError):
        out.backward()
    assert y.grad == 5.0 and x.grad == 0.0


def test_backward_through_a_100000_deep_chain():
    x, c = Value(1.0), Value(1.00001)
    y = x
    for _ in range(100_000):
        y = y * c
    y.backward()  # a recursive topological sort would hit the recursion limit
    n = 100_000
    assert close(y.data, c.data**n, rel=1e-9) and close(x.grad, c.data**n, rel=1e-9)
    assert close(c.grad, n * c.data ** (n - 1), rel=1e-9)  # c is shared by every level
    assert len(topological_order(y)) == n + 2


def reference_topo(root):
    """The textbook recursive version, for small graphs only."""
    order, seen = [], set()

    def visit(v):
        if id(v) not in seen:
            seen.add(id(v))
            for c in v._prev:
                visit(c)
            order.append(v)

    visit(root)
    return order


def test_topological_order_matches_recursive_reference_on_random_dags():
    rng = random.Random(7)
    for _ in range(50):
        nodes = [Value(rng.uniform(0.5, 2)) for _ in range(3)]
        for _ in range(rng.randint(1, 30)):
            a, b = rng.choice(nodes), rng.choice(nodes)
            nodes.append(rng.choice([a + b, a * b, a.tanh(), a * a]))
        root = nodes[-1]
        order = topological_order(root)
        assert [id(v) for v in order] == [id(v) for v in reference_topo(root)]
        pos = {id(v): i for i, v in enumerate(order)}
        assert len(pos) == len(order)  # each node once
        assert all(pos[id(c)] < pos[id(v)] for v in order for c in v._prev)  # children first


def test_topological_order_rejects_non_values():
    with pytest.raises(TypeError, match="got float 2.0"):
        topological_order(2.0)


# -- numerical soundness ------------------------------------------------------------

@pytest.mark.parametrize("x", [-800.0, -1000.0, 800.0, 1e4])
def test_sigmoid_and_tanh_do_not_overflow_and_reach_their_limits(x):
    s, t = Value(x).sigmoid(), Value(x).tanh()
    assert s.data == (1.0 if x > 0 else 0.0) and t.data == math.copysign(1.0, x)
    s.backward(); t.backward()
    assert s._prev[0].grad == 0.0 and t._prev[0].grad == 0.0


def test_sigmoid_keeps_relative_accuracy_far_left():
    s = Value(-700.0).sigmoid()
    s.backward()
    true = math.exp(-700.0)  # sigmoid(-700) = e^-700 / (1 + e^-700), and e^-700 ~ 1e-304
    assert s.data > 0 and math.isclose(s.data, true, rel_tol=1e-14)
    assert math.isclose(s._prev[0].grad, true, rel_tol=1e-14)
    right = Value(40.0)
    right.sigmoid().backward()  # s(1 - s) would give 0.0: s rounds to 1
    assert math.isclose(right.grad, math.exp(-40) / (1 + math.exp(-40)) ** 2, rel_tol=1e-14)


def test_tanh_keeps_relative_accuracy_near_zero_and_in_the_tails():
    t = Value(1e-10).tanh()
    t.backward()
    assert math.isclose(t.data, 1e-10, rel_tol=1e-15) and t._prev[0].grad == 1.0
    naive = (math.exp(2e-10) - 1) / (math.exp(2e-10) + 1)
    assert not math.isclose(naive, 1e-10, rel_tol=1e-9)  # why the naive formula is banned
    for x in (20.0, -30.0):
        v = Value(x)
        v.tanh().backward()
        assert math.isclose(v.grad, 1 / math.cosh(x) ** 2, rel_tol=1e-13)  # 1 - t*t would give 0


def test_nan_and_inf_data_are_accepted_and_propagate():
    nan, inf = float("nan"), float("inf")
    assert math.isnan(Value(nan).tanh().data) and math.isnan(Value(nan).relu().data)
    assert math.isnan(Value(nan).sigmoid().data) and math.isnan((Value(nan) ** 0.5).data)
    assert Value(inf).exp().data == inf and Value(-inf).exp().data == 0.0
    assert Value(inf).tanh().data == 1.0 and Value(-inf).sigmoid().data == 0.0


def test_relu_at_zero_is_zero_with_derivative_zero():
    for x in (0.0, -0.0):
        v = Value(x)
        out = v.relu()
        out.backward()
        assert out.data == 0.0 and v.grad == 0.0


# -- inputs: types and domains --------------------------------------------------------

@pytest.mark.parametrize("bad,named", [
    ("abc", "str 'abc'"), (None, "NoneType None"), (1 + 2j, "complex (1+2j)"),
    (True, "bool True"), ([1.0], "list [1.0]"), (Value(1.0), "Value Value(data=1.0"),
])
def test_bad_data_raises_one_line_type_error_naming_the_value(bad, named):
    with pytest.raises(TypeError) as info:
        Value(bad)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("Value() expects a real number (int or float), got ")
    assert named in msg


@pytest.mark.parametrize("good", [3, -2.5, np.float64(1.5), np.int32(4), fractions.Fraction(1, 4),
                                  float("nan"), float("inf")])
def test_real_numbers_are_accepted_as_floats(good):
    v = Value(good)
    assert type(v.data) is float and type(v.grad) is float and v.grad == 0.0
    assert v.data == float(good) or math.isnan(v.data)


def test_repr_like_micrograd():
    assert repr(Value(2.0)) == "Value(data=2.0, grad=0.0)"
    x = Value(-1)
    (x * 3).backward()
    assert repr(x) == "Value(data=-1.0, grad=3.0)"


DOMAIN = [
    ("log", lambda: Value(0.0).log(), "0.0"),
    ("log", lambda: Value(-1.5).log(), "-1.5"),
    ("sqrt", lambda: Value(-4.0).sqrt(), "-4.0"),
    ("**", lambda: Value(-2.0) ** 2.5, "-2.0 ** 2.5"),
    ("**", lambda: Value(-8.0) ** (1 / 3), "-8.0"),
    ("**", lambda: Value(0.0) ** -1, "0.0 ** -1.0"),
    ("**", lambda: Value(0.0) ** -0.5, "0.0 ** -0.5"),
    ("/", lambda: Value(1.5) / 0, "1.5 / 0.0"),
    ("/", lambda: Value(1.5) / Value(0.0), "1.5 / 0.0"),
    ("/", lambda: 3 / Value(0.0), "3.0 / 0.0"),
    ("**", lambda: (-2.0) ** Value(2.0), "-2.0"),
    ("**", lambda: 0 ** Value(1.0), "0.0"),
    ("**", lambda: Value(-3.0) ** Value(2.0), "-3.0"),
    ("sin", lambda: Value(float("inf")).sin(), "inf"),
    ("cos", lambda: Value(float("-inf")).cos(), "-inf"),
]


@pytest.mark.parametrize("op,f,value", DOMAIN, ids=[f"{d[0]}-{d[2]}" for d in DOMAIN])
def test_domain_errors_name_the_op_and_the_value(op, f, value):
    with pytest.raises(DomainError) as info:
        f()
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert msg.startswith(f"{op}: ") and value in msg, msg


@pytest.mark.parametrize("f,msg", [
    (lambda x: x.sqrt(), "sqrt: derivative is infinite at 0.0"),
    (lambda x: x**0.5, "**: derivative of x ** 0.5 is infinite at 0.0"),
    (lambda x: x**0.25 * 3, "**: derivative of x ** 0.25 is infinite at 0.0"),
])
def test_infinite_derivative_at_zero_raises_on_backward(f, msg):
    x = Value(0.0)
    out = f(x)
    assert out.data == 0.0  # the value itself is defined
    with pytest.raises(DomainError) as info:
        out.backward()
    assert str(info.value) == msg


@pytest.mark.parametrize("p,want", [(0, 0.0), (1, 1.0), (1.5, 0.0), (2, 0.0), (3, 0.0)])
def test_power_derivatives_at_zero_that_are_finite(p, want):
    value, (grad,) = eng(lambda x: x**p, 0.0)
    assert value == (1.0 if p == 0 else 0.0) and grad == want


def test_no_op_ever_returns_a_complex_number():
    ops = [lambda v: v**2.5, lambda v: v**0.5, lambda v: v**-1.5, lambda v: v ** (1 / 3), lambda v: v**3,
           lambda v: v**-2, lambda v: v.sqrt(), lambda v: v.log(), lambda v: 2 ** v, lambda v: v ** Value(0.5),
           lambda v: v ** Value(2.0), lambda v: 1 / v]
    for x in (-3.5, -1.0, -0.0, 0.0, 0.5, 2.0):
        for op in ops:
            try:
                out = op(Value(x))
                out.backward()
            except DomainError:
                continue
            assert type(out.data) is float and type(out._prev[0].grad) is float


def test_overflow_is_an_overflow_error_naming_the_op():
    with pytest.raises(OverflowError, match=r"^exp: exp\(710\.0\) overflows"):
        Value(710.0).exp()
    assert Value(709.0).exp().data == math.exp(709.0)
    with pytest.raises(OverflowError, match=r"^\*\*: 10\.0 \*\* 400\.0 overflows"):
        Value(10.0) ** 400


# -- packaging ------------------------------------------------------------------------

def test_engine_does_not_import_torch_sympy_verifier_or_numpy():
    code = ("import sys, engine, engine.nn, engine.graph; "
            "print(sorted(m for m in ('torch', 'sympy', 'verifier', 'numpy', 'graphviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=engine.__path__[0] + "/..")
    assert out.stdout.strip() == "[]"
