"""Tiny neural networks on `Value`: Neuron, Layer, MLP (micrograd's nn, made deterministic).

Differences from micrograd, on purpose:
- weights AND bias start uniform(-1, 1) from a `random.Random` you can pass (`rng=`);
  the default is `random.Random(0)`, created once per top-level object, so two
  `MLP(3, [4, 4, 1])` are identical and neurons inside one are not;
- nonlinearity by name: 'tanh' (default), 'relu' or 'linear'; `MLP` uses `nonlin` on
  hidden layers and `output_nonlin` (default 'tanh', as in Karpathy's lecture) on the
  last one. micrograd's own MLP is `MLP(nin, nouts, nonlin='relu', output_nonlin='linear')`.

`parameters()` order (tests and optimisers rely on it): layer by layer, neuron by
neuron, each neuron's weights in input order and then its bias.

Example:
    >>> from engine.nn import MLP
    >>> net = MLP(3, [4, 4, 1])
    >>> len(net.parameters())
    41
    >>> loss = (net([2.0, 3.0, -1.0]) - 1.0) ** 2
    >>> net.zero_grad(); loss.backward()
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from engine.value import Value

__all__ = ["Module", "Neuron", "Layer", "MLP", "NONLINEARITIES"]

NONLINEARITIES = ("tanh", "relu", "linear")


def _check_nonlin(name: str, value: Any) -> str:
    if value not in NONLINEARITIES:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, NONLINEARITIES))}")
    return str(value)


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return value


class Module:
    """Something with parameters: the base of Neuron, Layer and MLP."""

    def zero_grad(self) -> None:
        """Set every parameter's `.grad` to 0.0 (call it before each `backward()`)."""
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        """The trainable Values, in a fixed documented order."""
        return []


class Neuron(Module):
    """`nonlin(w . x + b)` with `nin` inputs.

    Args:
        nin: number of inputs.
        nonlin: 'tanh', 'relu' or 'linear'.
        rng: source of the initial weights (uniform(-1, 1)); default `random.Random(0)`.

    Example:
        >>> n = Neuron(2, 'relu')
        >>> n([1.0, -2.0]).data >= 0.0
        True
    """

    def __init__(self, nin: int, nonlin: str = "tanh", *, rng: random.Random | None = None):
        nin = _check_size("nin", nin)
        self.nonlin = _check_nonlin("nonlin", nonlin)
        rng = random.Random(0) if rng is None else rng
        self.w = [Value(rng.uniform(-1, 1), label=f"w{i}") for i in range(nin)]
        self.b = Value(rng.uniform(-1, 1), label="b")

    def __call__(self, x: Sequence[Value | float]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if self.nonlin == "tanh":
            return act.tanh()
        return act.relu() if self.nonlin == "relu" else act

    def parameters(self) -> list[Value]:
        return self.w + [self.b]  # weights in input order, then the bias

    def __repr__(self) -> str:
        return f"{self.nonlin.capitalize()}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons reading the same `nin` inputs.

    Args:
        nin: number of inputs.
        nout: number of neurons (outputs).
        **kw: passed to every `Neuron` (`nonlin=`, `rng=`); one default rng is shared
            by the layer's neurons so they differ.

    Example:
        >>> len(Layer(3, 2)([1.0, 2.0, 3.0])), type(Layer(3, 1)([1.0, 2.0, 3.0])).__name__
        (2, 'Value')
    """

    def __init__(self, nin: int, nout: int, **kw: Any):
        nout = _check_size("nout", nout)
        kw.setdefault("rng", random.Random(0))
        self.neurons = [Neuron(nin, **kw) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out  # a one-neuron layer gives a Value

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: `nin` inputs, then layers of sizes `nouts`.

    Args:
        nin: number of inputs.
        nouts: layer sizes, e.g. `[4, 4, 1]`.
        nonlin: nonlinearity of the hidden layers.
        output_nonlin: nonlinearity of the last layer (default 'tanh'; micrograd's
            MLP uses 'linear' there).
        rng: source of the initial weights; default `random.Random(0)`.

    Example:
        >>> MLP(2, [2, 1], nonlin='relu', output_nonlin='linear')
        MLP of [Layer of [ReluNeuron(2), ReluNeuron(2)], Layer of [LinearNeuron(2)]]
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        *,
        nonlin: str = "tanh",
        output_nonlin: str = "tanh",
        rng: random.Random | None = None,
    ):
        if not nouts:
            raise ValueError(f"nouts={nouts!r} must list at least one layer size")
        _check_nonlin("nonlin", nonlin)
        _check_nonlin("output_nonlin", output_nonlin)
        rng = random.Random(0) if rng is None else rng
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=output_nonlin if i == last else nonlin, rng=rng)
            for i in range(len(nouts))
        ]

    def __call__(self, x: Sequence[Value | float]) -> Any:
        out: Any = x
        for layer in self.layers:
            out = layer([out] if isinstance(out, Value) else out)  # a 1-wide hidden layer gave a Value
        return out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
