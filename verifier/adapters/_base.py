"""What every adapter shares: the micrograd operators, and the two ways of running
a framework behind them.

* :class:`EagerValue` wraps a framework tensor that records its own graph (torch,
  mygrad): each op is the framework's function on tensors, ``backward()`` is the
  tensor's.
* :class:`RecordedValue` is for functional frameworks (JAX, HIPS autograd): each
  node holds its op, its parents and its value, computed eagerly by the framework;
  ``backward()`` differentiates a replay of the recorded graph, as a function of its
  leaves, with the framework's reverse mode.

Nothing here does arithmetic in Python floats: a number operand becomes a framework
scalar of the adapter's format (``3.0 - v`` is the framework's subtraction of two
framework scalars); pow's exponent is handed to the framework's pow as a Python
float, as ``v ** 2.5`` does in that framework.

An adapter class lists its ops in ``functions`` (name -> framework function of
framework values; pow's takes the exponent as a second argument); an op a framework
does not have is simply absent from the class (crossgrad then does not test it).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from verifier.expr import post_order

__all__ = ["AdapterValue", "EagerValue", "RecordedValue", "install"]

OPERATORS = ("add", "sub", "mul", "div", "neg", "pow")
BINARY_METHODS = ("maximum", "minimum")
_NUMBERS = (int, float)


class AdapterValue:
    """The micrograd operators, each calling the framework function of that name."""

    __slots__ = ()
    functions: ClassVar[dict[str, Callable[..., Any]]] = {}
    framework: ClassVar[str] = ""
    dtype_name: ClassVar[str] = ""

    def _apply(self, name: str, args: tuple[Any, ...], param: Any = None) -> AdapterValue:  # pragma: no cover
        raise NotImplementedError

    def _operands(self, *args: Any) -> tuple[Any, ...] | None:
        """The operands if each is a Value of this class or a number, else None."""
        for a in args:
            if not (type(a) is type(self) or (isinstance(a, _NUMBERS) and not isinstance(a, bool))):
                return None
        return args

    def _binary(self, name: str, a: Any, b: Any) -> Any:
        args = self._operands(a, b)
        return NotImplemented if args is None else self._apply(name, args)

    def __add__(self, other: Any) -> Any:
        return self._binary("add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self._binary("add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self._binary("sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._binary("sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._binary("mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._binary("mul", other, self)

    def __truediv__(self, other: Any) -> Any:
        return self._binary("div", self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._binary("div", other, self)

    def __neg__(self) -> Any:
        return self._apply("neg", (self,))

    def __pow__(self, exponent: Any) -> Any:
        if not isinstance(exponent, _NUMBERS) or isinstance(exponent, bool):
            return NotImplemented
        return self._apply("pow", (self,), exponent)

    def __repr__(self) -> str:
        try:
            return f"{type(self).__qualname__}(data={self.data!r}, grad={self.grad!r})"  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a repr must not raise
            return f"<{type(self).__qualname__}>"


def install(cls: type, functions: dict[str, Callable[..., Any]]) -> None:
    """Give ``cls`` the table ``functions`` and a method for each of its non-operator
    ops (``x.tanh()``; ``x.maximum(y)`` for the binary ones)."""
    cls.functions = dict(functions)
    for name in functions:
        if name in OPERATORS:
            continue
        if name in BINARY_METHODS:
            def method(self: Any, other: Any, _name: str = name) -> Any:
                args = self._operands(self, other)
                if args is None:
                    raise TypeError(f"{_name}() takes a {type(self).__qualname__} or a number, not {type(other).__name__}")
                return self._apply(_name, args)
        else:
            def method(self: Any, _name: str = name) -> Any:  # type: ignore[misc]
                return self._apply(_name, (self,))
        method.__name__ = name
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        method.__doc__ = f"The framework's own {name} (see the adapter's module)."
        setattr(cls, name, method)


class EagerValue(AdapterValue):
    """A framework tensor that records its own graph (torch, mygrad).

    Subclasses give ``functions`` and these hooks: ``_leaf(x)`` (a float rounded to
    the format, as a tensor that wants a gradient), ``_constant(x)`` (the same, with
    no gradient), ``_item(t)``, ``_grad_of(t)`` (None if the framework has none),
    ``_backward(t)`` and ``_after_op(t)`` (e.g. keep an interior node's gradient);
    for second order, ``can_create_graph``, ``_backward(t, create_graph)``,
    ``_differentiable(g)`` (the gradient is itself on a graph) and ``_clear_grad(t)``.
    """

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, data: Any) -> None:
        self.tensor = self._leaf(data)

    @classmethod
    def _wrap(cls, tensor: Any) -> EagerValue:
        value = object.__new__(cls)
        value.tensor = tensor
        return value

    def _apply(self, name: str, args: tuple[Any, ...], param: Any = None) -> AdapterValue:
        operands = [a.tensor if isinstance(a, EagerValue) else self._constant(a) for a in args]
        function = self.functions[name]
        result = function(*operands, param) if name == "pow" else function(*operands)
        self._after_op(result)
        return self._wrap(result)

    @property
    def data(self) -> float:
        """The framework's value, widened exactly to a Python float."""
        return self._item(self.tensor)

    @property
    def grad(self) -> Any:
        """d out / d self after ``out.backward()`` (0.0 where the framework has none);
        after ``backward(create_graph=True)``, a Value of the gradient's own graph."""
        g = self._grad_of(self.tensor)
        if g is None:
            return 0.0
        return self._wrap(g) if self._differentiable(g) else self._item(g)

    @grad.setter
    def grad(self, value: Any) -> None:
        """Only ``x.grad = 0`` (what crossgrad does between backward passes): forget it."""
        if value != 0:
            raise ValueError(f"{self.framework}: only .grad = 0 can be set, got {value!r}")
        self._clear_grad(self.tensor)

    def backward(self, create_graph: bool = False) -> None:
        """The framework's reverse mode from this node; ``create_graph=True`` (where
        the framework can) makes each ``.grad`` differentiable in turn."""
        if create_graph and not self.can_create_graph:
            raise TypeError(f"{self.framework}'s backward() cannot differentiate its gradients (no create_graph)")
        self._backward(self.tensor, create_graph) if create_graph else self._backward(self.tensor)

    # hooks
    @classmethod
    def _leaf(cls, x: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _constant(cls, x: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _item(t: Any) -> float:
        return float(t.item())

    can_create_graph = False  # backward(create_graph=True) works (hooks _differentiable, _clear_grad)

    @staticmethod
    def _grad_of(t: Any) -> Any:
        return t.grad

    @staticmethod
    def _differentiable(g: Any) -> bool:
        return False

    @staticmethod
    def _clear_grad(t: Any) -> None:
        t.grad = None

    @staticmethod
    def _backward(t: Any) -> None:
        t.backward()

    @staticmethod
    def _after_op(t: Any) -> None:
        return None


class RecordedValue(AdapterValue):
    """A node of a recorded graph, for functional frameworks (JAX, autograd).

    Each node holds its op's name, its parents (Values, or constants already made
    framework scalars) and its value, computed eagerly by the framework. ``backward()``
    replays the graph as a function of its leaves and differentiates that with the
    framework's reverse mode (subclasses give ``_differentiate``), once for all
    leaves; an interior node's ``.grad`` (its adjoint) is computed on first reading,
    by a second replay that adds an exact ``-0.0`` "tap" to every interior node and
    differentiates with respect to the taps too.

    Subclasses give ``functions`` and ``_scalar(x)`` (a number as a framework scalar
    of the format), ``_differentiate(f, leaf_values, taps)``, ``_zero_tap()`` and
    ``_add(a, b)`` (the framework's addition) and ``_item(v)``.
    """

    __slots__ = ("_value", "_op", "_parents", "_param", "_grad", "_source", "__weakref__")

    def __init__(self, data: Any) -> None:
        self._value = self._scalar(data)
        self._op: str | None = None
        self._parents: tuple[Any, ...] = ()
        self._param: Any = None
        self._grad: Any = None
        self._source: Any = None  # (adjoints thunk, index) of an interior node after backward()

    def _apply(self, name: str, args: tuple[Any, ...], param: Any = None) -> AdapterValue:
        parents = tuple(a if isinstance(a, RecordedValue) else self._scalar(a) for a in args)
        node = object.__new__(type(self))
        node._op, node._parents, node._param = name, parents, param
        node._grad = node._source = None
        node._value = self._run(name, [p._value if isinstance(p, RecordedValue) else p for p in parents], param)
        return node

    def _run(self, name: str, values: list[Any], param: Any) -> Any:
        function = self.functions[name]
        return function(*values, param) if name == "pow" else function(*values)

    @property
    def data(self) -> float:
        """The framework's value, widened exactly to a Python float."""
        return self._item(self._value)

    @property
    def grad(self) -> float:
        """d out / d self after ``out.backward()`` (0.0 if it has had none)."""
        if self._grad is None and self._source is not None:
            adjoints, index = self._source
            self._grad = adjoints()[index]
        return 0.0 if self._grad is None else self._item(self._grad)

    def _graph(self) -> list[RecordedValue]:
        """Every node this one depends on, parents before children."""
        return post_order(self, lambda node: [p for p in node._parents if isinstance(p, RecordedValue)])

    def backward(self) -> None:
        """The framework's reverse mode through a replay of the graph: each leaf's
        ``.grad`` gets d self / d leaf (accumulated, as in micrograd)."""
        order = self._graph()
        leaves = [n for n in order if n._op is None]
        inner = [n for n in order if n._op is not None]

        def replay(leaf_values: Any, taps: Any = None) -> Any:
            env: dict[int, Any] = {id(n): v for n, v in zip(leaves, leaf_values)}
            for k, node in enumerate(inner):
                values = [env[id(p)] if isinstance(p, RecordedValue) else p for p in node._parents]
                value = self._run(node._op, values, node._param)  # type: ignore[arg-type]
                env[id(node)] = value if taps is None else self._add(value, taps[k])
            return env[id(self)]

        leaf_values = [n._value for n in leaves]
        grads, _ = self._differentiate(replay, leaf_values, None)
        for leaf, g in zip(leaves, grads):
            leaf._grad = g if leaf._grad is None else self._add(leaf._grad, g)

        cache: list[Any] = []

        def adjoints() -> list[Any]:
            if not cache:
                taps = [self._zero_tap() for _ in inner]
                _, tap_grads = self._differentiate(replay, leaf_values, taps)
                cache.append(list(tap_grads))
            return cache[0]

        for k, node in enumerate(inner):
            node._grad, node._source = None, (adjoints, k)

    # hooks
    @classmethod
    def _scalar(cls, x: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _item(v: Any) -> float:
        return float(v)

    def _differentiate(self, f: Callable[..., Any], leaf_values: list[Any], taps: list[Any] | None) -> tuple[Any, Any]:
        """``(d f / d leaves, d f / d taps)`` at these values (``taps`` None: leaves only)."""
        raise NotImplementedError  # pragma: no cover

    def _zero_tap(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _add(self, a: Any, b: Any) -> Any:  # pragma: no cover
        raise NotImplementedError
