"""A safe parser for expressions written in Python's syntax.

The text is parsed by :func:`ast.parse` and then walked against a whitelist (never
evaluated): numbers, variables, ``+ - * /``, unary ``-``, ``** number`` and the ops'
functions, called as ``tanh(x)`` or as methods ``x.tanh()``. Big graphs may name
intermediate results: ``t1 = x0 * x1; t2 = tanh(t1); t2 + t1``. Sizes, constants and
exponents are limited, and every error names the offending text and its column.

Example:
    >>> str(parse("tanh(x0*x1) - 3/x1 + x0**2.5"))
    'tanh(x0 * x1) - 3 / x1 + x0**2.5'
    >>> parse("x0 ** x1")
    Traceback (most recent call last):
    ...
    verifier.parsing.ParseError: pow: the exponent must be a number (like 2, -1 or 1/3), got 'x1' at column 7
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

from verifier.expr import Expr, apply, const, var
from verifier.ops import OPS

__all__ = ["parse", "ParseError", "ParseLimits"]

_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
# Names people put before an op's function by habit (math.tanh(x)): the syntax has
# the functions themselves.
_MODULES = frozenset({"math", "cmath", "np", "numpy", "torch", "F", "jnp", "jax", "sympy", "sp", "mpmath", "mp", "scipy", "special"})
def _count(n: int) -> str:
    return "one argument" if n == 1 else f"{n} arguments"


def _functions() -> tuple[str, ...]:
    """The ops written as calls (defined ops join them when they are defined)."""
    return tuple(name for name, op in OPS.items() if op.method)


def _library_op(name: str) -> bool:
    """Define a library op on first use (``gelu(x0)``): True if ``name`` is one."""
    from verifier.library import LIBRARY

    if name not in LIBRARY:
        return False
    from verifier.define import define_op

    define_op(name)
    return True


def _allowed() -> str:
    return "numbers, variables, + - * /, unary -, ** number, and " + ", ".join(f"{f}()" for f in _functions())


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what :func:`parse` accepts.

    ``max_length`` and ``max_depth`` are checked on the text itself, before
    :func:`ast.parse` builds anything: Python's AST costs about 250 bytes per
    character of input (1M characters took ~445 MB), so the length bound is what
    bounds the parser's memory. 250,000 characters hold a chain of 20,000 ops as
    the printer writes it (about 170,000 characters with ``t1 = ...`` bindings).
    ``max_depth`` bounds brackets nested in brackets and runs of signs (``---x``);
    a long chain of operators is refused by Python's own recursion limit.
    """

    max_length: int = 250_000
    max_depth: int = 100
    max_nodes: int = 2_000_000
    max_constant: float = 1e15
    max_exponent: float = 64.0
    max_variables: int = 100_000


class ParseError(ValueError):
    """A one-line error naming the bad text and where it is.

    Attributes:
        text: the source being parsed.
        line, column: 1-based position of the problem (0 when unknown).
    """

    def __init__(self, message: str, text: str = "", line: int = 0, column: int = 0) -> None:
        self.message, self.text, self.line, self.column = message, text, line, column
        where = ""
        if column:
            where = f" at column {column}" if text.count("\n") == 0 else f" at line {line}, column {column}"
        super().__init__(message + where)

    def pointer(self) -> str:
        """The offending source line with a caret under the problem."""
        if not self.line:
            return ""
        source = self.text.splitlines()[self.line - 1] if self.text else ""
        return f"{source}\n{' ' * (self.column - 1)}^"


def _snippet(text: str, node: ast.AST) -> str:
    part = ast.get_source_segment(text, node) or type(node).__name__
    return part if len(part) <= 40 else part[:37] + "..."


