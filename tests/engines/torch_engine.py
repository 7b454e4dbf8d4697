"""A correct engine that puts torch float64 autograd behind the engine protocol.

Every node holds a 0-d float64 tensor that requires grad and retains its grad,
so ``.grad`` is readable on intermediate nodes too. Outside an op's domain it
does what torch does (nan or inf, no exception). ``backward()`` keeps the graph,
so calling it again accumulates into every ``.grad``, as torch does.
"""
import torch


class Value:
    """A scalar node backed by a 0-d ``torch.float64`` tensor."""

    def __init__(self, data, _children=(), _op='', *, _tensor=None):
        if _tensor is None:
            _tensor = torch.tensor(float(data), dtype=torch.float64, requires_grad=True)
        _tensor.retain_grad()  # a no-op on leaves; keeps .grad on intermediate nodes
        self._t = _tensor
        self._prev = tuple(_children)
        self._op = _op

    @property
    def data(self):
        return self._t.item()

    @data.setter
    def data(self, value):
        with torch.no_grad():
            self._t.fill_(float(value))

    @property
    def grad(self):
        g = self._t.grad
        return 0.0 if g is None else g.item()

    @grad.setter
    def grad(self, value):  # lets zero_grad() write p.grad = 0.0
        self._t.grad = torch.tensor(float(value), dtype=torch.float64)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    def _node(self, tensor, children, op):
        return Value(None, children, op, _tensor=tensor)

    @staticmethod
    def _wrap(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._wrap(other)
        return self._node(self._t + other._t, (self, other), '+')

    def __sub__(self, other):
        other = self._wrap(other)
        return self._node(self._t - other._t, (self, other), '-')

    def __mul__(self, other):
        other = self._wrap(other)
        return self._node(self._t * other._t, (self, other), '*')

    def __truediv__(self, other):
        other = self._wrap(other)
        return self._node(self._t / other._t, (self, other), '/')

    def __pow__(self, k):
        assert isinstance(k, (int, float)), "only int/float powers are supported"
        return self._node(self._t ** k, (self,), f'**{k}')

    def __neg__(self):
        return self._node(-self._t, (self,), 'neg')

    def __radd__(self, other):  # other + self
        return self._wrap(other) + self

    def __rsub__(self, other):  # other - self
        return self._wrap(other) - self

    def __rmul__(self, other):  # other * self
        return self._wrap(other) * self

    def __rtruediv__(self, other):  # other / self
        return self._wrap(other) / self

    def exp(self):
        return self._node(torch.exp(self._t), (self,), 'exp')

    def log(self):
        return self._node(torch.log(self._t), (self,), 'log')

    def tanh(self):
        return self._node(torch.tanh(self._t), (self,), 'tanh')

    def relu(self):
        return self._node(torch.relu(self._t), (self,), 'relu')

    def sigmoid(self):
        return self._node(torch.sigmoid(self._t), (self,), 'sigmoid')

    def sin(self):
        return self._node(torch.sin(self._t), (self,), 'sin')

    def cos(self):
        return self._node(torch.cos(self._t), (self,), 'cos')

    def sqrt(self):
        return self._node(torch.sqrt(self._t), (self,), 'sqrt')

    def backward(self):
        self._t.backward(retain_graph=True)
