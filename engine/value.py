"""A scalar reverse-mode autograd engine: `Value`, micrograd-compatible.

Every op builds a new `Value` whose `_backward` closure applies the chain rule for
that one op; `Value.backward()` runs the closures from the output down, in reverse
topological order (found iteratively, so graph depth is not limited by recursion).
The same closures, run on Values instead of floats, build the gradient as a graph
(`backward(create_graph=True)`), for second derivatives; forward mode reads each op's
local partials from `_PARTIALS` (`Value.tangent`, a Jacobian-vector product).

Example:
    >>> from engine import Value
    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + b**2
    >>> c.backward()
    >>> a.grad, b.grad
    (-3.0, -4.0)

Inputs outside an op's domain (documented choices; `DomainError` is a `ValueError`,
and no op ever returns a complex number)::

    op              input                         result
    --------------  ----------------------------  -----------------------------------
    log(x)          x <= 0                        DomainError
    sqrt(x)         x < 0                         DomainError
    sqrt(x)         x == 0                        0.0; backward() raises DomainError
    x ** p          x < 0, p not an integer       DomainError (Python would give complex)
    x ** p          x == 0, p < 0                 DomainError
    x ** p          x == 0, 0 < p < 1             0.0; backward() raises DomainError
    x ** 0          any x (also 0)                1.0, derivative 0
    a / b           b == 0                        DomainError
    a ** b, c ** b  b a Value, base <= 0          DomainError (d/db = a**b * log a)
    sin(x), cos(x)  x = +-inf                     DomainError
    exp(x), x ** p  result beyond float64         OverflowError (not representable;
                                                  also d(x**p) * grad, in backward())
    + - * /         result beyond float64         +-inf (IEEE, as Python floats do)
    log1p(x)        x <= -1                       DomainError
    tan(x)          x = +-inf                     DomainError
    expm1(x)        result beyond float64         OverflowError (like exp)
    relu(x)         x == 0                        0.0, derivative 0 (the left one)
    abs(x)          x == 0                        0.0, derivative 0 (sign(0) = 0, as torch)
    leaky_relu(x)   x == 0                        0.0, derivative 0.01 (the left one, as torch)
    clamp(x,lo,hi)  x == lo or x == hi            derivative 1 (bounds inclusive, as torch);
                    lo > hi                       hi, derivative 0 (min(max(x, lo), hi))
    maximum(x, y),  x == y                        x; each side gets half the gradient
    minimum(x, y)                                 (as torch: maximum(x, x) has derivative 1)
    maximum(x, y),  x or y nan                    nan; both sides get the whole gradient
    minimum(x, y)                                 (every comparison is False, as in torch)
    any op          nan or inf data               accepted, IEEE propagation; a kinked op
                                                  (relu, abs, leaky_relu, clamp) picks its
                                                  derivative by comparisons, False for nan
    softplus, gelu, x = +-inf                     the limits (gelu(-inf) = 0, gelu'(inf) = 1),
    silu, softsign                                never an inf * 0 nan

Gradient semantics: `backward()` seeds the output's grad with 1 and propagates.
Leaves (nodes without children) ACCUMULATE across calls, like micrograd and torch:
two calls without `zero_grad()` give exactly twice the gradient. Interior nodes are
reset on every call, so they hold the gradient of the latest call only. If a call
raises (an infinite derivative), the leaves keep the grads they had before it.

`backward(create_graph=True)` builds every contribution to a `.grad` from Value ops,
so each grad is a `Value` that can be back-propagated in turn: a plain float only where
additions alone lie between the output and the leaf (d(x + y)/dx = 1.0, a constant).
The same accumulation rules apply (a kept float plus a Value is a Value), and the
grads' data are the floats backward() gives. The library ops with a smooth derivative
(tanh, sigmoid, gelu, ...) put it in the graph as a node whose own derivative is exact
but not differentiable again: a third derivative through one raises
NotImplementedError. Hessian of x*x*y, row by row:

    >>> x, y = Value(3.0), Value(2.0)
    >>> (x * x * y).backward(create_graph=True)
    >>> gx, gy = x.grad, y.grad        # df/dx = 2xy and df/dy = x*x, as Values
    >>> x.grad = y.grad = 0.0
    >>> gx.backward()
    >>> x.grad, y.grad                 # d2f/dx2 = 2y, d2f/dxdy = 2x
    (4.0, 6.0)

Forward mode: `Value(x, tangent=t)` gives a leaf the tangent t (default 0), and
`out.tangent` is sum_i df/dx_i * t_i (a Jacobian-vector product), computed when first
read and kept; it costs nothing until then. A partial is evaluated only where the
operand's tangent is nonzero; where it is infinite, reading raises DomainError as
backward() does:

    >>> x, y = Value(3.0, tangent=1.0), Value(2.0)
    >>> (x * x * y).tangent            # df/dx = 2xy
    12.0
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

__all__ = ["DomainError", "Value", "topological_order", "zero_grad"]


class DomainError(ValueError):
    """An input outside an op's domain, or a derivative that is infinite there.

    Example:
        >>> Value(-1.0).log()
        Traceback (most recent call last):
        ...
        engine.value.DomainError: log: argument must be > 0, got -1.0
    """


def _noop(graph: bool = False) -> None:
    """The backward of a leaf: nothing to propagate."""


def _describe(x: object) -> str:
    """`str 'abc'`: the type and a (shortened) repr, for one-line error messages."""
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _is_number(x: object) -> bool:
    if type(x) is float or type(x) is int:  # fast path: the isinstance below is an ABC check
        return True
    # bool is an int subclass, but Value(True) is almost always a bug: reject it.
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _lift(x: object, like: Value) -> Value | None:
    """The operand as a Value (numbers become constant leaves of the other operand's
    class, so that a subclass's ops apply to the result), or None if unsupported."""
    if isinstance(x, Value):
        return x
    return type(like)(x) if _is_number(x) else None


def _operand(method: Callable[[Value, Value], Value]) -> Callable[[Value, Any], Any]:
    """Lift a number operand to a Value; for anything else return NotImplemented so
    Python tries the other operand and then raises its usual TypeError."""

    @functools.wraps(method)
    def wrapper(self: Value, other: Any) -> Any:
        lifted = _lift(other, self)
        return NotImplemented if lifted is None else method(self, lifted)

    return wrapper


def _pow(x: float, p: float) -> float:
    """x ** p in float64, raising where Python would return a complex or divide by 0."""
    if x < 0 and not p.is_integer():
        raise DomainError(f"**: {x!r} ** {p!r} is not real (fractional power of a negative number)")
    if x == 0 and p < 0:
        raise DomainError(f"**: {x!r} ** {p!r} is undefined (zero to a negative power)")
    try:
        return x**p
    except OverflowError:
        raise OverflowError(f"**: {x!r} ** {p!r} overflows float64 (not representable)") from None


def _pow_is_constant(x: float, p: float) -> bool:
    """Whether d(x**p)/dx is 0 (p == 0: x**0 == 1, also at 0, where 0 * 0**-1 would
    raise); raises where it is infinite (x == 0, 0 < p < 1)."""
    if x == 0 and 0 < p < 1:
        raise DomainError(f"**: derivative of x ** {p!r} is infinite at {x!r}")
    return p == 0


def _pow_grad(x: float, p: float, out: float, grad: float) -> float:
    """p * x**(p-1) * grad for x != 0 (out = x**p), also when x**(p-1) alone overflows."""
    if grad == 0:  # the local derivative is finite (x != 0): the product is exactly 0
        return 0.0
    try:
        return p * _pow(x, p - 1) * grad
    except OverflowError:  # tiny x, p < 1: x**(p-1) = out/x, with mantissas and exponents apart
        (mo, eo), (mx, ex), (mg, eg) = math.frexp(out), math.frexp(x), math.frexp(p * grad)
        try:
            return math.ldexp(mo / mx * mg, eo - ex + eg)
        except OverflowError:
            raise OverflowError(f"**: derivative of x ** {p!r} at {x!r} overflows float64") from None


def _sigmoid(x: float) -> tuple[float, float]:
    """sigmoid(x) and its derivative s(1 - s), for any x: e = exp(-|x|) <= 1 cannot
    overflow, and e / (1 + e)**2 keeps relative accuracy in both tails."""
    e = math.exp(-abs(x))
    return (1 / (1 + e) if x >= 0 else e / (1 + e)), e / (1 + e) ** 2


def _exp_neg_square(x: float, c: float = 1.0) -> float:
    """exp(-c * x * x) for c = 1 or 1/2, to a few ulps also for large |x|.

    The rounding error of x*x alone is multiplied by x*x in the exponential (1e-13
    relative near x = 27, where the result is still normal), so x*x is split as
    h*h + (x - h)(x + h), with h = x cut to 26 bits: h*h and x - h are exact.
    """
    if not abs(x) < 1e100:  # inf, nan, or a result that underflows to 0 anyway
        return math.exp(-c * x * x)
    m, e = math.frexp(x)
    h = math.ldexp(math.trunc(math.ldexp(m, 26)), e - 26)
    return math.exp(-c * h * h) * math.exp(-c * (x - h) * (x + h))


_SQRT_HALF = math.sqrt(0.5)
_NORMAL_PDF_0 = 1 / math.sqrt(2 * math.pi)  # phi(0)
_ERF_SLOPE_0 = 2 / math.sqrt(math.pi)  # erf'(0)


class Value:
    """A scalar in a computation graph, with the gradient of the output w.r.t. it.

    Args:
        data: a real number (int, float, numpy scalar; not bool); stored as float.
        _children: the operands this value was computed from (internal).
        _op: the op that produced it, for graph drawing (internal).
        label: a name shown by `engine.to_dot`.
        tangent: (keyword) a leaf's tangent for forward mode, see `Value.tangent`.

    Example:
        >>> x = Value(3.0, label='x')
        >>> y = x * x + x.relu()
        >>> y.backward()
        >>> y, x
        (Value(data=12.0, grad=1.0), Value(data=3.0, grad=7.0))
    """

    # Make numpy scalars defer to us: np.float64(2) * v then calls v.__rmul__.
    __array_ufunc__ = None
    # Class defaults, so that ops pay nothing for them: the tangent once read (or given),
    # and, for one-operand ops whose derivative needs what the op captured (library ops,
    # x ** p), that derivative as a function, for tangents (see _partial).
    _tangent: float | None = None
    _slope: Callable[[], float] | None = None

    def __init__(self, data: float, _children: Iterable[Value] = (), _op: str = "", label: str = "", *,
                 tangent: float = 0.0):
        if not _is_number(data):
            raise TypeError(f"Value() expects a real number (int or float), got {_describe(data)}")
        try:
            self.data = float(data)
        except OverflowError:
            raise OverflowError(f"Value() got {_describe(data)}, too large for float64") from None
        self.grad: Any = 0.0  # a float; a Value after backward(create_graph=True)
        self._prev: tuple[Value, ...] = tuple(_children)  # argument order; x*x lists x twice
        self._op = _op
        self.label = label
        # graph=True: build the contributions to .grad from Value ops (create_graph).
        # Called without the argument otherwise, so micrograd-style _backward() closures
        # of subclasses keep working.
        self._backward: Callable[..., None] = _noop
        if tangent != 0.0:
            if not _is_number(tangent):
                raise TypeError(f"Value(): tangent must be a real number, got {_describe(tangent)}")
            self._tangent = float(tangent)

    # -- primitive ops: forward and backward side by side ------------------------
    # Each _backward works on floats, or with graph=True on the Values themselves (the
    # operands and `out`), so one formula serves both; out.grad is then a float or a Value.

    @_operand
    def __add__(self, other: Value) -> Value:
        out = type(self)(self.data + other.data, (self, other), "+")

        def _backward(graph: bool = False) -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    @_operand
    def __mul__(self, other: Value) -> Value:
        out = type(self)(self.data * other.data, (self, other), "*")

        def _backward(graph: bool = False) -> None:
            if graph:
                a, b = self, other
            else:
                a, b = self.data, other.data
            self.grad += b * out.grad
            other.grad += a * out.grad

        out._backward = _backward
        return out

    @_operand
    def __truediv__(self, other: Value) -> Value:
        # Primitive rather than a * b**-1: the local derivative b**-2 overflows for tiny b
        # even when d/db = -(a/b)/b is an ordinary float (a=1e-299, b=1e-247).
        if other.data == 0:
            raise DomainError(f"/: division by zero ({self.data!r} / {other.data!r})")
        out = type(self)(self.data / other.data, (self, other), "/")

        def _backward(graph: bool = False) -> None:
            if graph:
                b, o = other, out
            else:
                b, o = other.data, out.data
            g_over_b = out.grad / b
            self.grad += g_over_b  # d/da = 1/b
            other.grad += -g_over_b * o  # d/db = -a/b**2 = -(1/b)(a/b): no b**2 to overflow

        out._backward = _backward
        return out

    def __pow__(self, other: Any) -> Value:
        if isinstance(other, Value):
            return self._pow_value(other)
        if not _is_number(other):
            return NotImplemented
        x, p = self.data, float(other)
        out = type(self)(_pow(x, p), (self,), f"**{other}")

        def _backward(graph: bool = False) -> None:
            if _pow_is_constant(x, p):
                return
            # Floats: _pow_grad, which also copes where x**(p-1) alone overflows.
            self.grad += p * self ** (p - 1) * out.grad if graph else _pow_grad(x, p, out.data, out.grad)

        out._backward = _backward
        out._slope = lambda: 0.0 if _pow_is_constant(x, p) else _pow_grad(x, p, out.data, 1.0)
        return out

    def _pow_value(self, other: Value) -> Value:
        """a ** b with b a Value: needs a > 0, since d/db a**b = a**b * log(a)."""
        a, b = self.data, other.data
        if a <= 0:
            raise DomainError(f"**: base must be > 0 when the exponent is a Value, got {a!r} ** {b!r}")
        out = type(self)(_pow(a, b), (self, other), "**")

        def _backward(graph: bool = False) -> None:
            if graph:
                self.grad += other * self ** (other - 1) * out.grad
                other.grad += out * self.log() * out.grad
            else:
                self.grad += _pow_grad(a, b, out.data, out.grad)  # b * a**(b-1) * grad
                other.grad += out.data * math.log(a) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        x = self.data
        try:
            out = type(self)(math.exp(x), (self,), "exp")
        except OverflowError:
            raise OverflowError(f"exp: exp({x!r}) overflows float64 (not representable; x > 709.78)") from None

        def _backward(graph: bool = False) -> None:
            self.grad += (out if graph else out.data) * out.grad  # d exp = exp

        out._backward = _backward
        return out

    def log(self) -> Value:
        x = self.data
        if x <= 0:
            raise DomainError(f"log: argument must be > 0, got {x!r}")
        out = type(self)(math.log(x), (self,), "log")

        def _backward(graph: bool = False) -> None:
            self.grad += out.grad / (self if graph else x)

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        x = self.data
        # math.tanh never overflows and keeps relative accuracy for tiny x, unlike
        # (e**2x - 1) / (e**2x + 1).
        t = math.tanh(x)

        def slope() -> float:
            # 1 - tanh**2 == sech**2 == 4e / (1 + e)**2 with e = exp(-2|x|); this form keeps
            # relative accuracy in the tails, where 1 - t*t is already 0.0 for |x| > 19.
            e = math.exp(-2 * abs(x))
            return 4 * e / (1 + e) ** 2

        return self._unary(t, "tanh", slope, lambda: -2 * t * slope())  # tanh'' = -2 tanh tanh'

    def relu(self) -> Value:
        x = self.data
        out = type(self)(0.0 if x <= 0 else x, (self,), "relu")  # nan <= 0 is False: nan propagates

        def _backward(graph: bool = False) -> None:
            # Convention at the kink: relu'(0) = 0, the left derivative (as torch does).
            self.grad += (1.0 if x > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        x = self.data
        s, ds = _sigmoid(x)  # stable for any x, see _sigmoid
        # s'' = s'(1 - 2s) = -s' tanh(x/2): no cancellation in 1 - 2s near x = 0.
        return self._unary(s, "sigmoid", lambda: ds, lambda: -ds * math.tanh(x / 2))

    def sin(self) -> Value:
        x = self.data
        if math.isinf(x):  # math.sin(inf) raises a bare "math domain error"
            raise DomainError(f"sin: argument must be finite, got {x!r}")
        out = type(self)(math.sin(x), (self,), "sin")

        def _backward(graph: bool = False) -> None:
            self.grad += (self.cos() if graph else math.cos(x)) * out.grad

        out._backward = _backward
        return out

    def cos(self) -> Value:
        x = self.data
        if math.isinf(x):
            raise DomainError(f"cos: argument must be finite, got {x!r}")
        out = type(self)(math.cos(x), (self,), "cos")

        def _backward(graph: bool = False) -> None:
            self.grad += (-self.sin() if graph else -math.sin(x)) * out.grad

        out._backward = _backward
        return out

    def sqrt(self) -> Value:
        x = self.data
        if x < 0:
            raise DomainError(f"sqrt: argument must be >= 0, got {x!r}")
        out = type(self)(math.sqrt(x), (self,), "sqrt")

        def _backward(graph: bool = False) -> None:
            if out.data == 0:
                raise DomainError(f"sqrt: derivative is infinite at {x!r}")
            self.grad += 0.5 / (out if graph else out.data) * out.grad  # d sqrt(x) = 1 / (2 sqrt(x))

        out._backward = _backward
        return out

    # -- library ops: activations and elementwise functions -----------------------

    def _unary(self, data: float, op: str, slope: Callable[[], float],
               curvature: Callable[[], float] | None = None) -> Value:
        """A one-argument op's node: its value, and `slope()`, its local derivative at
        self.data, multiplied by the upstream gradient in backward() and by the tangent
        in forward mode. `curvature()` is the slope's own derivative; None where the slope
        is piecewise constant (kinked ops), so that its graph form is the float itself."""
        out = type(self)(data, (self,), op)
        out._slope = slope

        def _backward(graph: bool = False) -> None:
            if graph and curvature is not None:
                self.grad += self._slope_node(op, slope, curvature) * out.grad
            else:
                self.grad += slope() * out.grad

        out._backward = _backward
        return out

    def _slope_node(self, op: str, slope: Callable[[], float], curvature: Callable[[], float]) -> Value:
        """`op`'s derivative at self as a node of a gradient graph: its backward adds
        `curvature()`; differentiating it again (a third derivative) is not supported."""
        node = type(self)(slope(), (self,), op + "'")
        node._slope = curvature  # its tangent, for forward-over-reverse

        def _backward(graph: bool = False) -> None:
            if graph:
                raise NotImplementedError(f"engine.Value: the third derivative of {op} is not implemented")
            self.grad += curvature() * node.grad

        node._backward = _backward
        return node

    def abs(self) -> Value:
        x = self.data
        # Convention at the kink: abs'(0) = sign(0) = 0 (torch, JAX).
        return self._unary(abs(x), "abs", lambda: 1.0 if x > 0 else -1.0 if x < 0 else 0.0)

    def leaky_relu(self) -> Value:
        x = self.data  # slope 0.01 below 0; at the kink the left one (torch: x > 0 ? 1 : 0.01)
        return self._unary(x if x > 0 else 0.01 * x, "leaky_relu", lambda: 1.0 if x > 0 else 0.01)

    def elu(self) -> Value:
        x = self.data  # expm1: no cancellation in exp(x) - 1 near 0; at the kink the left side
        return self._unary(x if x > 0 else math.expm1(x), "elu", lambda: 1.0 if x > 0 else math.exp(x),
                           lambda: 0.0 if x > 0 else math.exp(x))

    def softplus(self) -> Value:
        x = self.data
        # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no log(1 + tiny) loss.
        data = (x if x > 0 else 0.0) + math.log1p(math.exp(-abs(x)))
        # softplus' = sigmoid, softplus'' = sigmoid'
        return self._unary(data, "softplus", lambda: _sigmoid(x)[0], lambda: _sigmoid(x)[1])

    def gelu(self) -> Value:
        x = self.data
        # Phi(x) = (1 + erf(x/sqrt2))/2 = erfc(-x/sqrt2)/2, without the cancellation for x << 0.
        y = -x * _SQRT_HALF
        cdf, pdf = 0.5 * math.erfc(y), _NORMAL_PDF_0 * _exp_neg_square(x, 0.5)
        if -40 < x < -1:
            # erfc ran at -sqrt2*y, off x by d = x + sqrt2*y: x*x times y's rounding, up to
            # 2e-13 of Phi in its tail. d = (x*x - 2y*y) / (x - sqrt2*y), the numerator exact.
            d = float(Fraction(x) ** 2 - 2 * Fraction(y) ** 2) / (x - math.sqrt(2) * y)
            cdf += pdf * d

        def slope() -> float:  # Phi(x) + x phi(x); phi(+-inf) = 0 wins over x = +-inf
            return cdf + (x * pdf if pdf else 0.0)

        def curvature() -> float:  # 2 phi + x phi' = phi(x)(2 - x*x)
            if not pdf or math.isnan(x):  # 0 at +-inf (not inf * 0), nan for nan
                return pdf
            return pdf * float(2 - Fraction(x) ** 2)  # exact: it vanishes at x = +-sqrt2

        return self._unary(x * cdf if cdf else 0.0, "gelu", slope, curvature)  # gelu(-inf) = 0

    def silu(self) -> Value:
        x = self.data
        s, ds = _sigmoid(x)
        # silu' = s(1 + x(1 - s)) = s + x s'; s' = s(1 - s) without the cancellation in 1 - s.
        # silu'' = 2s' + x s'' = s'(2 - x tanh(x/2)) (see sigmoid); 0, not 0 * inf, at +-inf.
        return self._unary(x * s if s else 0.0, "silu", lambda: s + (x * ds if ds else 0.0),
                           lambda: ds * (2 - x * math.tanh(x / 2)) if ds else 0.0)

    def softsign(self) -> Value:
        x = self.data
        r = 1 / (1 + abs(x))  # 0 at +-inf; its square underflows rather than overflowing
        data = math.copysign(1.0, x) if math.isinf(x) else x / (1 + abs(x))
        # softsign'' = -2 sign(x) / (1 + |x|)**3, with sign(0) = 0 at the kink of softsign'.
        return self._unary(data, "softsign", lambda: r * r,
                           lambda: -2 * math.copysign(r * r * r, x) if x else 0.0)

    def tan(self) -> Value:
        x = self.data
        if math.isinf(x):
            raise DomainError(f"tan: argument must be finite, got {x!r}")
        t = math.tan(x)  # |t| < 1.7e16 for every float: t*t, and 2t(1 + t*t) < 1e49, cannot overflow
        return self._unary(t, "tan", lambda: 1 + t * t, lambda: 2 * t * (1 + t * t))

    def atan(self) -> Value:
        x = self.data

        def slope() -> float:  # 1/(1 + x*x), as r*r/(1 + r*r) with r = 1/x where x*x may overflow
            if abs(x) > 1:
                r = 1 / x
                return r / (1 + r * r) * r
            return 1 / (1 + x * x)

        def curvature() -> float:  # -2x/(1 + x*x)**2, as -2 r**3/(1 + r*r)**2 with r = 1/x
            if abs(x) > 1:
                r = 1 / x
                q = r / (1 + r * r)
                return -2 * q * q * r
            d = 1 / (1 + x * x)
            return -2 * x * d * d

        return self._unary(math.atan(x), "atan", slope, curvature)

    def log1p(self) -> Value:
        x = self.data
        if x <= -1:
            raise DomainError(f"log1p: argument must be > -1, got {x!r}")
        # log1p' = 1/(1 + x), log1p'' = -1/(1 + x)**2; 1 + x is exact near -1
        return self._unary(math.log1p(x), "log1p", lambda: 1 / (1 + x), lambda: -(1 / (1 + x)) ** 2)

    def expm1(self) -> Value:
        x = self.data
        try:
            data, e = math.expm1(x), math.exp(x)  # e for the derivative: expm1 + 1 loses the tail
        except OverflowError:
            raise OverflowError(f"expm1: expm1({x!r}) overflows float64 (not representable; x > 709.78)") from None
        return self._unary(data, "expm1", lambda: e, lambda: e)

    def erf(self) -> Value:
        x = self.data

        def slope() -> float:
            return _ERF_SLOPE_0 * _exp_neg_square(x)

        def curvature() -> float:  # erf'' = -2x erf'(x); 0, not inf * 0, at +-inf
            s = slope()
            return -2 * x * s if s else 0.0

        return self._unary(math.erf(x), "erf", slope, curvature)

    def clamp(self, lo: float = -1.0, hi: float = 1.0) -> Value:
        """min(max(x, lo), hi); the gradient passes where lo <= x <= hi (bounds inclusive, torch)."""
        if not (_is_number(lo) and _is_number(hi)):
            raise TypeError(f"clamp: bounds must be real numbers, got {_describe(lo)} and {_describe(hi)}")
        x, lo, hi = self.data, float(lo), float(hi)
        data = min(max(x, lo), hi)  # a nan x stays nan: max, min keep their first argument
        return self._unary(data, "clamp", lambda: 1.0 if lo <= x <= hi else 0.0)

    def maximum(self, other: Value | float) -> Value:
        """max(x, y); at a tie each side gets half the gradient (torch); nan propagates."""
        return self._extremum(other, "maximum")

    def minimum(self, other: Value | float) -> Value:
        """min(x, y); at a tie each side gets half the gradient (torch); nan propagates."""
        return self._extremum(other, "minimum")

    def _extremum(self, other: Any, op: str) -> Value:
        y = _lift(other, self)
        if y is None:
            raise TypeError(f"{op}: expects a Value or a real number, got {_describe(other)}")
        a, b = self.data, y.data
        a_loses, b_loses = (a < b, b < a) if op == "maximum" else (a > b, b > a)
        tie = a == b
        out = type(self)(math.nan if math.isnan(a) or math.isnan(b) else b if a_loses else a, (self, y), op)

        def _backward(graph: bool = False) -> None:
            # torch's formula: where(a == b, grad/2, grad), 0 on the losing side. With a
            # nan every comparison is False, so both sides get the whole gradient.
            self.grad += (0.5 if tie else 0.0 if a_loses else 1.0) * out.grad
            y.grad += (0.5 if tie else 0.0 if b_loses else 1.0) * out.grad

        out._backward = _backward
        return out

    # -- derived ops: one line of algebra each ------------------------------------

    def __neg__(self) -> Value:  # -a = a * -1 (exact)
        return self * -1

    def __pos__(self) -> Value:  # +a is a itself: no new node
        return self

    @_operand
    def __radd__(self, other: Value) -> Value:  # b + a = a + b
        return self + other

    @_operand
    def __sub__(self, other: Value) -> Value:  # a - b = a + (-b), exact
        return self + (-other)

    @_operand
    def __rsub__(self, other: Value) -> Value:  # b - a = b + (-a)
        return other + (-self)

    @_operand
    def __rmul__(self, other: Value) -> Value:  # b * a = a * b
        return self * other

    @_operand
    def __rtruediv__(self, other: Value) -> Value:  # b / a, with the same zero check
        return other / self

    @_operand
    def __rpow__(self, other: Value) -> Value:  # c ** a = Value(c) ** a, so c must be > 0
        return other ** self

    # -- autograd -----------------------------------------------------------------

    def backward(self, create_graph: bool = False) -> None:
        """Add d(self)/d(leaf) to every leaf's `.grad` (accumulating, as in torch).

        Args:
            create_graph: build the grads from Value ops, so that they can be
                back-propagated again (second derivatives); see the module docstring.

        Example:
            >>> x = Value(3.0)
            >>> y = x * x
            >>> y.backward(); y.backward()
            >>> x.grad
            12.0
            >>> x.grad = 0.0
            >>> y.backward(create_graph=True)
            >>> dydx = x.grad            # 2x, a Value
            >>> x.grad = 0.0
            >>> dydx.backward()
            >>> dydx.data, x.grad
            (6.0, 2.0)
        """
        topo = topological_order(self)
        # Recompute every grad from 0 and add the leaves' earlier grads back at the end:
        # two calls then give exactly 2x (micrograd, which never clears interior nodes,
        # gives 3x at depth >= 2).
        kept = []
        for v in topo:
            if not v._prev:
                kept.append((v, v.grad))
            v.grad = 0.0
        self.grad = 1.0
        try:
            if create_graph:
                for v in reversed(topo):
                    v._backward(True)
            else:
                for v in reversed(topo):
                    v._backward()
        except BaseException:
            for v, g in kept:  # a failed call leaves the leaves as they were
                v.grad = g
            raise
        for v, g in kept:
            v.grad += g  # float + Value works too: a grad kept from a create_graph call

    @property
    def tangent(self) -> float:
        """d(self)/dt where each leaf moves at its `tangent` (forward mode, a JVP).

        Computed on first reading, for this node and every node below it, and kept
        (the graph is fixed once built). Raises DomainError where a partial that
        matters is infinite, NotImplementedError for an op without a tangent rule.

        Example:
            >>> a, b = Value(2.0, tangent=1.0), Value(-3.0)
            >>> c = a * b + b**2
            >>> c.tangent, Value(2.0, tangent=0.5).exp().tangent == 0.5 * math.exp(2)
            (-3.0, True)
        """
        if self._tangent is None:
            _compute_tangents(self)
        return self._tangent  # type: ignore[return-value]

    def zero_grad(self) -> None:
        """Set `.grad = 0.0` on this value and every node it was computed from."""
        zero_grad(self)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


def _sqrt_partial(i: int, o: float, x: float) -> float:
    """1 / (2 sqrt(x)), from o = sqrt(x); infinite at 0, as in sqrt's backward."""
    if o == 0:
        raise DomainError(f"sqrt: derivative is infinite at {x!r}")
    return 0.5 / o


# Forward mode: each primitive op's partial derivative d(result)/d(operand i), in float64,
# from the result's data o and the operands' data x (and y). A second, independent
# statement of each derivative beside the op's backward; ops that captured what their
# derivative needs (library ops, x ** p) keep it as the node's _slope instead.
_PARTIALS: dict[str, Callable[..., float]] = {
    "+": lambda i, o, x, y: 1.0,
    "*": lambda i, o, x, y: y if i == 0 else x,
    "/": lambda i, o, x, y: 1 / y if i == 0 else -(1 / y) * o,
    "**": lambda i, o, x, y: _pow_grad(x, y, o, 1.0) if i == 0 else o * math.log(x),
    "exp": lambda i, o, x: o,
    "log": lambda i, o, x: 1 / x,
    "relu": lambda i, o, x: 1.0 if x > 0 else 0.0,
    "sin": lambda i, o, x: math.cos(x),
    "cos": lambda i, o, x: -math.sin(x),
    "sqrt": _sqrt_partial,
    "maximum": lambda i, o, x, y: 0.5 if x == y else 0.0 if (x < y, y < x)[i] else 1.0,
    "minimum": lambda i, o, x, y: 0.5 if x == y else 0.0 if (x > y, y > x)[i] else 1.0,
}


def _partial(node: Value, i: int) -> float:
    """d(node)/d(its operand i), in float64."""
    if node._slope is not None:
        return node._slope()
    rule = _PARTIALS.get(node._op)
    if rule is None:
        raise NotImplementedError(f"engine.Value: no tangent rule for op {node._op!r}")
    return rule(i, node.data, *(child.data for child in node._prev))


def _compute_tangents(root: Value) -> None:
    """Set `_tangent` on root and on every node below it that has none, children first.

    Iterative (no recursion limit), and stops at nodes already done, so reading the
    tangents of a chain from the bottom up costs O(length). A leaf's is 0 unless given.
    """
    stack = [root]
    while stack:
        node = stack[-1]
        todo = [child for child in node._prev if child._tangent is None]
        if todo:
            stack.extend(todo)
            continue
        stack.pop()
        if node._tangent is None:  # a shared node may have been stacked twice
            tangent = 0.0
            for i, child in enumerate(node._prev):
                if child._tangent:  # an unused partial is not evaluated: no inf * 0, no error
                    tangent += _partial(node, i) * child._tangent
            node._tangent = tangent


def topological_order(root: Any) -> list[Any]:
    """Every node reachable from `root`, each once, children before parents.

    Iterative (no recursion limit). Works on any micrograd-style node: an object whose
    `_prev` holds its operands. Children are visited in argument order.

    Example:
        >>> a = Value(1.0, label='a')
        >>> [v.label or v._op for v in topological_order(a * 2 + a)]
        ['a', '', '*', '+']
    """
    if not hasattr(root, "_prev"):
        raise TypeError(f"expected a Value (an object with _prev), got {_describe(root)}")
    order: list[Any] = []
    seen = {id(root)}
    # Depth-first with an explicit stack of (node, iterator over its children); a node
    # is emitted when its iterator is exhausted, i.e. after all of its children.
    stack = [(root, iter(root._prev))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, iter(child._prev)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def zero_grad(*roots: Any) -> None:
    """Set `.grad = 0.0` on every node reachable from any of `roots`.

    Example:
        >>> x = Value(2.0); y = x * x; y.backward()
        >>> zero_grad(y); x.grad, y.grad
        (0.0, 0.0)
    """
    for root in roots:
        for v in topological_order(root):
            v.grad = 0.0
