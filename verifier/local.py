"""Exact local derivatives of each op, from SymPy.

SymPy differentiates each op once (per exponent, for pow): the first derivatives
are the reference's chain-rule factors, the second derivatives say how much an
input's rounding error moves a first derivative (part of the noise floor), and
limits from either side give the one-sided derivatives at kinks. The results are
compiled with ``lambdify`` for float64 numpy (vectorised over points) and for
mpmath (the high-precision reference).

Example:
    >>> rule = local_rule("tanh")
    >>> rule.formulas
    ('1 - tanh(a)**2',)
    >>> float(rule.mpmath(0.5)[0])  # doctest: +ELLIPSIS
    0.7864477329659...
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import mpmath
import numpy as np
import sympy

from verifier.ops import OPS

__all__ = ["LocalRule", "local_rule"]

_A, _B = sympy.symbols("a b", real=True)


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
        one_sided: for each kink location, the derivatives from the left and from
            the right, per argument.
    """

    op: str
    param: float | None
    formulas: tuple[str, ...]
    numpy: Callable[..., tuple[Any, ...]]
    mpmath: Callable[..., tuple[Any, ...]]
    one_sided: tuple[tuple[float, tuple[float, ...], tuple[float, ...]], ...]


def _no_delta(expr: sympy.Expr) -> sympy.Expr:
    # Heaviside' is a Dirac delta: zero everywhere except at the kink, which is
    # handled separately with one-sided derivatives.
    return expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


@functools.lru_cache(maxsize=4096)
def local_rule(op: str, param: float | None = None) -> LocalRule:
    """The SymPy-derived local derivatives of ``op`` (cached)."""
    spec = OPS[op]
    symbols = (_A, _B)[: spec.arity]
    f = spec.sympy(*symbols, param)
    first = [sympy.diff(f, s) for s in symbols]
    second = [_no_delta(sympy.diff(d, s)) for d in first for s in symbols]
    exprs = first + second
    numpy_fn = sympy.lambdify(symbols, exprs, modules="numpy")
    # One function per derivative: one infinite at this point (x**1.5's second
    # derivative at 0) must not take the others with it.
    mpmath_fns = [sympy.lambdify(symbols, expr, modules="mpmath") for expr in exprs]

    def mpmath_fn(*args: Any) -> tuple[Any, ...]:
        out = []
        for f in mpmath_fns:
            try:
                out.append(f(*args))
            except ZeroDivisionError:
                out.append(mpmath.inf)
        return tuple(out)

    def as_arrays(*args: Any) -> tuple[Any, ...]:
        shape = np.shape(args[0])
        with np.errstate(all="ignore"):
            results = numpy_fn(*args)
        # Constant derivatives (add's 1) come back as Python numbers: give them the
        # points' shape.
        return tuple(r if isinstance(r, np.ndarray) and r.shape == shape else np.full(shape, r, dtype=float) for r in results)

    one_sided = []
    for kink in spec.kinks:
        left = tuple(float(sympy.limit(d, _A, kink, "-")) for d in first)
        right = tuple(float(sympy.limit(d, _A, kink, "+")) for d in first)
        one_sided.append((kink, left, right))
    return LocalRule(
        op=op,
        param=param,
        formulas=tuple(str(d.subs({_A: sympy.Symbol("a"), _B: sympy.Symbol("b")})) for d in first),
        numpy=as_arrays,
        mpmath=mpmath_fn,
        one_sided=tuple(one_sided),
    )
