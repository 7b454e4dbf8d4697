"""Custom gradients: a ``torch.autograd.Function`` or a ``jax.custom_vjp`` function,
checked against the formula it claims to implement, inside random graphs.

The function becomes an op of a framework adapter (its forward and its hand-written
backward are the op), the formula defines that op (:func:`verifier.define_op`), and
a campaign builds random graphs around it: its backward meets non-unit upstream
gradients, shared inputs, extreme inputs. The rest of each graph is the framework's
own ops, so a finding is the custom function's: it is blamed on the op.

Example::

    class MySoftplus(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x): ctx.save_for_backward(x); return torch.logaddexp(x, torch.zeros_like(x))
        @staticmethod
        def backward(ctx, g): (x,) = ctx.saved_tensors; return g * torch.sigmoid(x)

    result = check_custom(MySoftplus, "log(1 + exp(x))", name="my_softplus")
    result.ok

From the CLI: ``verifier check --engine torch --op 'my_softplus(x) = log(1 + exp(x))'
--custom my_softplus=my_ops.py:MySoftplus``.
"""

from __future__ import annotations

from typing import Any, Callable

from verifier.adapters import ADAPTERS
from verifier.define import define_op

__all__ = ["check_custom", "engine_with"]


def _callable(function: Any) -> Callable[..., Any]:
    """A ``torch.autograd.Function`` subclass is called through ``apply``."""
    apply = getattr(function, "apply", None)
    if isinstance(function, type) and callable(apply):
        return apply
    if not callable(function):
        raise TypeError(f"custom implementation {function!r} is not callable: expected a torch.autograd.Function, "
                        "a jax.custom_vjp function or another function of the framework's tensors")
    return function


def engine_with(framework: str, implementations: dict[str, Any]) -> type:
    """The adapter class of ``framework`` (``"torch"``, ``"jax:float32"``...) with each
    op of ``implementations`` computed by the given function (on the framework's
    own tensors or arrays).

    Example:
        >>> import torch
        >>> _ = define_op("twice", "2*x")
        >>> Engine = engine_with("torch", {"twice": lambda t: t + t})
        >>> x = Engine(1.5); y = x.twice(); y.backward(); (y.data, x.grad)
        (3.0, 2.0)
    """
    from verifier.adapters._base import install
    from verifier.loader import load_engine

    if framework not in ADAPTERS:
        raise ValueError(f"framework {framework!r}: expected one of the adapters {', '.join(ADAPTERS)}")
    base = load_engine(framework)
    table = {**base.functions, **{name: _callable(f) for name, f in implementations.items()}}
    shown = ", ".join(f"{op}={getattr(f, '__qualname__', None) or type(f).__name__}" for op, f in implementations.items())
    engine = type(f"{base.__name__}WithCustom", (base,), {"__slots__": (), "__module__": __name__,
                                                         "crossgrad_name": f"{framework} with {shown}"})
    install(engine, table)
    return engine


def check_custom(function: Any, formula: str, *, name: str = "custom", framework: str = "torch", **campaign: Any) -> Any:
    """Check ``function`` against ``formula`` in random graphs of ``framework``'s ops.

    Args:
        function: a ``torch.autograd.Function`` subclass, a ``jax.custom_vjp``
            function, or any function of the framework's tensors.
        formula: the mathematics it implements, e.g. ``"log(1 + exp(x))"``.
        name: the op's name in findings (it must not be a built-in op's).
        framework: the adapter it runs in (``"torch"``, ``"torch:float32"``, ``"jax"``...).
        campaign: passed to :func:`verifier.check_engine` (``examples``, ``seed``...);
            ``ops`` are the framework ops around it (default: every built-in op).

    Returns:
        The :class:`~verifier.result.CampaignResult`.
    """
    from verifier.campaign import check_engine

    define_op(name, formula, method=name)
    engine = engine_with(framework, {name: function})
    ops = campaign.pop("ops", None)
    ops = f"{ops},{name}" if ops else f"+{name}"
    # In this process: the implementation is the caller's own object (a class made here
    # cannot be imported again in a sandbox).
    return check_engine(engine, ops=ops, isolate=False, dtype=ADAPTERS[framework][1], **campaign)
