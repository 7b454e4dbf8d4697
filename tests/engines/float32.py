"""A micrograd-style engine that computes in float32: every value, local derivative
and gradient is a numpy float32, each op one float32 operation (numpy's own float32
exp, tanh, ...). Its mutants are the float32 bugs the judge must still see:

- ``TanhGradOff``: tanh' off by 1e-4 relative (float32 allows about 1e-7);
- ``SigmoidOverflows``: sigmoid as exp(x) / (1 + exp(x)), nan past x = 88.7 where
  float32's exp overflows (torch's sigmoid does not);

and ``Float32`` itself, declared as float64 (``crossgrad_format`` removed), is an
engine that computes in a narrower format than it says.

Example::

    verifier check --engine tests/engines/float32.py:Float32     # judged as float32: clean
"""
from __future__ import annotations

import numpy as np

F = np.float32


def _f(x: object) -> np.float32:
    return x.data if isinstance(x, Float32) else F(x)


class Float32:
    """A float32 Value: ``.data`` and ``.grad`` read as Python floats (exact widening)."""

    crossgrad_format = "float32"

    def __init__(self, data: object, _children: tuple = (), _local: tuple = ()) -> None:
        with np.errstate(all="ignore"):
            self._data = F(data)
        self._grad = F(0)
        self._children = _children
        self._local = _local  # d self / d child, one float32 per child

    @property
    def data(self) -> float:
        return float(self._data)

    @property
    def grad(self) -> float:
        return float(self._grad)

    def _make(self, value: object, children: tuple, local: tuple) -> "Float32":
        return type(self)(value, children, local)

    def _lift(self, other: object) -> "Float32":
        return other if isinstance(other, Float32) else type(self)(other)

    def __add__(self, other: object) -> "Float32":
        other = self._lift(other)
        return self._make(self._data + other._data, (self, other), (F(1), F(1)))

    __radd__ = __add__

    def __mul__(self, other: object) -> "Float32":
        other = self._lift(other)
        return self._make(self._data * other._data, (self, other), (other._data, self._data))

    __rmul__ = __mul__

    def __neg__(self) -> "Float32":
        return self._make(-self._data, (self,), (F(-1),))

    def __sub__(self, other: object) -> "Float32":
        other = self._lift(other)
        return self._make(self._data - other._data, (self, other), (F(1), F(-1)))

    def __rsub__(self, other: object) -> "Float32":
        return self._lift(other) - self

    def __truediv__(self, other: object) -> "Float32":
        other = self._lift(other)
        with np.errstate(all="ignore"):
            q = self._data / other._data
            return self._make(q, (self, other), (F(1) / other._data, -q / other._data))

    def __rtruediv__(self, other: object) -> "Float32":
        return self._lift(other) / self

    def __pow__(self, p: float) -> "Float32":
        x, p = self._data, F(p)
        if x < 0 and not float(p).is_integer() or x == 0 and p < 0:
            raise ValueError("pow outside its domain")
        with np.errstate(all="ignore"):
            return self._make(x ** p, (self,), (p * x ** (p - F(1)) if p != 0 else F(0),))

    def exp(self) -> "Float32":
        with np.errstate(all="ignore"):
            e = np.exp(self._data)
        return self._make(e, (self,), (e,))

    def log(self) -> "Float32":
        if self._data <= 0:
            raise ValueError("log of a non-positive number")
        return self._make(np.log(self._data), (self,), (F(1) / self._data,))

    def tanh(self) -> "Float32":
        t = np.tanh(self._data)
        return self._make(t, (self,), (self._tanh_grad(t),))

    def _tanh_grad(self, t: np.float32) -> np.float32:
        return F(1) - t * t

    def sigmoid(self) -> "Float32":
        x = self._data
        with np.errstate(all="ignore"):
            e = np.exp(-np.abs(x))
            s = F(1) / (F(1) + e) if x >= 0 else e / (F(1) + e)
        return self._make(s, (self,), (s * (F(1) - s),))

    def relu(self) -> "Float32":
        return self._make(max(self._data, F(0)), (self,), (F(1) if self._data > 0 else F(0),))

    def sin(self) -> "Float32":
        return self._make(np.sin(self._data), (self,), (np.cos(self._data),))

    def cos(self) -> "Float32":
        return self._make(np.cos(self._data), (self,), (-np.sin(self._data),))

    def sqrt(self) -> "Float32":
        if self._data < 0:
            raise ValueError("sqrt of a negative number")
        r = np.sqrt(self._data)
        with np.errstate(all="ignore"):  # sqrt'(0) is inf, as the exact one: not judged there
            return self._make(r, (self,), (F(0.5) / r,))

    def backward(self) -> None:
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((c, False) for c in node._children)
        for node in order:
            if node._children:
                node._grad = F(0)
        self._grad = F(1)
        with np.errstate(all="ignore"):
            for node in reversed(order):
                for child, local in zip(node._children, node._local):
                    child._grad = child._grad + local * node._grad


class TanhGradOff(Float32):
    """tanh' off by 1e-4 relative: a float32 bug, 1,000 times what float32 allows."""

    def _tanh_grad(self, t: np.float32) -> np.float32:
        return (F(1) - t * t) * F(1.0001)


class SigmoidOverflows(Float32):
    """sigmoid as exp(x) / (1 + exp(x)): nan where float32's exp overflows (x > 88.7)."""

    def sigmoid(self) -> "Float32":
        with np.errstate(all="ignore"):
            e = np.exp(self._data)
            s = e / (F(1) + e)
        return self._make(s, (self,), (s * (F(1) - s),))


class Undeclared(Float32):
    """The same float32 engine, not saying so: it claims float64 (the default)."""

    crossgrad_format = None
