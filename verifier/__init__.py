"""crossgrad's verifier: cross-checks gradients of an autograd engine against exact
symbolic derivatives (SymPy, evaluated at 50 digits), PyTorch and central
differences, judging each point by how much float64 noise it can carry.

Example:
    >>> import verifier
    >>> verifier.compare("tanh(x0 * x1)", {"x0": 0.5, "x1": 2.0}).verdict
    'agree'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module. Imported on first use, so that `import verifier` (and the
# engine sandboxes, which import a small part of it) stay fast. No module may share
# a name with a function here: importing `verifier.parse` would have bound the
# module over the function `verifier.parse`.
_EXPORTS = {
    "compare": "verifier.comparison",
    "Comparison": "verifier.comparison",
    "check_engine": "verifier.campaign",
    "CampaignResult": "verifier.result",
    "Finding": "verifier.findings",
    "Blame": "verifier.findings",
    "OracleReport": "verifier.findings",
    "Expr": "verifier.expr",
    "var": "verifier.expr",
    "const": "verifier.expr",
    "apply": "verifier.expr",
    "parse": "verifier.parsing",
    "to_sympy": "verifier.printing",
    "to_latex": "verifier.printing",
    "to_mathml": "verifier.printing",
    "ParseError": "verifier.parsing",
    "OPS": "verifier.ops",
    "load_engine": "verifier.loader",
    "EngineLoadError": "verifier.loader",
    "strategies": "verifier.strategies",
    "assert_gradients": "verifier.assertions",
    "assert_op_alone": "verifier.alone",
    "assert_same_gradients": "verifier.assertions",
    "assert_hessians": "verifier.assertions",
    "assert_tangents": "verifier.assertions",
    "hessian_at": "verifier.second_order",
    "GradientMismatch": "verifier.assertions",
    "define_op": "verifier.define",
    "forget_ops": "verifier.define",
    "OpDefinition": "verifier.define",
    "FormulaError": "verifier.formula",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    value = importlib.import_module(module)
    if name != "strategies":
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
