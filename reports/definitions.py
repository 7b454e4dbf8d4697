"""The page's "Defined ops" section: a report's op definitions, typeset.

A report's ``definitions`` (:meth:`verifier.define.OpDefinition.to_json`) are data,
and may be hostile like the rest of it. A formula or derivative text reaches the
page as MathML only by this road: the project's whitelist parser
(:func:`verifier.formula.parse_formula`, never ``sympify`` or ``eval``) builds a
SymPy tree, SymPy's presentation MathML printer prints that tree, and the
sanitizer (:mod:`reports.mathml`) rebuilds the markup from its whitelist. Anything
that fails on the way (or looks too costly to parse, see :func:`_costly`) is shown
as escaped plain text instead. Every other field is plain text for the template's
autoescaping.

Example:
    >>> view = definition_view({"name": "cube", "formula": "x**3", "arguments": ["x"], "method": "cube",
    ...                         "derivatives": ["3*x**2"], "domain": [], "kinks": []})
    >>> view["signature"], view["method"], str(view["math"])[:50]
    ('cube(x)', 'x.cube()', '<math xmlns="http://www.w3.org/1998/Math/MathML"><')
"""

from __future__ import annotations

import ast
import functools
import html.entities
import re
from typing import Any, Mapping

from markupsafe import Markup

from reports.mathml import MATHML_NS, sanitize_mathml

__all__ = ["definition_views", "definition_view", "formula_mathml"]

MAX_POW_NESTING = 2  # (a**64)**64 at most: SymPy multiplies nested integer exponents out
MAX_EXPONENT = 64
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else []


def _text(x: Any) -> str:
    return "" if x is None else str(x)


