"""Printing expressions: the parser's own syntax, LaTeX and presentation MathML.

The text form re-parses to the very same DAG. Shared subexpressions are written
twice while they are short (interning restores the sharing on parsing); long shared
nodes and very deep chains get names (``t1 = ...; t2 = ...; result``), which keeps
big graphs linear in size and within Python's parser limits.

Example:
    >>> from verifier.parsing import parse
    >>> e = parse("tanh(x0*x1) - 3/x1 + x0**2.5")
    >>> to_string(e)
    'tanh(x0 * x1) - 3 / x1 + x0**2.5'
    >>> to_latex(parse("x0 / (1 + x1)"))
    '\\\\frac{x_{0}}{1 + x_{1}}'
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from verifier.expr import Expr
from verifier.ops import OPS

__all__ = ["to_string", "to_latex", "to_mathml", "to_sympy", "format_number", "tree_size"]

ATOM = 9  # precedence of names, numbers and calls
MAX_INLINE_DEPTH = 40
SHARE_NAME_LENGTH = 40


def format_number(x: float) -> str:
    """The shortest text that parses back to exactly ``x`` ("2" for 2.0)."""
    if x.is_integer() and abs(x) < 1e16 and not (x == 0 and str(x).startswith("-")):
        return str(int(x))
    return repr(x)


def _binding_names(expr: Expr) -> Callable[[], str]:
    taken = set(expr.variables)
    counter = 0

    def fresh() -> str:
        nonlocal counter
        while True:
            counter += 1
            name = f"t{counter}"
            if name not in taken:
                return name

    return fresh


def _text_node(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    """Text and precedence of one node from its arguments' texts."""
    if node.op == "var":
        return node.param, ATOM
    if node.op == "const":
        text = format_number(node.param)
        return text, 3 if text.startswith("-") else ATOM
    op = OPS[node.op]
    if op.method:
        return f"{node.op}({', '.join(text for text, _ in parts)})", ATOM
    if node.op == "neg":
        (text, prec), = parts
        return ("-" + (text if prec > 3 else f"({text})")), 3
    if node.op == "pow":
        (text, prec), = parts
        base = text if prec > 4 else f"({text})"
        return f"{base}**{format_number(node.param)}", 4
    (left, lp), (right, rp) = parts
    p = op.precedence
    left = left if lp >= p else f"({left})"
    right = right if rp > p else f"({right})"
    return f"{left} {op.symbol} {right}", p


def to_string(expr: Expr) -> str:
    """The expression in the parser's syntax (re-parsable; see the module doc)."""
    nodes = expr.nodes()
    users: dict[int, int] = {}
    for node in nodes:
        for a in node.args:
            users[id(a)] = users.get(id(a), 0) + 1
    fresh = _binding_names(expr)
    done: dict[int, tuple[str, int, int]] = {}  # id -> (text, precedence, depth)
    bindings: list[str] = []
    for node in nodes:
        parts = [done[id(a)][:2] for a in node.args]
        depth = 1 + max((done[id(a)][2] for a in node.args), default=0)
        text, prec = _text_node(node, parts)
        shared_and_long = users.get(id(node), 0) > 1 and len(text) > SHARE_NAME_LENGTH
        if node is not expr and not node.is_leaf and (shared_and_long or depth > MAX_INLINE_DEPTH):
            name = fresh()
            bindings.append(f"{name} = {text}")
            text, prec, depth = name, ATOM, 0
        done[id(node)] = (text, prec, depth)
    bindings.append(done[id(expr)][0])
    return "; ".join(bindings)


def tree_size(expr: Expr) -> int:
    """Number of nodes once shared subexpressions are written out in full."""
    size: dict[int, int] = {}
    for node in expr.nodes():
        size[id(node)] = 1 + sum(size[id(a)] for a in node.args)
    return size[id(expr)]


# -- typeset forms ------------------------------------------------------------

_LATEX_FUNCTIONS = {
    "exp": r"\exp", "log": r"\log", "tanh": r"\tanh", "sin": r"\sin", "cos": r"\cos",
    "relu": r"\operatorname{relu}", "sigmoid": r"\sigma",
}


def _latex_name(name: str) -> str:
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    stem = stem.replace("_", r"\_")
    if len(stem) > 1:
        stem = rf"\mathit{{{stem}}}"
    return f"{stem}_{{{digits}}}" if digits and stem else (stem or digits)