class _Walker:
    def __init__(self, text: str, limits: ParseLimits, original: str = "") -> None:
        self.text, self.limits = text, limits
        # Positions are reported in the caller's text, before stripping.
        original = original or text
        leading = original[: len(original) - len(original.lstrip())]
        self.line_shift = leading.count("\n")
        self.column_shift = len(leading) - (leading.rfind("\n") + 1)
        self.original = original
        self.bound: dict[str, Expr] = {}
        self.free: set[str] = set()
        self.count = 0

    def fail(self, message: str, node: ast.AST | None = None) -> ParseError:
        if node is None or not hasattr(node, "lineno"):
            return ParseError(message, self.text)
        line = node.lineno
        # col_offset counts UTF-8 bytes; convert to characters for the caret.
        source_line = self.text.splitlines()[line - 1] if self.text else ""
        column = len(source_line.encode()[: node.col_offset].decode(errors="replace")) + 1
        if line == 1:
            column += self.column_shift
        return ParseError(message, self.original, line + self.line_shift, column)

    def exponent(self, node: ast.expr) -> float:
        value = self.number(node)
        if value is None and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            top, bottom = self.number(node.left), self.number(node.right)
            if top is not None and bottom:
                value = top / bottom
        if value is None:
            raise self.fail(f"pow: the exponent must be a number (like 2, -1 or 1/3), got {_snippet(self.text, node)!r}", node)
        if abs(value) > self.limits.max_exponent:
            raise self.fail(f"pow: exponent {value!r} is too large (|p| <= {self.limits.max_exponent:g})", node)
        return value

    def number(self, node: ast.expr) -> float | None:
        sign = 1.0
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -sign if isinstance(node.op, ast.USub) else sign
            node = node.operand
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return sign * self.constant(node)
        return None

    def constant(self, node: ast.Constant) -> float:
        try:
            value = float(node.value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value) or abs(value) > self.limits.max_constant:
            raise self.fail(f"constant {_snippet(self.text, node)} is out of range (|c| <= {self.limits.max_constant:g})", node)
        return value

    def name(self, node: ast.Name) -> Expr:
        if node.id in self.bound:
            return self.bound[node.id]
        if node.id in OPS:
            hint = f"; write {node.id}(x)" if node.id in _functions() else ""
            raise self.fail(f"{node.id!r} is an op, not a variable{hint}", node)
        self.free.add(node.id)
        if len(self.free) > self.limits.max_variables:
            raise self.fail(f"too many variables (at most {self.limits.max_variables})", node)
        try:
            return var(node.id)
        except ValueError as error:  # a name Python allows but we do not (non-ASCII)
            raise self.fail(str(error), node) from None

    def children(self, node: ast.AST) -> list[ast.expr]:
        """The sub-expressions to build first; raises on anything not whitelisted."""
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                return [node.left]
            if isinstance(node.op, ast.BitXor):  # x^2 as in maths or LaTeX: Python's ^ is xor
                raise self.fail(f"'^' is not a power here: use ** for powers: {_with_powers(self.text)}", node)
            if type(node.op) not in _BINARY:
                raise self.fail(f"operator {_snippet(self.text, node)!r} is not allowed; expected {_allowed()}", node)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.fail(f"{_snippet(self.text, node)!r} is not allowed; expected {_allowed()}", node)
            return [node.operand]
        if isinstance(node, ast.Call):
            func = node.func
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise self.fail("function calls take one plain argument", node)
            functions = _functions()
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called not in functions and _library_op(called):
                functions = _functions()
            if isinstance(func, ast.Name) and func.id in functions:
                arity = OPS[func.id].arity
                if len(node.args) != arity:
                    raise self.fail(f"{func.id}() takes exactly {_count(arity)}", node)
                return list(node.args)
            if isinstance(func, ast.Attribute) and func.attr in functions and _is_module(func.value, self.bound):
                arguments = ", ".join(_snippet(self.text, a) for a in node.args) or "x"
                raise self.fail(f"write {func.attr}({arguments}), without the module: "
                                f"{_snippet(self.text, func)!r} is not in the syntax", node)
            if isinstance(func, ast.Attribute) and func.attr in functions:
                arity = OPS[func.attr].arity
                if len(node.args) != arity - 1:
                    raise self.fail(f".{func.attr}() takes {'no arguments' if arity == 1 else _count(arity - 1)}", node)
                return [func.value, *node.args]
            called = _snippet(self.text, func)
            raise self.fail(f"unknown function {called!r}; expected one of {', '.join(functions)}", node)
        if isinstance(node, (ast.Name, ast.Constant)):
            if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
                raise self.fail(f"{_snippet(self.text, node)!r} is not a real number", node)
            return []
        raise self.fail(f"{_snippet(self.text, node)!r} is not allowed; expected {_allowed()}", node)

    def build(self, node: ast.AST, parts: list[Expr]) -> Expr:
        self.count += 1
        if self.count > self.limits.max_nodes:
            raise self.fail(f"expression is too large (more than {self.limits.max_nodes} nodes)", node)
        if isinstance(node, ast.Constant):
            return const(self.constant(node))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                return apply("pow", parts[0], param=self.exponent(node.right))
            return apply(_BINARY[type(node.op)], *parts)
        if isinstance(node, ast.UnaryOp):
            return apply("neg", parts[0]) if isinstance(node.op, ast.USub) else parts[0]
        func = node.func  # a whitelisted call
        return apply(func.id if isinstance(func, ast.Name) else func.attr, *parts)

    def expression(self, root: ast.expr) -> Expr:
        """Post-order walk with an explicit stack: nesting depth is not limited here."""
        done: dict[int, Expr] = {}
        stack: list[tuple[ast.AST, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if ready:
                kids = self.children(node)
                done[id(node)] = self.build(node, [done[id(k)] for k in kids])
                continue
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and self.number(node) is not None:
                done[id(node)] = const(self.number(node))  # "-2" is a number, not neg(2)
                continue
            stack.append((node, True))
            stack.extend((kid, False) for kid in reversed(self.children(node)))
        return done[id(root)]

    def module(self, tree: ast.Module) -> Expr:
        if not tree.body:
            raise ParseError("empty expression: expected e.g. 'tanh(x0 * x1)'", self.text)
        *assignments, last = tree.body
        for statement in assignments:
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
                raise self.fail("only 'name = expression' may come before the final expression", statement)
            target = statement.targets[0].id
            if target in OPS or target in self.bound or target in self.free:
                raise self.fail(f"name {target!r} is already used; choose a fresh name", statement)
            self.bound[target] = self.expression(statement.value)
        if not isinstance(last, ast.Expr):
            raise self.fail("the last statement must be the expression itself", last)
        return self.expression(last.value)


def _with_powers(text: str, width: int = 24) -> str:
    """The text as meant, ``^`` read as ``**`` (Python's ``^`` also binds more
    loosely than ``+``: ``tanh(x)^2 + 1`` means ``tanh(x)**2 + 1``), cut to a window
    around the first ``^`` when long."""
    line = next(part for part in text.splitlines() if "^" in part)
    i = line.index("^")
    left, right = line[max(0, i - width): i], line[i + 1: i + 1 + width]
    shown = ("..." if i > width else "") + left + "**" + right + ("..." if len(line) > i + 1 + width else "")
    return shown.replace("^", "**").strip()


def _is_module(node: ast.expr, bound: dict[str, Expr]) -> bool:
    """Whether ``node`` (before ``.tanh(...)``) names a library: ``math``,
    ``np``, ``torch.nn.functional``; not a variable of the expression."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in _MODULES and node.id not in bound


# The last operator of a text that stops too early ("x0 +"), and what it is.
_DANGLING = re.compile(r"(\*\*|[-+*/^])\s*$")


def _syntax_message(text: str, error: SyntaxError) -> str:
    """Python's complaint, with a hint where a usual slip explains it."""
    dangling = _DANGLING.search(text)
    if dangling:
        return f"the expression ends after {dangling.group(1)!r}: an operand is missing"
    msg = error.msg or "invalid syntax"
    if msg.startswith("invalid decimal literal"):
        return f"{msg}: write 2*x for a product, not 2x"
    return msg if msg.startswith("invalid syntax") else f"invalid syntax: {msg}"


_BRACKETS = re.compile(r"[][(){}]")
_SIGNS = re.compile(r"[-+~](?:\s*[-+~])*")  # a run of signs nests one unary op per sign


def _depth(text: str) -> int:
    """How deep brackets nest, or the longest run of signs if that is more, read off
    the text without building anything (an unbalanced text is left to
    :func:`ast.parse` to explain)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "([{" else -1
        deepest = max(deepest, depth)
    signs = max((sum(map(m.group().count, "-+~")) for m in _SIGNS.finditer(text)), default=0)
    return max(deepest, signs)


def _check_text(text: str, limits: ParseLimits) -> None:
    """The limits that need no AST: refused before :func:`ast.parse` allocates it."""
    if len(text) > limits.max_length:
        raise ParseError(f"expression is {len(text)} characters long; at most {limits.max_length} allowed "
                         "(ParseLimits.max_length; name intermediate results to shorten it)")
    depth = _depth(text)
    if depth > limits.max_depth:
        raise ParseError(f"expression is nested {depth} levels deep (brackets or signs); at most {limits.max_depth} allowed "
                         "(ParseLimits.max_depth; name intermediate results: t1 = ...; t2 = ...)")


def parse(text: str, *, limits: ParseLimits = ParseLimits()) -> Expr:
    """Parse ``text`` into an :class:`~verifier.expr.Expr` without evaluating it.

    Args:
        text: e.g. ``"tanh(x0*x1) - 3/x1 + x0**2.5"``; statements may be separated
            by newlines or ``;``.
        limits: length, depth, size, constant and exponent bounds; the length and
            depth are checked on the text before Python's parser runs.

    Raises:
        ParseError: a ValueError with a one-line message naming the bad text.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as a string, got {type(text).__name__}")
    _check_text(text, limits)
    walker = _Walker(text.strip(), limits, text)
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as error:
        line, column = error.lineno or 0, error.offset or 0
        if line == 1:
            column += walker.column_shift
        message = _syntax_message(text.strip(), error)
        raise ParseError(message, text, line + walker.line_shift if line else 0, column) from None
    except (RecursionError, MemoryError):
        raise ParseError("expression is nested too deeply; name intermediate results (t1 = ...; t2 = ...)") from None
    return walker.module(tree)
