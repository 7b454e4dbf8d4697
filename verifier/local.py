"""Exact local derivatives of each op, from SymPy.

SymPy differentiates each op once (per exponent, for pow): the first derivatives
are the reference's chain-rule factors, the second derivatives say how much an
input's rounding error moves a first derivative (part of the noise floor). Kinks
are read off the formula itself: every ``Abs``, ``Max``, ``Min``, ``sign``,
``Heaviside`` and ``Piecewise`` condition has a function of the arguments whose
zero is a kink (relu's ``Max(0, a)``: ``a``; maximum's ``Max(a, b)``: ``a - b``),
and the formula with that function's sign fixed is the piece on one side, whose
derivatives are the one-sided ones. The results are compiled with ``lambdify``
(on SymPy trees, never on a user's text) for float64 numpy (vectorised over points)
and for mpmath (the high-precision reference).

Example:
    >>> rule = local_rule("tanh")
    >>> rule.formulas
    ('1 - tanh(a)**2',)
    >>> float(rule.mpmath(0.5)[0])  # doctest: +ELLIPSIS
    0.7864477329659...
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import mpmath
import numpy as np
import sympy

from verifier.ops import OPS

__all__ = ["LocalRule", "Kink", "local_rule", "one_sided", "kink_functions", "exactly"]

_A, _B = sympy.symbols("a b", real=True)
# numpy has no erf: the math module's, element by element (no SciPy needed).
NUMPY_MODULES = [{"erf": np.vectorize(math.erf, otypes=[float]), "erfc": np.vectorize(math.erfc, otypes=[float])}, "numpy"]


@dataclass(frozen=True)
class Kink:
    """Where an op's derivative jumps: the zero set of ``g(args)``.

    Attributes:
        text: ``g`` as text, in the op's argument names (``a - b`` for maximum).
        numpy, mpmath: ``g(*args)``; ``slopes_numpy``, ``slopes_mpmath``: its
            derivatives per argument (the arguments' noise moves ``g`` by them).
        point: arguments on the kink (``(0.0,)`` for relu, ``(0.75, 0.75)`` for
            maximum), where an engine's convention there is read; None if none was found.
    """

    text: str
    numpy: Callable[..., Any]
    mpmath: Callable[..., Any]
    slopes_numpy: Callable[..., tuple[Any, ...]]
    slopes_mpmath: Callable[..., tuple[Any, ...]]
    point: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LocalRule:
    """The local derivatives of one op (with its exponent fixed, for pow).

    Attributes:
        formulas: the first derivative with respect to each argument, as text.
        numpy: ``f(*args) -> (d_0, ..., dd_00, dd_01, ...)`` in float64, where
            ``d_j`` is the derivative with respect to argument ``j`` and ``dd_jk``
            the derivative of ``d_j`` with respect to argument ``k``.
        mpmath: ``f(*args) -> (d_0, ..., dd_...)`` in mpmath at the current precision
            (``inf`` for a derivative infinite there).
        kinks: where the derivative jumps (see :func:`one_sided` for either side).
        depends: for each derivative of ``numpy``/``mpmath``, the arguments it
            depends on (add's 1 depends on none).
    """

    op: str
    param: float | None
    formulas: tuple[str, ...]
    numpy: Callable[..., tuple[Any, ...]]
    mpmath: Callable[..., tuple[Any, ...]]
    kinks: tuple[Kink, ...] = ()
    depends: tuple[frozenset[int], ...] = ()


def _no_delta(expr: sympy.Expr) -> sympy.Expr:
    # Heaviside' is a Dirac delta: zero everywhere except at the kink, which is
    # handled separately with one-sided derivatives.
    return expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


def _simplified(expr: sympy.Expr) -> sympy.Expr:
    simpler = _no_delta(sympy.simplify(expr))
    return simpler if not simpler.has(sympy.Eq, sympy.DiracDelta) else expr


def _formula(op: str, param: float | None) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...]]:
    spec = OPS[op]
    symbols = (_A, _B)[: spec.arity]
    return spec.sympy(*symbols, param), symbols


MAX_DIGITS = 1600  # adaptive precision stops here: past it the quantity is unknown
ZERO_DIGITS = 400  # a 0 is believed only if it is still 0 at this many digits


def exactly(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (an mpmath formula) evaluated until more digits change nothing:
    at the working precision and at twice it, doubling until two agree to all but a
    few of the working precision's digits. A formula as SymPy writes it may cancel (gelu's
    ``1 + erf(x/sqrt(2))`` at x = -30 is 1e-197: 0 at 50 digits); if 1,600 digits
    do not settle it, the result is ``nan`` (unknown, so not judged).

    Example:
        >>> f = exactly(lambda x: (1 + x) - 1)
        >>> with mpmath.workdps(30):
        ...     float(f(mpmath.mpf("1e-60")))
        1e-60
    """

    def settled(*args: Any) -> Any:
        digits = wanted = mpmath.mp.dps
        previous = _at(function, args, digits)
        while digits < MAX_DIGITS:
            digits *= 2
            current = _at(function, args, digits)
            if current == previous == 0 and digits < ZERO_DIGITS:
                continue  # a total cancellation at both precisions may still be one: look deeper
            if current == previous or (mpmath.isfinite(current) and mpmath.isfinite(previous)
                                       and abs(current - previous) <= abs(current) * mpmath.mpf(10) ** (5 - wanted)):
                return +current  # rounded to the caller's precision
            previous = current
        return mpmath.nan

    return settled


def _at(function: Callable[..., Any], args: tuple[Any, ...], digits: int) -> Any:
    with mpmath.workdps(digits):
        try:
            return function(*args)
        except ZeroDivisionError:
            return mpmath.inf


def _mpmath_each(symbols: tuple[sympy.Symbol, ...], exprs: list[sympy.Expr], settle: bool = False) -> Callable[..., tuple[Any, ...]]:
    # One function per derivative: one infinite at this point (x**1.5's second
    # derivative at 0) must not take the others with it.
    functions = [sympy.lambdify(symbols, expr, modules="mpmath") for expr in exprs]
    if settle:
        functions = [exactly(f) for f in functions]

    def evaluate(*args: Any) -> tuple[Any, ...]:
        out = []
        for f in functions:
            try:
                out.append(f(*args))
            except ZeroDivisionError:
                out.append(mpmath.inf)
        return tuple(out)

    return evaluate


def _numpy_all(symbols: tuple[sympy.Symbol, ...], exprs: list[sympy.Expr]) -> Callable[..., tuple[Any, ...]]:
    function = sympy.lambdify(symbols, exprs, modules=NUMPY_MODULES)

    def as_arrays(*args: Any) -> tuple[Any, ...]:
        shape = np.shape(args[0])
        with np.errstate(all="ignore"):
            results = function(*args)
        # Constant derivatives (add's 1) come back as Python numbers: give them the
        # points' shape.
        return tuple(r if isinstance(r, np.ndarray) and r.shape == shape else np.full(shape, r, dtype=float) for r in results)

    return as_arrays


def _canonical(g: sympy.Expr) -> sympy.Expr:
    g = sympy.expand(g)
    return -g if g.could_extract_minus_sign() else g


def _switches(node: sympy.Basic) -> list[sympy.Expr]:
    """The functions of the arguments whose sign picks this node's branch."""
    if isinstance(node, (sympy.Abs, sympy.sign, sympy.Heaviside)):
        return [node.args[0]]
    if isinstance(node, (sympy.Max, sympy.Min)):
        if len(node.args) != 2:
            raise ValueError(f"{node}: Max and Min of more than two arguments are not supported; nest them")
        return [node.args[0] - node.args[1]]
    if isinstance(node, sympy.Piecewise):
        return [rel.lhs - rel.rhs for _, cond in node.args for rel in cond.atoms(sympy.core.relational.Relational)]
    return []


def kink_functions(f: sympy.Expr) -> tuple[sympy.Expr, ...]:
    """The functions whose zeros are ``f``'s kinks, one per kink set.

    Example:
        >>> a, b = sympy.symbols("a b", real=True)
        >>> kink_functions(sympy.Max(a, b))
        (a - b,)
    """
    found: list[sympy.Expr] = []
    for node in sympy.preorder_traversal(f):
        for g in _switches(node):
            g = _canonical(g)
            if g.free_symbols and g not in found:
                found.append(g)
    return tuple(found)


_SWITCHED = (sympy.Abs, sympy.sign, sympy.Heaviside, sympy.Max, sympy.Min, sympy.Piecewise)


def _resolve(f: sympy.Expr, sides: dict[sympy.Expr, int]) -> sympy.Expr:
    """``f`` on one side of its kinks: ``sides`` maps a kink function to the sign
    (+1, -1) it has there. Outer switches are resolved before their arguments
    change (clamp's ``Min(Max(x, -1), 1)`` switches on ``Max(x, -1) - 1``)."""

    def sign_of(u: sympy.Expr) -> int | None:
        c = _canonical(u)
        if c not in sides:
            return None
        return sides[c] if sympy.expand(u) == c else -sides[c]

    def branch(node: sympy.Basic) -> sympy.Basic:
        if isinstance(node, sympy.Piecewise):
            truth = {}
            for rel in node.atoms(sympy.core.relational.Relational):
                s = sign_of(rel.lhs - rel.rhs)
                if s is not None:
                    holds = {sympy.Gt: s > 0, sympy.Ge: s > 0, sympy.Lt: s < 0, sympy.Le: s < 0,
                             sympy.Eq: False, sympy.Ne: True}[type(rel)]
                    truth[rel] = sympy.true if holds else sympy.false
            return node.xreplace(truth)
        [u] = _switches(node)
        s = sign_of(u)
        if s is None:
            return node
        if isinstance(node, sympy.Abs):
            return s * node.args[0]
        if isinstance(node, sympy.sign):
            return sympy.Integer(s)
        if isinstance(node, sympy.Heaviside):
            return sympy.Integer(1 if s > 0 else 0)
        first, second = node.args
        return first if (s > 0) == isinstance(node, sympy.Max) else second

    def walk(node: sympy.Basic) -> sympy.Basic:
        if isinstance(node, _SWITCHED):
            resolved = branch(node)
            if resolved != node:
                return walk(resolved)
        if not node.args:
            return node
        return node.func(*(walk(a) for a in node.args))

    return walk(f)


@functools.lru_cache(maxsize=4096)
def one_sided(op: str, param: float | None, sides: tuple[int, ...]) -> Callable[..., tuple[Any, ...]]:
    """The first derivatives of ``op`` on one side of its kinks, in mpmath.

    ``sides`` has one entry per kink of :func:`local_rule`: +1 or -1 (the sign of
    that kink's function on the chosen side), 0 to leave it as it is.

    Example:
        >>> [float(d) for d in one_sided("relu", None, (-1,))(mpmath.mpf(0))]
        [0.0]
        >>> [float(d) for d in one_sided("relu", None, (1,))(mpmath.mpf(0))]
        [1.0]
    """
    f, symbols = _formula(op, param)
    f = _resolve(f, {g: side for g, side in zip(kink_functions(f), sides) if side})
    return _mpmath_each(symbols, [sympy.diff(f, s) for s in symbols], settle=bool(OPS[op].formula))


def _on_kink(g: sympy.Expr, symbols: tuple[sympy.Symbol, ...]) -> tuple[float, ...] | None:
    """Arguments where ``g`` is 0: the first argument scanned over a grid (the
    others fixed at 0.75) until ``g`` changes sign, then bisected."""
    others = {s: sympy.Rational(3, 4) for s in symbols[1:]}
    h = sympy.lambdify(symbols[0], g.subs(others), modules="mpmath")
    grid = [mpmath.mpf(k) / 4 for k in range(-40, 41)]
    for lo, hi in zip(grid, grid[1:]):
        if h(lo) == 0:
            return (float(lo), *(0.75 for _ in symbols[1:]))
        if h(lo) * h(hi) < 0:
            with mpmath.workdps(30):
                root = mpmath.findroot(h, (lo, hi), solver="bisect")
            return (float(root), *(0.75 for _ in symbols[1:]))
    return None


def _kink(g: sympy.Expr, symbols: tuple[sympy.Symbol, ...]) -> Kink:
    slopes = [_no_delta(sympy.diff(g, s)) for s in symbols]
    slopes_numpy = _numpy_all(symbols, slopes)
    return Kink(
        text=str(g.subs({_A: sympy.Symbol("a"), _B: sympy.Symbol("b")})), numpy=sympy.lambdify(symbols, g, modules=NUMPY_MODULES),
        mpmath=sympy.lambdify(symbols, g, modules="mpmath"),
        slopes_numpy=slopes_numpy, slopes_mpmath=_mpmath_each(symbols, slopes), point=_on_kink(g, symbols),
    )


@functools.lru_cache(maxsize=4096)
def local_rule(op: str, param: float | None = None) -> LocalRule:
    """The SymPy-derived local derivatives of ``op`` (cached)."""
    f, symbols = _formula(op, param)
    first = [sympy.diff(f, s) for s in symbols]
    second = [_no_delta(sympy.diff(d, s)) for d in first for s in symbols]
    if OPS[op].formula:
        # A defined op's second derivative as SymPy writes it may be a difference of
        # nearly equal terms (softplus'' = e/(e+1) - e**2/(e+1)**2) that mpmath at 50
        # digits cannot evaluate at a huge argument: simplified once, it is exact there.
        second = [_simplified(d) for d in second]
    exprs = first + second
    return LocalRule(
        op=op,
        param=param,
        formulas=tuple(str(d.subs({_A: sympy.Symbol("a"), _B: sympy.Symbol("b")})) for d in first),
        numpy=_numpy_all(symbols, exprs),
        # A defined op's formulas may cancel at 50 digits: their digits are settled.
        mpmath=_mpmath_each(symbols, exprs, settle=bool(OPS[op].formula)),
        kinks=tuple(_kink(g, symbols) for g in kink_functions(f)),
        depends=tuple(frozenset(k for k, s in enumerate(symbols) if s in d.free_symbols) for d in exprs),
    )
