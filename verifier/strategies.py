"""Hypothesis strategies for expressions and the points to evaluate them at.

Both are decoded from fixed-size byte strings drawn by Hypothesis: each byte is one
choice (which op, which earlier result to use, which number), and a zero byte is
always the simplest choice. Hypothesis shrinks the bytes towards zeros, so
expressions shrink towards one op on variables and numbers towards 0, 1 and other
simple values. One draw per expression (and one per batch of points) keeps
generation near 0.4 ms a case, where a draw per choice cost 2.5 ms: Hypothesis
spends about 20 microseconds on each draw, and campaigns judge hundreds of cases a
second.

Expressions are short straight-line programs read from the output down: each slot
applies an op to variables, (at most one) constant or results of later slots. Using
a result twice makes a shared node, so the graphs are DAGs with sharing.

Points mix simple values, ordinary ones (|x| < 4), large magnitudes (|x| up to
1024, where naive tanh, sigmoid and exp formulas overflow), tiny ones (down to
1e-300), exact copies of the previous coordinate (x0 - x1 == 0: kinks of relu
and edges of log, sqrt and division) and, one leaf in sixteen, every other
magnitude of float64: huge (1e10 to 1e300), subnormal, and the format's edges
(the largest float, the smallest normal, 5e-324). A bug that lives only there
shows within a few hundred cases of 8 points.

Example:
    >>> from hypothesis import given
    >>> @given(expressions(ops=("mul", "tanh"), max_leaves=4))
    ... def test_prints_and_parses(e):
    ...     from verifier.parsing import parse
    ...     assert parse(str(e)) is e
    >>> test_prints_and_parses()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from verifier.expr import Expr, apply, const, var
from verifier.formats import current as current_format
from verifier.ops import DEFAULT_OPS, OPS

__all__ = ["expressions", "scalars", "points", "cases", "case_batches", "Case", "EXPONENTS", "SIMPLE", "FORMAT_EDGES", "variable_names", "decode_scalar"]

# Integers, fractions, negatives: each exercises a different branch of pow.
EXPONENTS: tuple[float, ...] = (2.0, 3.0, 0.5, -1.0, 2.5, -2.0, 1.5, -0.5, 1.0 / 3.0, 0.0, 1.0, 4.0)
SIMPLE: tuple[float, ...] = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, 10.0, -3.0)
CONSTANTS: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, -1.0, 10.0, -2.0, 0.1, 1e-3, 100.0)
TINY_MANTISSAS: tuple[float, ...] = (1.0, -1.0, 1.5, -3.0, 2.5, -7.0)
HUGE_MANTISSAS: tuple[float, ...] = (1.0, 1.5, 3.0, 2.5, 7.0, 1.25)
# Where naive formulas overflow: exp in float32 (88.7), exp(2x) in tanh (354.9), exp
# in float64 (709.78: 709.5 is just inside, where a guard set too early shows), and
# where sigmoid's true value is subnormal (-709.8 to -744).
EDGES: tuple[float, ...] = (88.75, 89.5, 354.9, 355.5, 709.5, 709.8, 710.5, 720.0, 740.0)
# The edges of the number formats: the largest float64 and where x*x overflows, the
# smallest normal, the largest and smallest subnormal and where x*x underflows; then
# float32's largest and smallest normal (an engine in float32 is judged by its format).
FORMAT_EDGES: tuple[float, ...] = (
    1.7976931348623157e308, 1.3407807929942596e154, 2.2250738585072014e-308, 5e-324,
    2.225073858507201e-308, 1.4916681462400413e-154, 3.4028234663852886e38, 1.1754943508222875e-38,
)
SCALAR_BYTES = 4  # one class byte and three bytes of value per coordinate
_TINY_POWERS = np.array([10.0 ** -(4 + k) for k in range(297)])  # 1e-4 .. 1e-300
_HUGE_POWERS = np.array([10.0 ** (10 + k) for k in range(291)])  # 1e10 .. 1e300
_SUBNORMAL_POWERS = np.array([2.0 ** -(1023 + k) for k in range(51)])  # 1.1e-308 .. 8.9e-324
STEP_BYTES = 5  # bytes of one expression slot: op, two arguments, constant, exponent
_EXAMPLE_BYTES = 6000  # a batch's bytes at most (Hypothesis's buffer is 8 KB)


def _check(name: str, value: object, ok: bool, expected: str, hint: str = "") -> None:
    if not ok:
        raise ValueError(f"{name}={value!r}: expected {expected}" + (f" ({hint})" if hint else ""))


def variable_names(variables: int | Sequence[str]) -> tuple[str, ...]:
    """``3`` -> ``('x0', 'x1', 'x2')``; names are checked and kept in order."""
    if isinstance(variables, int) and not isinstance(variables, bool):
        _check("variables", variables, 1 <= variables <= 1000, "an int in [1, 1000] or a list of names")
        return tuple(f"x{i}" for i in range(variables))
    names = tuple(variables)
    _check("variables", variables, len(names) >= 1, "at least one variable name")
    for name in names:
        var(name)  # validates
    return names


def _ops(ops: Sequence[str] | None) -> tuple[str, ...]:
    chosen = DEFAULT_OPS if ops is None else tuple(ops)
    _check("ops", ops, len(chosen) > 0, "a non-empty sequence of op names", f"known: {', '.join(OPS)}")
    for name in chosen:
        _check("ops", ops, name in OPS, "op names from the table", f"{name!r} is unknown; known: {', '.join(OPS)}")
    return chosen


def _values(kind: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Coordinates from class bytes ``kind`` and 24-bit value numbers ``m`` (arrays
    of one shape), every class but the copy of the previous coordinate (band 5
    decodes as a large number here; the callers copy)."""
    sign = np.where(kind & 1, -1.0, 1.0)
    band = kind >> 5  # 8 bands of 32 values
    # Magnitudes grow with the two high value bytes and the low byte picks a simple
    # mantissa: shrinking the bytes shrinks towards 1e10, 1e-4 or 2**-1023.
    scale, low = m >> 8, m & 0xFF
    huge = np.asarray(HUGE_MANTISSAS)[low % len(HUGE_MANTISSAS)] * _HUGE_POWERS[scale * len(_HUGE_POWERS) >> 16]
    subnormal = (1.0 + low * 2.0**-8) * _SUBNORMAL_POWERS[scale * len(_SUBNORMAL_POWERS) >> 16]
    # Band 6: large (its lower half) or extreme (its upper half, 1/16 of all leaves).
    extreme = sign * np.select([kind & 8 == 0, kind & 4 == 0], [huge, subnormal], np.asarray(FORMAT_EDGES)[m % len(FORMAT_EDGES)])
    tiny = np.asarray(TINY_MANTISSAS)[low % len(TINY_MANTISSAS)] * _TINY_POWERS[scale * len(_TINY_POWERS) >> 16]
    last = np.where(kind & 2, sign * np.asarray(EDGES)[m % len(EDGES)], tiny)
    return np.select(
        [band <= 1, band <= 4, (band <= 5) | ((band == 6) & (kind & 16 == 0)), band == 6],
        [np.asarray(SIMPLE)[kind % len(SIMPLE)], sign * m * 2.0**-22, sign * m * 2.0**-14, extreme],
        last,
    )


