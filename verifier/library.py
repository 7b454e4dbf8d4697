"""The built-in op library: common ops of real engines, each defined by its formula.

Nothing here is hand-derived: :func:`verifier.define.define_op` derives each op's
derivatives, kinks, domain and noise floor from the formula. An op joins a campaign
only when asked for by name (``--ops +gelu,+softplus``, ``--ops all``,
``check_engine(ops=["gelu"])``), and is then defined on first use. ``torch`` names
torch's own function for the op (the torch oracle runs it, not the formula), and
``conventions`` records what torch and JAX give at each kink: the report shows an engine's choice
there as a convention, never as a bug (any value between the one-sided derivatives
is right).

Example:
    >>> LIBRARY["softplus"]["formula"]
    'log(1 + exp(x))'
    >>> len(LIBRARY) >= 12
    True
"""

from __future__ import annotations

from typing import Any

__all__ = ["LIBRARY", "library_names"]

LIBRARY: dict[str, dict[str, Any]] = {
    "abs": {"torch": "torch.abs", "formula": "Abs(x)", "relations": ["abs(x) == abs(-x)"], "conventions": "abs'(0) = 0 in torch and JAX (sign(0))"},
    "leaky_relu": {"torch": "torch.nn.functional.leaky_relu", "formula": "Piecewise((x, x > 0), (0.01*x, True))",
                   "conventions": "leaky_relu'(0) = 0.01 in torch (the negative side's slope)"},
    "elu": {"torch": "torch.nn.functional.elu", "formula": "Piecewise((x, x > 0), (exp(x) - 1, True))",
            "stable": "x for x > 0, expm1(x) otherwise; the derivative 1 or exp(x)"},
    "softplus": {"formula": "log(1 + exp(x))", "relations": ["softplus(x) - softplus(-x) == x"],
                 "stable": "max(x, 0) + log1p(exp(-|x|)), with the derivative sigmoid(x) (log(1 + exp(x)) overflows past x = 709.78)"},
    "gelu": {"torch": "torch.nn.functional.gelu", "formula": "x*(1 + erf(x/sqrt(2)))/2",
             "stable": "x * Phi(x) with Phi(x) = erfc(-x/sqrt(2))/2, and the derivative Phi(x) + x * exp(-x*x/2)/sqrt(2*pi)"},
    "silu": {"torch": "torch.nn.functional.silu", "formula": "x/(1 + exp(-x))",
             "stable": "x * sigmoid(x) with a stable sigmoid, and the derivative s * (1 + x * (1 - s))"},
    "softsign": {"torch": "torch.nn.functional.softsign", "formula": "x/(1 + Abs(x))", "monotone": True},
    "tan": {"torch": "torch.tan", "formula": "tan(x)", "stable": "math.tan(x), with the derivative 1 + tan(x)**2"},
    "atan": {"torch": "torch.atan", "formula": "atan(x)", "stable": "math.atan(x), with the derivative 1 / (1 + x*x) (as (1/x)**2 / (1 + (1/x)**2) past |x| = 1e154)"},
    "log1p": {"torch": "torch.log1p", "formula": "log(1 + x)", "stable": "math.log1p(x), with the derivative 1 / (1 + x)"},
    "expm1": {"torch": "torch.expm1", "formula": "exp(x) - 1", "stable": "math.expm1(x), with the derivative exp(x)"},
    "erf": {"torch": "torch.erf", "formula": "erf(x)", "stable": "math.erf(x), with the derivative 2/sqrt(pi) * exp(-x*x)"},
    "clamp": {"formula": "Min(Max(x, -1), 1)", "monotone": True,
              "conventions": "clamp'(x) = 1 at its bounds -1 and 1 in torch (the bounds are inside)"},
    "maximum": {"torch": "torch.maximum", "formula": "Max(x, y)", "relations": ["maximum(x, y) + minimum(x, y) == x + y"], "conventions": "maximum at a tie gives each side half the gradient in torch and JAX"},
    "minimum": {"torch": "torch.minimum", "formula": "Min(x, y)", "conventions": "minimum at a tie gives each side half the gradient in torch and JAX"},
}


def library_names() -> tuple[str, ...]:
    """The library's op names, in table order."""
    return tuple(LIBRARY)