def _latex_node(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    if node.op == "var":
        return _latex_name(node.param), ATOM
    if node.op == "const":
        text = format_number(node.param)
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = rf"{mantissa} \cdot 10^{{{int(exponent)}}}"
        return text, 3 if text.startswith("-") else ATOM
    if node.op == "sqrt":
        return rf"\sqrt{{{parts[0][0]}}}", ATOM
    if node.op in _LATEX_FUNCTIONS:
        return rf"{_LATEX_FUNCTIONS[node.op]}\left({parts[0][0]}\right)", ATOM
    if OPS[node.op].method:
        name = node.op.replace("_", r"\_")
        return rf"\operatorname{{{name}}}\left({', '.join(text for text, _ in parts)}\right)", ATOM
    if node.op == "neg":
        (text, prec), = parts
        return "-" + (text if prec > 2 else rf"\left({text}\right)"), 3
    if node.op == "pow":
        (text, prec), = parts
        base = text if prec == ATOM else rf"\left({text}\right)"
        return f"{base}^{{{format_number(node.param)}}}", 4
    if node.op == "div":
        return rf"\frac{{{parts[0][0]}}}{{{parts[1][0]}}}", ATOM
    (left, lp), (right, rp) = parts
    p = OPS[node.op].precedence
    left = left if lp >= p else rf"\left({left}\right)"
    right = right if rp > p else rf"\left({right}\right)"
    symbol = r"\cdot" if node.op == "mul" else OPS[node.op].symbol
    return f"{left} {symbol} {right}", p


def _mathml_name(name: str) -> str:
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    if digits and stem:
        return f"<msub><mi>{escape(stem)}</mi><mn>{digits}</mn></msub>"
    return f"<mi>{escape(name)}</mi>"


def _fenced(text: str) -> str:
    return f'<mrow><mo stretchy="false">(</mo>{text}<mo stretchy="false">)</mo></mrow>'


def _mathml_node(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    if node.op == "var":
        return _mathml_name(node.param), ATOM
    if node.op == "const":
        text = format_number(node.param)
        if text.startswith("-"):
            return f"<mrow><mo>-</mo><mn>{escape(text[1:])}</mn></mrow>", 3
        return f"<mn>{escape(text)}</mn>", ATOM
    if node.op == "sqrt":
        return f"<msqrt>{parts[0][0]}</msqrt>", ATOM
    if OPS[node.op].method:
        name = "&#x3C3;" if node.op == "sigmoid" else escape(node.op)
        arguments = '<mo separator="true">,</mo>'.join(text for text, _ in parts)
        return f"<mrow><mi>{name}</mi><mo>&#x2061;</mo>{_fenced(arguments)}</mrow>", ATOM
    if node.op == "neg":
        (text, prec), = parts
        return f"<mrow><mo>-</mo>{text if prec > 2 else _fenced(text)}</mrow>", 3
    if node.op == "pow":
        (text, prec), = parts
        base = text if prec == ATOM else _fenced(text)
        return f"<msup>{base}<mn>{escape(format_number(node.param))}</mn></msup>", 4
    if node.op == "div":
        return f"<mfrac><mrow>{parts[0][0]}</mrow><mrow>{parts[1][0]}</mrow></mfrac>", ATOM
    (left, lp), (right, rp) = parts
    p = OPS[node.op].precedence
    left = left if lp >= p else _fenced(left)
    right = right if rp > p else _fenced(right)
    symbol = {"add": "+", "sub": "-", "mul": "&#x22C5;"}[node.op]
    return f"<mrow>{left}<mo>{symbol}</mo>{right}</mrow>", p


def _typeset(expr: Expr, render: Callable, max_nodes: int) -> str:
    size = tree_size(expr)
    if size > max_nodes:
        raise ValueError(f"expression has {size} nodes written out; typesetting is limited to max_nodes={max_nodes}")
    done: dict[int, tuple[str, int]] = {}
    for node in expr.nodes():
        done[id(node)] = render(node, [done[id(a)] for a in node.args])
    return done[id(expr)][0]


def to_latex(expr: Expr, *, max_nodes: int = 500) -> str:
    """LaTeX for the expression, shared nodes written out."""
    return _typeset(expr, _latex_node, max_nodes)


def to_mathml(expr: Expr, *, max_nodes: int = 500) -> str:
    """Presentation MathML (a ``<math>`` element), shared nodes written out.

    Example:
        >>> from verifier.expr import var
        >>> to_mathml(var("x0") ** 2)
        '<math xmlns="http://www.w3.org/1998/Math/MathML"><msup><msub><mi>x</mi><mn>0</mn></msub><mn>2</mn></msup></math>'
    """
    body = _typeset(expr, _mathml_node, max_nodes)
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML">{body}</math>'


def to_sympy(expr: Expr, symbols: dict[str, Any] | None = None) -> Any:
    """The expression as a SymPy expression (constants and exponents exact).

    Args:
        symbols: SymPy symbols to use for the variables (default: real symbols
            named like the variables).

    Example:
        >>> import sympy
        >>> from verifier.parsing import parse
        >>> e = to_sympy(parse("x * tanh(y)"))
        >>> sympy.diff(e, sympy.Symbol("y", real=True))
        x*(1 - tanh(y)**2)
    """
    import sympy

    symbols = dict(symbols or {})
    done: dict[int, Any] = {}
    for node in expr.nodes():
        if node.op == "var":
            done[id(node)] = symbols.setdefault(node.param, sympy.Symbol(node.param, real=True))
        elif node.op == "const":
            done[id(node)] = sympy.Rational(node.param)  # the float's exact value
        else:
            done[id(node)] = OPS[node.op].sympy(*(done[id(a)] for a in node.args), node.param)
    return done[id(expr)]
