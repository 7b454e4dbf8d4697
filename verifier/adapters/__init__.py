"""Real autograd frameworks behind the micrograd protocol, so that crossgrad can check them.

Each adapter is a ``Value`` class whose every op is the framework's own op (its own
kernel, in its own number format) and whose ``backward()`` is the framework's own
reverse mode: crossgrad then judges the framework exactly as it judges a hand-written
engine. Constants become framework scalars of the adapter's format, ``Value(x)``
rounds ``x`` to that format once (as the framework does), and ``.data``/``.grad``
widen the framework's numbers to Python floats exactly.

This module is plain data (it imports no framework): :data:`ADAPTERS` maps an engine
name, which :func:`verifier.load_engine` and ``verifier check --engine`` accept, to
``(target, number format, pip extra)``.

Example:
    >>> ADAPTERS["torch"]
    ('verifier.adapters.torch_adapter:Float64', 'float64', 'torch')
    >>> "torch" in available()
    True

    ``verifier check --engine jax --ops all`` checks JAX in float64; from Python,
    ``verifier.check_engine("torch:float32", examples=300)``.
"""

from __future__ import annotations

import importlib.util

__all__ = ["ADAPTERS", "available", "framework_of", "unavailable_modules"]

ADAPTERS: dict[str, tuple[str, str, str]] = {
    "torch": ("verifier.adapters.torch_adapter:Float64", "float64", "torch"),
    "torch:float32": ("verifier.adapters.torch_adapter:Float32", "float32", "torch"),
    "torch:bfloat16": ("verifier.adapters.torch_adapter:BFloat16", "bfloat16", "torch"),
    # XLA on CPU flushes subnormals to zero, inputs and results: a habit of its format.
    "jax": ("verifier.adapters.jax_adapter:Float64", "float64-ftz", "jax"),
    "jax:float32": ("verifier.adapters.jax_adapter:Float32", "float32-ftz", "jax"),
    "autograd": ("verifier.adapters.autograd_adapter:Float64", "float64", "autograd"),
    "mygrad": ("verifier.adapters.mygrad_adapter:Float64", "float64", "mygrad"),
    # tinygrad's CPU device compiles its kernels with clang (it must be installed).
    "tinygrad": ("verifier.adapters.tinygrad_adapter:Float64", "float64", "tinygrad"),
    "tinygrad:float32": ("verifier.adapters.tinygrad_adapter:Float32", "float32", "tinygrad"),
}


def framework_of(name: str) -> str:
    """The module an adapter needs (``"torch"`` for ``"torch:float32"``).

    Example:
        >>> framework_of("jax:float32")
        'jax'
    """
    return name.partition(":")[0]


def available() -> list[str]:
    """The adapters whose framework can be imported here (none is imported)."""
    found: dict[str, bool] = {}
    names = []
    for name in ADAPTERS:
        module = framework_of(name)
        if module not in found:
            try:
                found[module] = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found[module] = False
        if found[module]:
            names.append(name)
    return names


def unavailable_modules() -> list[str]:
    """The adapter modules that cannot be imported here, for want of their framework
    (``["verifier.adapters.jax_adapter"]`` where JAX is not installed).

    Example:
        >>> "verifier.adapters.torch_adapter" in unavailable_modules()
        False
    """
    here = set(available())
    modules = {target.partition(":")[0]: name for name, (target, _, _) in ADAPTERS.items()}
    return sorted(module for module, name in modules.items() if name not in here)
