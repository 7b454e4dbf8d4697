"""A safe parser for op formulas: text in Python's syntax to a SymPy expression.

The text is parsed by :func:`ast.parse` and walked against a whitelist (never
``sympify``, ``eval`` or ``exec``): numbers, the op's argument names, ``+ - * / **``,
the functions of :data:`FUNCTIONS`, the constants ``pi`` and ``E``, and
``Piecewise((value, condition), ..., (value, True))`` whose conditions compare
(``x > 0``) and combine them with ``&``, ``|``, ``and``, ``or``. Every error is
one line naming the offending text and its column.

Example:
    >>> expr, names = parse_formula("log(1 + exp(x))")
    >>> expr, names
    (log(exp(x) + 1), ('x',))
    >>> parse_definition("maximum(x, y) = Max(x, y)")
    ('maximum', ('x', 'y'), 'Max(x, y)')
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable

import sympy

__all__ = ["FormulaError", "FUNCTIONS", "parse_formula", "parse_definition", "parse_condition"]

MAX_LENGTH = 2000
MAX_DEPTH = 40
MAX_CONSTANT = 1e15
MAX_EXPONENT = 64
MAX_EXACT = 10**30  # numerators and denominators of the formula's exact numbers


def _log1p(u: Any) -> Any:
    return sympy.log(1 + u)


def _expm1(u: Any) -> Any:
    return sympy.exp(u) - 1


def _sigmoid(u: Any) -> Any:
    return 1 / (1 + sympy.exp(-u))


def _relu(u: Any) -> Any:
    return sympy.Max(0, u)


# name -> (SymPy builder, number of arguments; None for any number >= 2)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int | None]] = {
    "exp": (sympy.exp, 1), "log": (sympy.log, 1), "sqrt": (sympy.sqrt, 1),
    "sin": (sympy.sin, 1), "cos": (sympy.cos, 1), "tan": (sympy.tan, 1),
    "asin": (sympy.asin, 1), "acos": (sympy.acos, 1), "atan": (sympy.atan, 1),
    "sinh": (sympy.sinh, 1), "cosh": (sympy.cosh, 1), "tanh": (sympy.tanh, 1), "asinh": (sympy.asinh, 1),
    "erf": (sympy.erf, 1), "erfc": (sympy.erfc, 1),
    "Abs": (sympy.Abs, 1), "abs": (sympy.Abs, 1), "sign": (sympy.sign, 1), "Heaviside": (sympy.Heaviside, 1),
    "Max": (sympy.Max, 2), "max": (sympy.Max, 2), "Min": (sympy.Min, 2), "min": (sympy.Min, 2),
    "log1p": (_log1p, 1), "expm1": (_expm1, 1), "sigmoid": (_sigmoid, 1), "relu": (_relu, 1),
}
CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "E": sympy.E}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b}
_COMPARE = {ast.Gt: sympy.Gt, ast.GtE: sympy.Ge, ast.Lt: sympy.Lt, ast.LtE: sympy.Le}
_ALLOWED = ("numbers, argument names, + - * / **, pi, E, Piecewise((value, condition), ..., (value, True)) and "
            + ", ".join(f"{name}()" for name in FUNCTIONS))
_SIGNATURE = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*=(?!=)\s*(.+?)\s*$", re.S)
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


class FormulaError(ValueError):
    """A one-line error naming the bad part of a formula and its column."""


def _snippet(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node) or type(node).__name__


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.symbols: dict[str, sympy.Symbol] = {}

    def fail(self, message: str, node: ast.AST) -> FormulaError:
        column = getattr(node, "col_offset", -1) + 1
        where = f" at column {column}" if column > 0 else ""
        return FormulaError(f"formula {self.text!r}: {message}{where}")

    def expression(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep", node)
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                raise self.fail(f"{_snippet(self.text, node)!r} is not a real number", node)
            if not abs(node.value) <= MAX_CONSTANT:  # also inf and nan
                raise self.fail(f"constant {_snippet(self.text, node)} is out of range (|c| <= {MAX_CONSTANT:g})", node)
            # The decimal as written (0.01 is 1/100), not the binary float nearest to it.
            return sympy.Rational(repr(node.value)) if isinstance(node.value, float) else sympy.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in FUNCTIONS or node.id == "Piecewise":
                raise self.fail(f"{node.id!r} is a function, not an argument; write {node.id}(...)", node)
            return self.symbols.setdefault(node.id, sympy.Symbol(node.id, real=True))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.expression(node.left, depth + 1), self.expression(node.right, depth + 1)
            # SymPy computes numbers exactly, at once: 2**64**64 would never finish.
            if isinstance(node.op, ast.Pow) and right.is_number and not abs(right) <= MAX_EXPONENT:
                raise self.fail(f"exponent {_snippet(self.text, node.right)} is out of range (at most {MAX_EXPONENT})", node.right)
            result = _BINARY[type(node.op)](left, right)
            if result.is_Rational and not (abs(result.p) <= MAX_EXACT and result.q <= MAX_EXACT):
                raise self.fail(f"{_snippet(self.text, node)} is out of range (numbers up to {MAX_CONSTANT:g})", node)
            return result
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
            raise self.fail("'^' is not a power here: use ** for powers", node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.expression(node.operand, depth + 1)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name = node.func.id
            if name == "Piecewise":
                return self.piecewise(node, depth)
            if name in FUNCTIONS:
                build, arity = FUNCTIONS[name]
                if len(node.args) != arity:
                    raise self.fail(f"{name}() takes {arity} argument{'s' if arity > 1 else ''}, got {len(node.args)}", node)
                return build(*(self.expression(a, depth + 1) for a in node.args))
        if isinstance(node, ast.Call):
            raise self.fail(f"unknown function {_snippet(self.text, node.func)!r}; expected {_ALLOWED}", node)
        raise self.fail(f"{_snippet(self.text, node)!r} is not allowed; expected {_ALLOWED}", node)

    def piecewise(self, node: ast.Call, depth: int) -> Any:
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise self.fail("Piecewise takes (value, condition) pairs", arg)
            pieces.append((self.expression(arg.elts[0], depth + 1), self.condition(arg.elts[1], depth + 1)))
        if not pieces or pieces[-1][1] is not sympy.true:
            raise self.fail("Piecewise must end with a (value, True) pair, so that it is defined everywhere", node)
        return sympy.Piecewise(*pieces)

    def condition(self, node: ast.AST, depth: int) -> Any:
        if isinstance(node, ast.Constant) and node.value is True:
            return sympy.true
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left = self.expression(node.left, depth + 1)
            right = self.expression(node.comparators[0], depth + 1)
            return _COMPARE[type(node.ops[0])](left, right)
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v, depth + 1) for v in node.values]
            return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            parts = [self.condition(node.left, depth + 1), self.condition(node.right, depth + 1)]
            return sympy.And(*parts) if isinstance(node.op, ast.BitAnd) else sympy.Or(*parts)
        raise self.fail(f"condition {_snippet(self.text, node)!r} is not allowed; expected one comparison "
                        "(x > 0, x <= 1) or comparisons joined by & or |", node)


def _tree(text: str) -> ast.expr:
    if not isinstance(text, str):
        raise FormulaError(f"formula {text!r}: expected a string such as 'log(1 + exp(x))'")
    if not text.strip():
        raise FormulaError("formula '': empty; expected e.g. 'log(1 + exp(x))'")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula of {len(text)} characters is too long (at most {MAX_LENGTH})")
    depth = 0
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula {text[:60]!r}: brackets nested more than {MAX_DEPTH} deep")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise FormulaError(f"formula {text!r}: not valid syntax ({error.msg}) at column {error.offset or 0}") from None


def parse_formula(text: str) -> tuple[Any, tuple[str, ...]]:
    """The SymPy expression of ``text`` (real symbols) and its argument names, sorted.

    Example:
        >>> parse_formula("Piecewise((x, x > 0), (0.01*x, True))")
        (Piecewise((x, x > 0), (x/100, True)), ('x',))

    Raises:
        FormulaError: naming what is not allowed and where.
    """
    builder = _Builder(text)
    expr = builder.expression(_tree(text))
    if expr.has(sympy.I, sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise FormulaError(f"formula {text!r} has a constant that is not a finite real number (it is {expr})")
    return expr, tuple(sorted(str(s) for s in expr.free_symbols))


def parse_condition(text: str) -> Any:
    """A single comparison (``"x > -1"``) as a SymPy relational.

    Example:
        >>> parse_condition("1 + x > 0")
        x + 1 > 0
    """
    builder = _Builder(text)
    tree = _tree(text)
    relation = builder.condition(tree, 0)
    if not isinstance(relation, sympy.core.relational.Relational):
        raise FormulaError(f"condition {text!r}: expected one comparison such as 'x > -1'")
    return relation


def parse_definition(text: str) -> tuple[str, tuple[str, ...], str]:
    """``"name(x, y) = formula"`` as ``(name, arguments, formula)`` (the CLI's ``--op``).

    Raises:
        FormulaError: if the text is not of that form.
    """
    match = _SIGNATURE.match(text) if isinstance(text, str) else None
    if not match:
        raise FormulaError(f"op definition {text!r}: expected 'name(x) = formula', e.g. 'softplus(x) = log(1 + exp(x))'")
    name, arguments, formula = match.groups()
    names = tuple(a.strip() for a in arguments.split(",") if a.strip())
    for argument in names:
        if not _IDENTIFIER.match(argument):
            raise FormulaError(f"op definition {text!r}: argument {argument!r} is not a name")
    return name, names, formula
