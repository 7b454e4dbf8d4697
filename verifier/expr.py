"""Immutable expression DAGs.

An :class:`Expr` is a variable, a constant, or an op of the table applied to other
expressions. Nodes are interned: building the same expression twice gives the same
object, so a subexpression written twice *is* a shared node (where ``=``-instead-of-
``+=`` bugs live), and printing then re-parsing gives back the very same DAG.

Expressions support Python's operators and the engine methods, so tracing a plain
function of Value-like arguments is just calling it with variables.

Example:
    >>> x, y = var("x"), var("y")
    >>> e = (x * y).tanh() + (x * y).tanh()
    >>> str(e)
    'tanh(x * y) + tanh(x * y)'
    >>> len(e.nodes())   # x, y, x*y, tanh, + : the tanh is shared
    5
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from verifier.ops import OPS

__all__ = ["Expr", "Program", "Schedule", "Step", "var", "const", "apply", "compile_program", "from_program", "natural_key",
           "post_order", "merge", "schedule"]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INTERNED: weakref.WeakValueDictionary[tuple, Expr] = weakref.WeakValueDictionary()


def natural_key(name: str) -> tuple:
    """Sort key putting ``x2`` before ``x10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


class Expr:
    """A node of an interned expression DAG (build with :func:`var`, :func:`const`,
    :func:`apply` or Python operators).

    Attributes:
        op: ``"var"``, ``"const"`` or an op name of :data:`verifier.ops.OPS`.
        args: the argument nodes.
        param: the variable's name, the constant's value, or pow's exponent.
        variables: the names of the variables below this node, naturally sorted.
    """

    __slots__ = ("op", "args", "param", "variables", "__weakref__")

    op: str
    args: tuple[Expr, ...]
    param: Any
    variables: tuple[str, ...]

    def __new__(cls, op: str, args: tuple[Expr, ...] = (), param: Any = None) -> Expr:
        key = (op, _param_key(param), tuple(id(a) for a in args))
        node = _INTERNED.get(key)
        if node is not None:
            return node
        node = super().__new__(cls)
        object.__setattr__(node, "op", op)
        object.__setattr__(node, "args", args)
        object.__setattr__(node, "param", param)
        object.__setattr__(node, "variables", _merge_variables(op, args, param))
        # The key holds ids of args; they stay valid while this node (which keeps
        # its args alive) is in the table.
        _INTERNED[key] = node
        return node

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Expr is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Expr is immutable")

    def __reduce__(self) -> tuple:
        # Through the plain-data Program: any valid Expr, whatever the parser's limits.
        return (from_program, (compile_program(self),))

    # -- structure -----------------------------------------------------------
    def nodes(self) -> list[Expr]:
        """Every node once, arguments before their users (iterative: any depth)."""
        return post_order(self, lambda node: node.args)

    @property
    def is_leaf(self) -> bool:
        return self.op in ("var", "const")

    def __str__(self) -> str:
        from verifier.printing import to_string

        return to_string(self)

    def __repr__(self) -> str:
        text = str(self)
        if len(text) > 200:
            text = text[:197] + "..."
        return f"Expr({text!r})"

    # -- building with Python operators (this is what tracing uses) ----------
    def __add__(self, other: Any) -> Expr:
        return apply("add", self, _lift(other))

    def __radd__(self, other: Any) -> Expr:
        return apply("add", _lift(other), self)

    def __sub__(self, other: Any) -> Expr:
        return apply("sub", self, _lift(other))

    def __rsub__(self, other: Any) -> Expr:
        return apply("sub", _lift(other), self)

    def __mul__(self, other: Any) -> Expr:
        return apply("mul", self, _lift(other))

    def __rmul__(self, other: Any) -> Expr:
        return apply("mul", _lift(other), self)

    def __truediv__(self, other: Any) -> Expr:
        return apply("div", self, _lift(other))

    def __rtruediv__(self, other: Any) -> Expr:
        return apply("div", _lift(other), self)

    def __neg__(self) -> Expr:
        return apply("neg", self)

    def __pos__(self) -> Expr:
        return self

    def __pow__(self, exponent: Any) -> Expr:
        if isinstance(exponent, Expr) or not isinstance(exponent, Real) or isinstance(exponent, bool):
            raise TypeError(f"pow: the exponent must be a number, got {_describe(exponent)}")
        return apply("pow", self, param=float(exponent))

    def __rpow__(self, base: Any) -> Expr:
        raise TypeError("pow: only expression ** number is supported (a number ** expression is not an op)")

    def exp(self) -> Expr:
        return apply("exp", self)

    def log(self) -> Expr:
        return apply("log", self)

    def tanh(self) -> Expr:
        return apply("tanh", self)

    def relu(self) -> Expr:
        return apply("relu", self)

    def sigmoid(self) -> Expr:
        return apply("sigmoid", self)

    def sin(self) -> Expr:
        return apply("sin", self)

    def cos(self) -> Expr:
        return apply("cos", self)

    def sqrt(self) -> Expr:
        return apply("sqrt", self)

    def __bool__(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        # A defined op is traced like a built-in one: x.softplus(), x.maximum(y).
        spec = OPS.get(name)
        if spec is None or not spec.method or name.startswith("_"):
            raise AttributeError(f"Expr has no attribute {name!r}")
        return lambda *others: apply(name, self, *(_lift(o) for o in others))


def post_order(root: Any, children: Callable[[Any], Sequence[Any]]) -> list[Any]:
    """Every node reachable from ``root`` once, each after its ``children(node)``
    (iterative: a graph of any depth; nodes are told apart by identity).

    Example:
        >>> x = var("x")
        >>> [str(n) for n in post_order(x * x + 1, lambda n: n.args)]
        ['x', 'x * x', '1', 'x * x + 1']
    """
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(children(node)):
            if id(child) not in seen:
                stack.append((child, False))
    return order


def _param_key(param: Any) -> Any:
    if isinstance(param, float):
        # 0.0 and -0.0 are different constants (1/x tells them apart).
        return (param, math.copysign(1.0, param))
    return param


def _merge_variables(op: str, args: tuple[Expr, ...], param: Any) -> tuple[str, ...]:
    if op == "var":
        return (param,)
    if not args:
        return ()
    first = args[0].variables
    if all(a.variables == first or not a.variables for a in args[1:]):
        return first  # share the tuple: big graphs keep one copy
    names = set()
    for a in args:
        names.update(a.variables)
    return tuple(sorted(names, key=natural_key))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _lift(value: Any) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        return const(value)
    raise TypeError(f"expected an expression or a real number, got {_describe(value)}")


def var(name: str) -> Expr:
    """A variable. ``name`` must be an identifier that is not an op name.

    Example:
        >>> var("x0")
        Expr('x0')
    """
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(f"variable name {name!r} is not an identifier (expected e.g. 'x0')")
    if name in OPS:
        raise ValueError(f"variable name {name!r} is an op name; choose another")
    return Expr("var", (), name)


def const(value: float) -> Expr:
    """A finite constant.

    Example:
        >>> const(2)
        Expr('2')
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"const() expects a real number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"const() expects a finite number, got {value!r}")
    return Expr("const", (), value)


def apply(op: str, *args: Expr, param: float | None = None) -> Expr:
    """Apply an op of the table.

    Example:
        >>> apply("pow", var("x"), param=2.5)
        Expr('x**2.5')
    """
    spec = OPS.get(op)
    if spec is None:
        raise ValueError(f"unknown op {op!r}; expected one of: {', '.join(OPS)}")
    if len(args) != spec.arity:
        raise TypeError(f"{op} takes {spec.arity} argument(s), got {len(args)}")
    for a in args:
        if not isinstance(a, Expr):
            raise TypeError(f"{op}: arguments must be expressions, got {_describe(a)}")
    if op == "pow":
        if param is None or not math.isfinite(param):
            raise ValueError(f"pow: the exponent must be a finite number, got {param!r}")
        param = float(param)
    elif param is not None:
        raise TypeError(f"{op} takes no parameter, got {param!r}")
    if op == "neg" and args[0].op == "const":
        # -(2) and -2 are one number: keeping a single form keeps printing exact.
        return const(-args[0].param)
    return Expr(op, tuple(args), param)


@dataclass(frozen=True)
class Program:
    """An expression flattened into straight-line form: what backends evaluate.

    Node ``i`` is ``ops[i]`` applied to the nodes ``args[i]`` (all ``< i``); its
    ``params[i]`` is the variable's index, the constant's value, pow's exponent or
    ``None``. The output is the last node. Programs are small, picklable plain data,
    which is how expressions cross into engine sandboxes.
    """

    variables: tuple[str, ...]
    ops: tuple[str, ...]
    args: tuple[tuple[int, ...], ...]
    params: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def output(self) -> int:
        return len(self.ops) - 1

    def users(self) -> list[int]:
        """How many argument slots read each node (x*x reads x twice)."""
        counts = [0] * len(self.ops)
        for args in self.args:
            for a in args:
                counts[a] += 1
        return counts

    def op_nodes(self) -> Iterator[int]:
        return (i for i, op in enumerate(self.ops) if op not in ("var", "const"))


@dataclass(frozen=True)
class Merged:
    """Several programs as one, side by side (no node shared between them): a
    batch of cases costs each backend's fixed overhead once, not once per case.

    Attributes:
        program: the nodes of every program in turn (variables renamed apart).
        outputs: each program's output node.
        starts: where each program's nodes begin (and, last, the end).
        variable_starts: where each program's variables begin in ``program.variables``.
    """

    program: Program
    outputs: tuple[int, ...]
    starts: tuple[int, ...]
    variable_starts: tuple[int, ...]


def merge(programs: Sequence[Program]) -> Merged:
    """``programs`` as one program with one output per program.

    Example:
        >>> m = merge([compile_program(var("x") * 2), compile_program(-var("y"))])
        >>> m.program.ops, m.outputs, m.program.variables
        (('var', 'const', 'mul', 'var', 'neg'), (2, 4), ('0:x', '1:y'))
    """
    return _merge(tuple(programs))


@functools.lru_cache(maxsize=16)  # a batch is merged for the sweep, torch and each try of differences
def _merge(programs: tuple[Program, ...]) -> Merged:
    ops: list[str] = []
    args: list[tuple[int, ...]] = []
    params: list[Any] = []
    variables: list[str] = []
    outputs, starts, variable_starts = [], [], []
    for b, program in enumerate(programs):
        base, vbase = len(ops), len(variables)
        starts.append(base)
        variable_starts.append(vbase)
        variables.extend(f"{b}:{name}" for name in program.variables)
        ops.extend(program.ops)
        args.extend(tuple(base + a for a in node_args) for node_args in program.args)
        params.extend(vbase + p if op == "var" else p for op, p in zip(program.ops, program.params))
        outputs.append(len(ops) - 1)
    starts.append(len(ops))
    variable_starts.append(len(variables))
    return Merged(Program(tuple(variables), tuple(ops), tuple(args), tuple(params)), tuple(outputs), tuple(starts),
                  tuple(variable_starts))


@dataclass(frozen=True, eq=False)
class Step:
    """Nodes that apply one op, with one parameter, to nodes computed before them."""

    op: str
    param: Any
    nodes: np.ndarray  # node indices, increasing
    args: tuple[np.ndarray, ...]  # per argument position, the node each of ``nodes`` reads


@dataclass(frozen=True, eq=False)
class Schedule:
    """A program's nodes grouped for vectorised evaluation, in rows of one array
    per quantity: the variables, the constants, then :class:`Step` after step.

    Numpy's cost is per call, and a batch of small programs side by side
    (:func:`merge`) has a few hundred nodes but only a few dozen distinct
    (depth, op, parameter): one call per step, not per node. A step holds the nodes
    of one depth (the longest path from a leaf), so its arguments are all done;
    steps are ordered by depth, then op and parameter, whatever else is in the
    batch: a program's numbers are the same alone and side by side, to the bit.
    """

    size: int  # the program's nodes
    variables: np.ndarray  # the var nodes
    columns: np.ndarray  # the variable each reads
    constants: np.ndarray  # the const nodes
    values: np.ndarray  # and their values
    steps: tuple[Step, ...]


def schedule(program: Program) -> Schedule:
    """The :class:`Schedule` of ``program`` (cached).

    Example:
        >>> s = schedule(merge([compile_program(var("x") * 2), compile_program(var("y") * 3)]).program)
        >>> [(step.op, step.nodes.tolist()) for step in s.steps]
        [('mul', [2, 5])]
    """
    return _schedule(program)


@functools.lru_cache(maxsize=16)
def _schedule(program: Program) -> Schedule:
    depth = [0] * len(program)
    groups: dict[tuple, list[int]] = {}
    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if args:
            depth[i] = 1 + max(depth[a] for a in args)
            groups.setdefault((depth[i], op, type(param).__name__, repr(param)), []).append(i)
    leaves = [(i, op, param) for i, (op, param) in enumerate(zip(program.ops, program.params)) if op in ("var", "const")]
    steps = []
    for key in sorted(groups):
        nodes = groups[key]
        steps.append(Step(key[1], program.params[nodes[0]], np.array(nodes, dtype=np.intp),
                          tuple(np.array([program.args[i][k] for i in nodes], dtype=np.intp) for k in range(len(program.args[nodes[0]])))))
    return Schedule(
        size=len(program),
        variables=np.array([i for i, op, _ in leaves if op == "var"], dtype=np.intp),
        columns=np.array([p for _, op, p in leaves if op == "var"], dtype=np.intp),
        constants=np.array([i for i, op, _ in leaves if op == "const"], dtype=np.intp),
        values=np.array([p for _, op, p in leaves if op == "const"], dtype=float),
        steps=tuple(steps),
    )


_PROGRAMS: weakref.WeakKeyDictionary[Expr, Program] = weakref.WeakKeyDictionary()


def compile_program(expr: Expr) -> Program:
    """Flatten ``expr`` (cached per expression).

    Example:
        >>> compile_program(var("x") * 2).ops
        ('var', 'const', 'mul')
    """
    cached = _PROGRAMS.get(expr)
    if cached is not None:
        return cached
    nodes = expr.nodes()
    variables = expr.variables
    var_index = {name: i for i, name in enumerate(variables)}
    index = {id(n): i for i, n in enumerate(nodes)}
    ops, args, params = [], [], []
    for node in nodes:
        ops.append(node.op)
        args.append(tuple(index[id(a)] for a in node.args))
        params.append(var_index[node.param] if node.op == "var" else node.param)
    program = Program(variables, tuple(ops), tuple(args), tuple(params))
    _PROGRAMS[expr] = program
    return program


def from_program(program: Program) -> Expr:
    """Rebuild the expression of a program."""
    built: list[Expr] = []
    for op, args, param in zip(program.ops, program.args, program.params):
        if op == "var":
            built.append(var(program.variables[param]))
        elif op == "const":
            built.append(const(param))
        else:
            built.append(apply(op, *(built[a] for a in args), param=param))
    return built[-1]

