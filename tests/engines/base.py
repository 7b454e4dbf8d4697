"""A small, correct scalar autograd engine in the style of micrograd.

This is the base of crossgrad's engine corpus: every mutant in
``tests/engines/corpus.py`` is a small textual patch of this file. So every op
(sub, div and neg included) is a primitive with its forward and its
``_backward`` closure side by side, and no op is derived from another.
"""
import math


class Value:
    """A scalar that remembers how it was computed, for reverse-mode autodiff."""

    def __init__(self, data, _children=(), _op=''):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- binary operators ----------------------------------------------

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data - other.data, (self, other), '-')

        def _backward():
            self.grad += out.grad
            other.grad -= out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        # a float division by 0.0 raises ZeroDivisionError by itself
        out = Value(self.data / other.data, (self, other), '/')

        def _backward():
            self.grad += out.grad / other.data
            other.grad -= out.data / other.data * out.grad  # d(a/b)/db = -(a/b)/b
        out._backward = _backward
        return out

    def __pow__(self, k):
        assert isinstance(k, (int, float)), "only int/float powers are supported"
        x = self.data
        if x < 0 and not float(k).is_integer():
            # Python would silently return a complex number here
            raise ValueError(f"fractional power {k} of negative number {x}")
        out = Value(x ** k, (self,), f'**{k}')  # 0.0 ** -1 raises ZeroDivisionError

        def _backward():
            if k != 0:  # x**0 is a constant (and 0.0 ** -1 would raise)
                self.grad += k * x ** (k - 1) * out.grad
        out._backward = _backward
        return out

    # ---- unary operator and functions ------------------------------------

    def __neg__(self):
        out = Value(-self.data, (self,), 'neg')

        def _backward():
            self.grad -= out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), 'exp')  # OverflowError past ~709.78

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        x = self.data
        out = Value(math.log(x), (self,), 'log')  # ValueError for x <= 0

        def _backward():
            self.grad += out.grad / x
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), 'tanh')

        def _backward():
            self.grad += (1 - t**2) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(self.data if self.data > 0 else 0.0, (self,), 'relu')

        def _backward():
            self.grad += (out.data > 0) * out.grad  # relu'(0) = 0 by convention
        out._backward = _backward
        return out

    def sigmoid(self):
        x = self.data
        if x >= 0:
            s = 1 / (1 + math.exp(-x))
        else:  # the same value, written so that exp cannot overflow
            e = math.exp(x)
            s = e / (1 + e)
        out = Value(s, (self,), 'sigmoid')

        def _backward():
            self.grad += s * (1 - s) * out.grad
        out._backward = _backward
        return out

    def sin(self):
        x = self.data
        out = Value(math.sin(x), (self,), 'sin')

        def _backward():
            self.grad += math.cos(x) * out.grad
        out._backward = _backward
        return out

    def cos(self):
        x = self.data
        out = Value(math.cos(x), (self,), 'cos')

        def _backward():
            self.grad += -math.sin(x) * out.grad
        out._backward = _backward
        return out

    def sqrt(self):
        x = self.data
        if x < 0:
            raise ValueError(f"sqrt of negative number {x}")
        s = math.sqrt(x)
        out = Value(s, (self,), 'sqrt')

        def _backward():
            self.grad += 0.5 / s * out.grad  # ZeroDivisionError at 0: the slope is infinite
        out._backward = _backward
        return out

    # ---- numbers on the left: 2 + x, 2 - x, 2 * x, 2 / x -----------------

    def __radd__(self, other):  # other + self
        return self + other

    def __rsub__(self, other):  # other - self
        return Value(other) - self

    def __rmul__(self, other):  # other * self
        return self * other

    def __rtruediv__(self, other):  # other / self
        return Value(other) / self

    # ---- reverse mode ----------------------------------------------------

    def backward(self):
        # Iterative depth-first post-order: each node lands in `topo` after all
        # of its children, with no recursion limit on deep graphs.
        topo, visited, stack = [], set(), [(self, False)]
        while stack:
            v, children_done = stack.pop()
            if children_done:
                topo.append(v)
            elif v not in visited:
                visited.add(v)
                stack.append((v, True))
                for child in v._prev:
                    stack.append((child, False))
        # the chain rule, one node at a time, from the output back to the leaves
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()
