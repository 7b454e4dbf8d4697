"""PyTorch eager autograd behind the micrograd protocol, in float64, float32 and bfloat16.

A Value wraps a 0-d tensor of the class's dtype: a leaf is ``torch.tensor(x, dtype,
requires_grad=True)`` (torch rounds ``x`` to the dtype), a number operand a 0-d
tensor of the dtype, and every op is torch's own function, differentiated by
``torch.autograd`` (``backward()`` is the output tensor's; interior tensors keep
their gradients, so every node has a ``.grad``). pow's exponent goes to
``torch.pow`` as a Python float, as ``t ** 2.5`` does.

Library ops: ``torch.abs``, ``F.leaky_relu(x, 0.01)``, ``F.elu(x, 1.0)``,
``F.softplus(x, threshold=40)`` (past 40, ``x`` and ``1`` are float64's correctly
rounded softplus and sigmoid; torch's default threshold of 20 linearises too
early for float64), ``F.gelu`` (erf form), ``F.silu``, ``F.softsign``, ``torch.tan``,
``torch.atan``, ``torch.log1p``, ``torch.expm1``, ``torch.erf``,
``torch.clamp(x, -1, 1)``, ``torch.maximum``, ``torch.minimum``.

Example:
    >>> x = Float64(0.5)
    >>> y = (3.0 - x) * x.tanh()
    >>> y.backward()
    >>> round(x.grad, 12)
    1.504002175155
    >>> Float32(0.1).data == 0.10000000149011612
    True
"""

from __future__ import annotations

import warnings

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from verifier.adapters._base import EagerValue, install

__all__ = ["Float64", "Float32", "BFloat16", "FUNCTIONS"]

SOFTPLUS_THRESHOLD = 40.0

FUNCTIONS = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "neg": torch.neg,
    "pow": torch.pow,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "sin": torch.sin,
    "cos": torch.cos,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.01),
    "elu": lambda x: F.elu(x, alpha=1.0),
    "softplus": lambda x: F.softplus(x, beta=1.0, threshold=SOFTPLUS_THRESHOLD),
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "silu": F.silu,
    "softsign": F.softsign,
    "tan": torch.tan,
    "atan": torch.atan,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "erf": torch.erf,
    "clamp": lambda x: torch.clamp(x, -1.0, 1.0),
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}


class _TorchValue(EagerValue):
    """A 0-d torch tensor of ``dtype``."""

    __slots__ = ()
    framework = "torch"
    dtype: ClassVar[torch.dtype]

    @classmethod
    def _leaf(cls, x: Any) -> Any:
        return torch.tensor(x, dtype=cls.dtype, requires_grad=True)

    @classmethod
    def _constant(cls, x: Any) -> Any:
        return torch.tensor(x, dtype=cls.dtype)

    @staticmethod
    def _after_op(t: Any) -> None:
        if t.requires_grad and not t.is_leaf:
            t.retain_grad()  # micrograd gives every node a .grad

    can_create_graph = True

    @staticmethod
    def _backward(t: Any, create_graph: bool = False) -> None:
        if t.requires_grad:
            # retain_graph: a second backward() accumulates again, as in micrograd.
            with warnings.catch_warnings():  # create_graph's reference-cycle warning: crossgrad drops the graph itself
                warnings.simplefilter("ignore")
                t.backward(retain_graph=True, create_graph=create_graph)

    @staticmethod
    def _differentiable(g: Any) -> bool:
        return bool(g.requires_grad)


class Float64(_TorchValue):
    """torch in float64."""

    __slots__ = ()
    dtype = torch.float64
    dtype_name = "float64"
    crossgrad_format = "float64"  # what the judge takes it for (verifier.formats)


class Float32(_TorchValue):
    """torch in float32."""

    __slots__ = ()
    dtype = torch.float32
    dtype_name = "float32"
    crossgrad_format = "float32"  # what the judge takes it for (verifier.formats)


class BFloat16(_TorchValue):
    """torch in bfloat16."""

    __slots__ = ()
    dtype = torch.bfloat16
    dtype_name = "bfloat16"
    crossgrad_format = "bfloat16"  # what the judge takes it for (verifier.formats)


for _cls in (Float64, Float32, BFloat16):
    install(_cls, FUNCTIONS)