def decode_scalar(chunk: bytes, previous: float | None = None) -> float:
    """One coordinate from :data:`SCALAR_BYTES` bytes.

    The class byte picks, from simplest up: a simple value (1/4 of the time), an
    ordinary one (|x| < 4, 3/8), a copy of the previous coordinate (1/8), a large
    one (|x| < 1024, 1/16, or 3/16 when there is nothing to copy), an extreme one
    (1/16: huge, 1e10 to 1e300, 1/32; subnormal, 1/64; an edge of float64 or
    float32 such as the largest float or 5e-324, :data:`FORMAT_EDGES`, 1/64), and
    then a tiny one (1e-4 down to 1e-300, 1/16) or one near where naive formulas
    overflow (:data:`EDGES`, 1/16). Smaller value bytes give simpler numbers (fewer
    significant bits, 1e10 and 1e-4 first).
    """
    kind = chunk[0] if chunk else 0
    m = int.from_bytes(chunk[1:SCALAR_BYTES].ljust(SCALAR_BYTES - 1, b"\0"), "big")
    if kind >> 5 == 5 and previous is not None:
        return previous
    return float(_values(np.array([kind]), np.array([m]))[0])


@st.composite
def scalars(draw: st.DrawFn) -> float:
    """Finite floats that matter for gradients (see :func:`decode_scalar`),
    shrinking towards simple values.

    Example:
        >>> from hypothesis import given
        >>> @given(scalars())
        ... def test_finite(x):
        ...     assert abs(x) <= 1.7976931348623157e308
        >>> test_finite()
    """
    return decode_scalar(draw(st.binary(min_size=SCALAR_BYTES, max_size=SCALAR_BYTES)))


