"""JAX behind the micrograd protocol, in float64 and float32.

JAX is functional, so a Value records the graph as the ops are applied: each node
holds its op, its parents and its value, computed eagerly by ``jax.numpy`` on 0-d
arrays of the class's dtype (a leaf is ``jnp.asarray(x, dtype)``, a number operand a
0-d array of the dtype). ``backward()`` replays the recorded graph as a function of
its leaves and differentiates it with ``jax.vjp``, once for all leaves.

Importing this module turns on ``jax_enable_x64`` (for the whole process: JAX has
no float64 without it); the float32 class still computes in float32, because every
array it makes is float32. XLA on CPU flushes float32 subnormals to zero: that is
the format's habit there, and it is left alone.

Ops: ``jnp.add/subtract/multiply/true_divide/negative``, ``jnp.power(x, p)`` (``p``
a Python float, as ``x ** 2.5``), ``jnp.exp/log/tanh/sin/cos/sqrt``, ``jax.nn.relu``,
``jax.nn.sigmoid``; library ops ``jnp.abs``, ``jax.nn.leaky_relu(x, 0.01)``,
``jax.nn.elu(x, 1.0)``, ``jax.nn.softplus``, ``jax.nn.gelu(x, approximate=False)``,
``jax.nn.silu``, ``jax.nn.soft_sign``, ``jnp.tan``, ``jnp.arctan``, ``jnp.log1p``,
``jnp.expm1``, ``jax.scipy.special.erf``, ``jnp.clip(x, -1, 1)``, ``jnp.maximum``,
``jnp.minimum``.

Example:
    >>> x = Float64(0.5)
    >>> y = (3.0 - x) * x.tanh()
    >>> y.backward()
    >>> round(x.grad, 12)
    1.504002175155
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import jax.scipy.special as jsp

from verifier.adapters._base import RecordedValue, install

__all__ = ["Float64", "Float32", "FUNCTIONS"]

FUNCTIONS = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div": jnp.true_divide,
    "neg": jnp.negative,
    "pow": jnp.power,
    "exp": jnp.exp,
    "log": jnp.log,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.01),
    "elu": lambda x: jax.nn.elu(x, alpha=1.0),
    "softplus": jax.nn.softplus,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "softsign": jax.nn.soft_sign,
    "tan": jnp.tan,
    "atan": jnp.arctan,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
    "erf": jsp.erf,
    "clamp": lambda x: jnp.clip(x, -1.0, 1.0),
    "maximum": jnp.maximum,
    "minimum": jnp.minimum,
}


class _JaxValue(RecordedValue):
    """A node whose value is a 0-d jax array of ``dtype``."""

    __slots__ = ()
    framework = "jax"
    dtype: ClassVar[Any]

    @classmethod
    def _scalar(cls, x: Any) -> Any:
        value = jnp.asarray(x, dtype=cls.dtype)
        if value.dtype != cls.dtype:  # jax_enable_x64 turned off since the import
            raise RuntimeError(f"jax made a {value.dtype} array where {cls.dtype_name} was asked for (is jax_enable_x64 off?)")
        return value

    def _differentiate(self, f: Callable[..., Any], leaf_values: list[Any], taps: list[Any] | None) -> tuple[Any, Any]:
        if taps is None:
            out, pullback = jax.vjp(lambda leaves: f(leaves), tuple(leaf_values))
            (grads,) = pullback(jnp.ones_like(out))
            return grads, None
        out, pullback = jax.vjp(lambda leaves, t: f(leaves, t), tuple(leaf_values), tuple(taps))
        return pullback(jnp.ones_like(out))

    def _zero_tap(self) -> Any:
        return jnp.asarray(-0.0, dtype=self.dtype)  # x + (-0.0) is x, for every x

    def _add(self, a: Any, b: Any) -> Any:
        return jnp.add(a, b)


class Float64(_JaxValue):
    """JAX in float64 (``jax_enable_x64``)."""

    __slots__ = ()
    dtype = np.dtype("float64")
    dtype_name = "float64"
    crossgrad_format = "float64-ftz"  # what the judge takes it for (verifier.formats)


class Float32(_JaxValue):
    """JAX in float32."""

    __slots__ = ()
    dtype = np.dtype("float32")
    dtype_name = "float32"
    crossgrad_format = "float32-ftz"  # what the judge takes it for (verifier.formats)


for _cls in (Float64, Float32):
    install(_cls, FUNCTIONS)
