"""HIPS autograd behind the micrograd protocol, in float64.

autograd is functional, so a Value records the graph as the ops are applied: each
node holds its op, its parents and its value, computed eagerly by ``autograd.numpy``
on ``numpy.float64`` scalars (a number operand is one too). ``backward()`` replays
the recorded graph as a function of its leaves and differentiates it with
``autograd.grad``, once for all leaves (they are passed as one list).

Ops: ``anp.add/subtract/multiply/true_divide/negative``, ``anp.power(x, p)``,
``anp.exp/log/tanh/sin/cos/sqrt``, relu as ``anp.maximum(x, 0)`` (autograd's own
maximum: at 0 it gives half the gradient to each side, so relu'(0) = 0.5),
sigmoid as ``autograd.scipy.special.expit``; library ops ``anp.abs``, softplus as
``anp.logaddexp(x, 0)``, ``anp.tan``, ``anp.arctan``, ``anp.log1p``, ``anp.expm1``,
``autograd.scipy.special.erf``, ``anp.clip(x, -1, 1)``, ``anp.maximum``,
``anp.minimum``. autograd has no leaky_relu, elu, gelu, silu or softsign: the class
lacks them, and crossgrad does not test them.

Example:
    >>> x = Float64(0.5)
    >>> y = (3.0 - x) * x.tanh()
    >>> y.backward()
    >>> round(x.grad, 12)
    1.504002175155
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import autograd.numpy as anp
import autograd.scipy.special as asp
import numpy as np

from verifier.adapters._base import RecordedValue, install

__all__ = ["Float64", "FUNCTIONS"]

_ZERO = np.float64(0.0)
_ONE = np.float64(1.0)

FUNCTIONS = {
    "add": anp.add,
    "sub": anp.subtract,
    "mul": anp.multiply,
    "div": anp.true_divide,
    "neg": anp.negative,
    "pow": anp.power,
    "exp": anp.exp,
    "log": anp.log,
    "tanh": anp.tanh,
    "relu": lambda x: anp.maximum(x, _ZERO),
    "sigmoid": asp.expit,
    "sin": anp.sin,
    "cos": anp.cos,
    "sqrt": anp.sqrt,
    "abs": anp.abs,
    "softplus": lambda x: anp.logaddexp(x, _ZERO),
    "tan": anp.tan,
    "atan": anp.arctan,
    "log1p": anp.log1p,
    "expm1": anp.expm1,
    "erf": asp.erf,
    "clamp": lambda x: anp.clip(x, -_ONE, _ONE),
    "maximum": anp.maximum,
    "minimum": anp.minimum,
}


class Float64(RecordedValue):
    """HIPS autograd in float64."""

    __slots__ = ()
    framework = "autograd"
    dtype_name = "float64"
    crossgrad_format = "float64"  # what the judge takes it for (verifier.formats)

    @classmethod
    def _scalar(cls, x: Any) -> Any:
        return np.float64(x)

    def _differentiate(self, f: Callable[..., Any], leaf_values: list[Any], taps: list[Any] | None) -> tuple[Any, Any]:
        if taps is None:
            return autograd.grad(lambda leaves: f(leaves))(list(leaf_values)), None
        n = len(leaf_values)
        grads = autograd.grad(lambda xs: f(xs[:n], xs[n:]))(list(leaf_values) + list(taps))
        return grads[:n], grads[n:]

    def _zero_tap(self) -> Any:
        return np.float64(-0.0)  # x + (-0.0) is x, for every x

    def _add(self, a: Any, b: Any) -> Any:
        return anp.add(a, b)


install(Float64, FUNCTIONS)