def _decode_expression(data: bytes, chosen: tuple[str, ...], names: tuple[str, ...], max_ops: int, constants: bool) -> Expr:
    """Slot 0 is the output's op; each slot's arguments are variables, a constant or
    later slots. An op byte of zero makes a slot transparent (it passes its first
    argument on), so shrinking can drop any op the failure does not need, at any
    depth: ``tanh(x0) + x0`` and ``tanh(-x0)`` both shrink to ``tanh(x0)``. Every slot
    has fixed bytes (op, two arguments, constant, exponent), so shrinking one slot
    does not reinterpret another."""
    count = 1 + (data[0] if data else 0) % max_ops
    slots = [data[1 + k * STEP_BYTES: 1 + (k + 1) * STEP_BYTES].ljust(STEP_BYTES, b"\0") for k in range(count)]
    leaves: list[Expr] = [var(n) for n in names]
    built: dict[int, Expr] = {}
    used: list[Expr] = []  # arguments of the slots built so far, in order
    for k in range(count - 1, -1, -1):
        op_byte, first, second, constant, exponent = slots[k][:5]
        later = [built[j] for j in range(k + 1, count)]

        def argument(position: int, c: int, args: list[Expr], binary: bool) -> Expr:
            if constants and binary and c >= 224 and not any(a.op == "const" for a in args):
                # One time in eight a constant (at most one per op): 3 - x exercises __rsub__.
                return const(CONSTANTS[constant % len(CONSTANTS)])
            if position == 0 and c < 96:
                return later[0] if later else leaves[0]  # a chain: deeper graphs
            if (c < 128 if position else c < 160) and used:
                # Reuse something already used: a node with two users is where an
                # overwritten (= instead of +=) gradient shows.
                return used[c % len(used)]
            pool = leaves + later
            return pool[c % len(pool)]

        choice = op_byte % (len(chosen) + 1)
        if choice == 0:
            # A transparent slot (the simplest choice): shrinking zeroes the op bytes
            # of slots a failure does not need, which removes them from the graph.
            built[k] = argument(0, first, [], False)
            continue
        op = OPS[chosen[choice - 1]]
        args: list[Expr] = []
        for position, c in enumerate((first, second)[: op.arity]):
            args.append(argument(position, c, args, op.arity == 2))
        used.extend(a for a in args if a.op != "const")
        param = EXPONENTS[exponent % len(EXPONENTS)] if op.name == "pow" else None
        built[k] = apply(op.name, *args, param=param)
    if built[0].is_leaf:  # every slot transparent: still apply one op
        op = OPS[chosen[0]]
        return apply(op.name, *([built[0]] * op.arity), param=EXPONENTS[0] if op.name == "pow" else None)
    return built[0]


def expressions(
    *,
    ops: Sequence[str] | None = None,
    variables: int | Sequence[str] = 3,
    max_leaves: int = 8,
    constants: bool = True,
) -> st.SearchStrategy[Expr]:
    """Random expression DAGs over ``ops`` and ``variables``.

    Args:
        ops: op names to use (default: every op of the table).
        variables: how many variables (named x0, x1, ...) or their names.
        max_leaves: the most ops in the graph (so at most ``max_leaves + 1``
            leaves when it is written out as a tree of binary ops).
        constants: allow numeric constants as arguments (``3 - x`` exercises
            ``__rsub__``).
    """
    chosen = _ops(ops)
    names = variable_names(variables)
    _check("max_leaves", max_leaves, isinstance(max_leaves, int) and 1 <= max_leaves <= 64, "an int in [1, 64]")
    size = 1 + STEP_BYTES * max_leaves
    return st.binary(min_size=size, max_size=size).map(
        lambda data: _decode_expression(data, chosen, names, max_leaves, constants)
    )


def _decode_points(data: bytes, count: int, width: int) -> np.ndarray:
    """All coordinates at once (vectorised :func:`decode_scalar`)."""
    raw = np.frombuffer(data.ljust(count * width * SCALAR_BYTES, b"\0"), dtype=np.uint8)
    raw = raw[: count * width * SCALAR_BYTES].reshape(count, width, SCALAR_BYTES).astype(np.int64)
    kind = raw[..., 0]
    out = _values(kind, (raw[..., 1] << 16) | (raw[..., 2] << 8) | raw[..., 3])
    # Band 5 copies the previous coordinate of the point (large when there is none).
    for column in range(1, width):
        copy = kind[:, column] >> 5 == 5
        out[copy, column] = out[copy, column - 1]
    # The numbers the engine's format holds (0.1 in float32 is 0.10000000149...).
    return current_format().round(out)


