"""A scalar reverse-mode autograd engine: `Value`, micrograd-compatible.

Every op builds a new `Value` whose `_backward` closure applies the chain rule for
that one op; `Value.backward()` runs the closures from the output down, in reverse
topological order (found iteratively, so graph depth is not limited by recursion).

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


def _noop() -> None:
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


def _lift(x: object) -> Value | None:
    """The operand as a Value (numbers become constant leaves), or None if unsupported."""
    if isinstance(x, Value):
        return x
    return Value(x) if _is_number(x) else None


def _operand(method: Callable[[Value, Value], Value]) -> Callable[[Value, Any], Any]:
    """Lift a number operand to a Value; for anything else return NotImplemented so
    Python tries the other operand and then raises its usual TypeError."""

    @functools.wraps(method)
    def wrapper(self: Value, other: Any) -> Any:
        lifted = _lift(other)
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

    Example:
        >>> x = Value(3.0, label='x')
        >>> y = x * x + x.relu()
        >>> y.backward()
        >>> y, x
        (Value(data=12.0, grad=1.0), Value(data=3.0, grad=7.0))
    """

    # Make numpy scalars defer to us: np.float64(2) * v then calls v.__rmul__.
    __array_ufunc__ = None

    def __init__(self, data: float, _children: Iterable[Value] = (), _op: str = "", label: str = ""):
        if not _is_number(data):
            raise TypeError(f"Value() expects a real number (int or float), got {_describe(data)}")
        try:
            self.data = float(data)
        except OverflowError:
            raise OverflowError(f"Value() got {_describe(data)}, too large for float64") from None
        self.grad = 0.0
        self._prev: tuple[Value, ...] = tuple(_children)  # argument order; x*x lists x twice
        self._op = _op
        self.label = label
        self._backward: Callable[[], None] = _noop

    # -- primitive ops: forward and backward side by side ------------------------

    @_operand
    def __add__(self, other: Value) -> Value:
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    @_operand
    def __mul__(self, other: Value) -> Value:
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    @_operand
    def __truediv__(self, other: Value) -> Value:
        # Primitive rather than a * b**-1: the local derivative b**-2 overflows for tiny b
        # even when d/db = -(a/b)/b is an ordinary float (a=1e-299, b=1e-247).
        if other.data == 0:
            raise DomainError(f"/: division by zero ({self.data!r} / {other.data!r})")
        out = Value(self.data / other.data, (self, other), "/")

        def _backward() -> None:
            g_over_b = out.grad / other.data
            self.grad += g_over_b  # d/da = 1/b
            other.grad += -g_over_b * out.data  # d/db = -a/b**2 = -(1/b)(a/b): no b**2 to overflow

        out._backward = _backward
        return out

    def __pow__(self, other: Any) -> Value:
        if isinstance(other, Value):
            return self._pow_value(other)
        if not _is_number(other):
            return NotImplemented
        x, p = self.data, float(other)
        out = Value(_pow(x, p), (self,), f"**{other}")

        def _backward() -> None:
            if p == 0:  # x**0 == 1 is constant, also at 0 (where 0 * 0**-1 would raise)
                return
            if x == 0 and p < 1:  # p*x**(p-1) with 0 < p < 1 is +inf at 0
                raise DomainError(f"**: derivative of x ** {p!r} is infinite at {x!r}")
            self.grad += _pow_grad(x, p, out.data, out.grad)  # p * x**(p-1) * grad

        out._backward = _backward
        return out

    def _pow_value(self, other: Value) -> Value:
        """a ** b with b a Value: needs a > 0, since d/db a**b = a**b * log(a)."""
        a, b = self.data, other.data
        if a <= 0:
            raise DomainError(f"**: base must be > 0 when the exponent is a Value, got {a!r} ** {b!r}")
        out = Value(_pow(a, b), (self, other), "**")

        def _backward() -> None:
            self.grad += _pow_grad(a, b, out.data, out.grad)  # b * a**(b-1) * grad
            other.grad += out.data * math.log(a) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        x = self.data
        try:
            out = Value(math.exp(x), (self,), "exp")
        except OverflowError:
            raise OverflowError(f"exp: exp({x!r}) overflows float64 (not representable; x > 709.78)") from None

        def _backward() -> None:
            self.grad += out.data * out.grad  # d exp = exp

        out._backward = _backward
        return out

    def log(self) -> Value:
        x = self.data
        if x <= 0:
            raise DomainError(f"log: argument must be > 0, got {x!r}")
        out = Value(math.log(x), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / x

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        x = self.data
        # math.tanh never overflows and keeps relative accuracy for tiny x, unlike
        # (e**2x - 1) / (e**2x + 1).
        out = Value(math.tanh(x), (self,), "tanh")

        def _backward() -> None:
            # 1 - tanh**2 == sech**2 == 4e / (1 + e)**2 with e = exp(-2|x|); this form keeps
            # relative accuracy in the tails, where 1 - t*t is already 0.0 for |x| > 19.
            e = math.exp(-2 * abs(x))
            self.grad += 4 * e / (1 + e) ** 2 * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        x = self.data
        out = Value(0.0 if x <= 0 else x, (self,), "relu")  # nan <= 0 is False: nan propagates

        def _backward() -> None:
            # Convention at the kink: relu'(0) = 0, the left derivative (as torch does).
            self.grad += (1.0 if x > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        s, ds = _sigmoid(self.data)  # stable for any x, see _sigmoid
        out = Value(s, (self,), "sigmoid")

        def _backward() -> None:
            self.grad += ds * out.grad  # s(1 - s), accurate in both tails

        out._backward = _backward
        return out

    def sin(self) -> Value:
        x = self.data
        if math.isinf(x):  # math.sin(inf) raises a bare "math domain error"
            raise DomainError(f"sin: argument must be finite, got {x!r}")
        out = Value(math.sin(x), (self,), "sin")

        def _backward() -> None:
            self.grad += math.cos(x) * out.grad

        out._backward = _backward
        return out

    def cos(self) -> Value:
        x = self.data
        if math.isinf(x):
            raise DomainError(f"cos: argument must be finite, got {x!r}")
        out = Value(math.cos(x), (self,), "cos")

        def _backward() -> None:
            self.grad += -math.sin(x) * out.grad

        out._backward = _backward
        return out

    def sqrt(self) -> Value:
        x = self.data
        if x < 0:
            raise DomainError(f"sqrt: argument must be >= 0, got {x!r}")
        out = Value(math.sqrt(x), (self,), "sqrt")

        def _backward() -> None:
            if out.data == 0:
                raise DomainError(f"sqrt: derivative is infinite at {x!r}")
            self.grad += 0.5 / out.data * out.grad  # d sqrt(x) = 1 / (2 sqrt(x))

        out._backward = _backward
        return out

    # -- library ops: activations and elementwise functions -----------------------

    def _unary(self, data: float, op: str, slope: Callable[[], float]) -> Value:
        """A one-argument op's node: its value, and `slope()`, its local derivative at
        self.data, multiplied by the upstream gradient in backward()."""
        out = Value(data, (self,), op)

        def _backward() -> None:
            self.grad += slope() * out.grad

        out._backward = _backward
        return out

    def abs(self) -> Value:
        x = self.data
        # Convention at the kink: abs'(0) = sign(0) = 0 (torch, JAX).
        return self._unary(abs(x), "abs", lambda: 1.0 if x > 0 else -1.0 if x < 0 else 0.0)

    def leaky_relu(self) -> Value:
        x = self.data  # slope 0.01 below 0; at the kink the left one (torch: x > 0 ? 1 : 0.01)
        return self._unary(x if x > 0 else 0.01 * x, "leaky_relu", lambda: 1.0 if x > 0 else 0.01)

    def elu(self) -> Value:
        x = self.data  # expm1: no cancellation in exp(x) - 1 near 0
        return self._unary(x if x > 0 else math.expm1(x), "elu", lambda: 1.0 if x > 0 else math.exp(x))

    def softplus(self) -> Value:
        x = self.data
        # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no log(1 + tiny) loss.
        data = (x if x > 0 else 0.0) + math.log1p(math.exp(-abs(x)))
        return self._unary(data, "softplus", lambda: _sigmoid(x)[0])  # softplus' = sigmoid

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

        return self._unary(x * cdf if cdf else 0.0, "gelu", slope)  # gelu(-inf) = 0

    def silu(self) -> Value:
        x = self.data
        s, ds = _sigmoid(x)
        # silu' = s(1 + x(1 - s)) = s + x s'; s' = s(1 - s) without the cancellation in 1 - s.
        return self._unary(x * s if s else 0.0, "silu", lambda: s + (x * ds if ds else 0.0))

    def softsign(self) -> Value:
        x = self.data
        r = 1 / (1 + abs(x))  # 0 at +-inf; its square underflows rather than overflowing
        data = math.copysign(1.0, x) if math.isinf(x) else x / (1 + abs(x))
        return self._unary(data, "softsign", lambda: r * r)

    def tan(self) -> Value:
        x = self.data
        if math.isinf(x):
            raise DomainError(f"tan: argument must be finite, got {x!r}")
        t = math.tan(x)  # |t| < 1.7e16 for every float: t*t cannot overflow
        return self._unary(t, "tan", lambda: 1 + t * t)

    def atan(self) -> Value:
        x = self.data

        def slope() -> float:  # 1/(1 + x*x), as r*r/(1 + r*r) with r = 1/x where x*x may overflow
            if abs(x) > 1:
                r = 1 / x
                return r / (1 + r * r) * r
            return 1 / (1 + x * x)

        return self._unary(math.atan(x), "atan", slope)

    def log1p(self) -> Value:
        x = self.data
        if x <= -1:
            raise DomainError(f"log1p: argument must be > -1, got {x!r}")
        return self._unary(math.log1p(x), "log1p", lambda: 1 / (1 + x))  # 1 + x exact near -1

    def expm1(self) -> Value:
        x = self.data
        try:
            data, e = math.expm1(x), math.exp(x)  # e for the derivative: expm1 + 1 loses the tail
        except OverflowError:
            raise OverflowError(f"expm1: expm1({x!r}) overflows float64 (not representable; x > 709.78)") from None
        return self._unary(data, "expm1", lambda: e)

    def erf(self) -> Value:
        x = self.data
        return self._unary(math.erf(x), "erf", lambda: _ERF_SLOPE_0 * _exp_neg_square(x))

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
        y = _lift(other)
        if y is None:
            raise TypeError(f"{op}: expects a Value or a real number, got {_describe(other)}")
        a, b = self.data, y.data
        a_loses, b_loses = (a < b, b < a) if op == "maximum" else (a > b, b > a)
        tie = a == b
        out = Value(math.nan if math.isnan(a) or math.isnan(b) else b if a_loses else a, (self, y), op)

        def _backward() -> None:
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

    def backward(self) -> None:
        """Add d(self)/d(leaf) to every leaf's `.grad` (accumulating, as in torch).

        Example:
            >>> x = Value(3.0)
            >>> y = x * x
            >>> y.backward(); y.backward()
            >>> x.grad
            12.0
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
            for v in reversed(topo):
                v._backward()
        except BaseException:
            for v, g in kept:  # a failed call leaves the leaves as they were
                v.grad = g
            raise
        for v, g in kept:
            v.grad += g

    def zero_grad(self) -> None:
        """Set `.grad = 0.0` on this value and every node it was computed from."""
        zero_grad(self)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


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