def definition_views(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One view per entry of ``report["definitions"]`` (empty when there are none)."""
    return [definition_view(d) for d in _list(report.get("definitions")) if isinstance(d, Mapping)]


def definition_view(d: Mapping[str, Any]) -> dict[str, Any]:
    """What the template shows of one definition: texts, and MathML or None."""
    name = _text(d.get("name")) or "?"
    arguments = [_text(a) for a in _list(d.get("arguments"))]
    method = _text(d.get("method")) or name
    receiver, rest = (arguments[0], arguments[1:]) if arguments else ("x", [])
    derivatives = []
    for i, text in enumerate(_list(d.get("derivatives"))):
        variable = arguments[i] if i < len(arguments) else f"argument {i + 1}"
        derivatives.append({"label": f"∂/∂{variable}", "text": _text(text), "math": formula_mathml(text)})
    return {
        "name": name,
        "signature": f"{name}({', '.join(arguments)})",
        "method": f"{receiver}.{method}({', '.join(rest)})",
        "formula": _text(d.get("formula")),
        "math": formula_mathml(d.get("formula")),
        "derivatives": derivatives,
        "domain": [_text(x) for x in _list(d.get("domain"))],
        "kinks": [_text(x) for x in _list(d.get("kinks"))],
        "monotone": d.get("monotone") is True,
        "conventions": _text(d.get("conventions")),
        "assumed": [_text(x) for x in _list(d.get("assumed"))],
        "stable": _text(d.get("stable")),
    }


def formula_mathml(text: Any) -> Markup | None:
    """``text`` (a formula in the parser's syntax) as sanitized presentation MathML,
    or None when it does not parse, cannot be printed or leaves the whitelist."""
    if not isinstance(text, str):
        return None
    markup = _formula_mathml(text)
    return Markup(markup) if markup else None


@functools.lru_cache(maxsize=512)
def _formula_mathml(text: str) -> str | None:
    if _costly(text):
        return None
    try:
        from verifier.formula import parse_formula

        expr, _ = parse_formula(text)
        body = _xml(_printer()._print(expr))
    except Exception:  # noqa: BLE001 - a bad or unprintable formula is shown as text
        return None
    return sanitize_mathml(f'<math xmlns="{MATHML_NS}">{body}</math>')


def _xml(node: Any) -> str:
    """The printer's DOM as XML, every text escaped. (Its own ``doprint`` writes text
    unescaped, so that the named entities it puts in text, ``&ExponentialE;``, stay
    entities: ``x < 0`` would come out as ``<mo><</mo>``.) Those entity names become
    their characters; an unknown one raises ValueError."""
    if node.nodeType == node.TEXT_NODE:
        return html.escape(_ENTITY.sub(_character, node.data), quote=True)
    attributes = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in node.attributes.items())
    inner = "".join(_xml(child) for child in node.childNodes)
    return f"<{node.tagName}{attributes}>{inner}</{node.tagName}>"


def _character(match: re.Match[str]) -> str:
    chars = html.entities.html5.get(match.group(1) + ";")
    if chars is None:
        raise ValueError(f"unknown entity {match.group(0)}")
    return chars


# -- cost guard --------------------------------------------------------------------------
#
# SymPy evaluates powers of numbers exactly, and multiplies nested integer exponents
# out: "2**64**64" or "((2*x)**64)**64)**64)**64" would make it compute numbers of
# billions of digits. The page shows such a text as plain text, without parsing it.

def _costly(text: str) -> bool:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False  # parse_formula rejects it (quickly) with its own error
    try:
        return _pow_nesting(tree.body) > MAX_POW_NESTING
    except _Costly:
        return True
    except RecursionError:
        return True


class _Costly(Exception):
    pass


def _small(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float) and abs(node.value) <= MAX_EXPONENT
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _small(node.operand)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _small(node.left) and _small(node.right)


def _plain_exponent(node: ast.AST) -> bool:
    """A small number (``2``, ``-1/2``), a name (``y``, ``-y``), or a name and a small
    number (``y - 1``): every exponent SymPy prints, none that computes a big one."""
    if _small(node) or isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Name)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return (isinstance(node.left, ast.Name) and _small(node.right)) or (_small(node.left) and isinstance(node.right, ast.Name))
    return False


def _pow_nesting(node: ast.AST) -> int:
    """The deepest chain of powers inside powers; raises _Costly for an exponent
    that is not plain."""
    deepest = max((_pow_nesting(child) for child in ast.iter_child_nodes(node)), default=0)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        if not _plain_exponent(node.right):
            raise _Costly
        return deepest + 1
    return deepest


# -- printer -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _printer() -> Any:
    """SymPy's presentation MathML printer, with two rules it lacks: ``Piecewise`` as
    cases (SymPy prints it as a call ``piecewise((x, x > 0), ...)``), and ``Heaviside``
    as ``Θ(x)`` without SymPy's value at 0 (the report's texts omit it too; the value
    at a kink is a convention, listed apart)."""
    import sympy
    from sympy.printing.mathml import MathMLPresentationPrinter

    class Printer(MathMLPresentationPrinter):  # type: ignore[misc]
        def _element(self, tag: str, *children: Any, text: str | None = None) -> Any:
            element = self.dom.createElement(tag)
            if text is not None:
                element.appendChild(self.dom.createTextNode(text))
            for child in children:
                element.appendChild(child)
            return element

        def _print_Piecewise(self, expr: Any) -> Any:
            rows = []
            for value, condition in expr.args:
                if condition is sympy.true:
                    when = self._element("mtext", text="otherwise")
                else:
                    when = self._element("mrow", self._element("mtext", text="if\u00a0"), self._print(condition))
                rows.append(self._element("mtr", self._element("mtd", self._print(value)), self._element("mtd", when)))
            table = self._element("mtable", *rows)
            table.setAttribute("columnalign", "left")
            brace = self._element("mo", text="{")
            brace.setAttribute("stretchy", "true")
            return self._element("mrow", brace, table)

        def _print_Heaviside(self, expr: Any) -> Any:
            return self._element("mrow", self._element("mi", text="\u0398"), self._paren_comma_separated(expr.args[0]))

    return Printer({})