def points(variables: int | Sequence[str], *, count: int = 1) -> st.SearchStrategy[np.ndarray]:
    """``count`` points as an array of shape (count, variables).

    Each coordinate has its own bytes, so shrinking one does not disturb another.
    """
    width = len(variable_names(variables))
    _check("count", count, isinstance(count, int) and 1 <= count <= 10_000, "an int in [1, 10000]")
    size = count * width * SCALAR_BYTES
    return st.binary(min_size=size, max_size=size).map(lambda data: _decode_points(data, count, width))


@dataclass(frozen=True)
class Case:
    """An expression and the points (over its own variables) to judge it at."""

    expr: Expr
    points: np.ndarray
    source: bytes = field(default=b"", compare=False)  # the bytes it was decoded from (to shrink it again)

    def __repr__(self) -> str:
        return f"Case({str(self.expr)!r}, points={self.points.tolist()!r})"


def cases(*, ops: Sequence[str] | None = None, variables: int | Sequence[str] = 3, max_leaves: int = 8, count: int = 8) -> st.SearchStrategy[Case]:
    """An expression with ``count`` points over the variables it uses.

    One byte string holds both, at fixed offsets: shrinking the expression does not
    move the points' bytes.
    """
    layout = _layout(ops, variables, max_leaves, count)
    return st.binary(min_size=layout.size, max_size=layout.size).map(lambda data: layout.decode([data])[0])


def case_batches(*, ops: Sequence[str] | None = None, variables: int | Sequence[str] = 3, max_leaves: int = 8, count: int = 8,
                 size: int = 8) -> st.SearchStrategy[list[Case]]:
    """Batches of distinct cases (as :func:`cases` draws them), decoded together:
    up to four chunks of ``size`` cases each. A campaign judges a batch at once, and
    Hypothesis shrinks a failing batch down to the case that fails.

    A chunk is one byte string holding ``size`` cases: drawn that way rather than
    as a list of cases, Hypothesis takes about half the time per case (0.076
    against 0.135 ms, measured). Shrinking zeroes the bytes of the cases a
    failure does not need; a zero case (the simplest) is left out of any batch
    that holds another one.
    """
    layout = _layout(ops, variables, max_leaves, count)
    _check("size", size, isinstance(size, int) and 1 <= size <= 100, "an int in [1, 100]")
    zero = bytes(layout.size)

    def split(chunks: list[bytes]) -> list[Case]:
        blobs = list(dict.fromkeys(chunk[k * layout.size:(k + 1) * layout.size] for chunk in chunks for k in range(size)))
        return layout.decode([blob for blob in blobs if blob != zero] or blobs)

    # Unique chunks: Hypothesis's mutator (which copies a part of an example over
    # another part drawn by the same strategy) cannot copy one over another, so a
    # batch does not judge the same cases twice. At most four, and a few KB: past
    # 8 KB an example overruns Hypothesis's buffer and is drawn again.
    chunk = st.binary(min_size=size * layout.size, max_size=size * layout.size)
    return st.lists(chunk, min_size=1, max_size=max(1, min(4, _EXAMPLE_BYTES // (size * layout.size))), unique=True).map(split)


@dataclass(frozen=True)
class _Layout:
    """Where an expression's and its points' bytes lie in a case's byte string."""

    ops: tuple[str, ...]
    names: tuple[str, ...]
    max_leaves: int
    count: int

    @property
    def head(self) -> int:
        return 1 + STEP_BYTES * self.max_leaves

    @property
    def size(self) -> int:
        return self.head + self.count * len(self.names) * SCALAR_BYTES

    def decode(self, blobs: Sequence[bytes]) -> list[Case]:
        """The cases of several byte strings (their points decoded in one go)."""
        head, width = self.head, len(self.names)
        grids = _decode_points(b"".join(blob[head:] for blob in blobs), self.count * len(blobs), width)
        grids = grids.reshape(len(blobs), self.count, width)
        out = []
        for blob, grid in zip(blobs, grids):
            expr = _decode_expression(blob[:head], self.ops, self.names, self.max_leaves, True)
            out.append(Case(expr, grid[:, [self.names.index(n) for n in expr.variables]], blob))
        return out


def _layout(ops: Sequence[str] | None, variables: int | Sequence[str], max_leaves: int, count: int) -> _Layout:
    chosen = _ops(ops)
    names = variable_names(variables)
    _check("max_leaves", max_leaves, isinstance(max_leaves, int) and 1 <= max_leaves <= 64, "an int in [1, 64]")
    _check("count", count, isinstance(count, int) and 1 <= count <= 10_000, "an int in [1, 10000]")
    return _Layout(tuple(chosen), tuple(names), max_leaves, count)
