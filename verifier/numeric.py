"""Central differences with Richardson extrapolation, and an error estimate.

A symmetric difference cancels the even terms of the Taylor series, so its error
falls like h**2 where a one-sided difference's falls like h; Richardson's
combination of steps h and h/2 cancels the h**2 term too. The step is chosen per
point and variable (about 1e-3 of |x|, at most about 1e-3; a power of two so that
x + h is exact where it can be), and shrunk where the function is undefined at
x +- h. Steps h, h/2 and h/4 give two Richardson estimates; the error estimate is
their difference plus the rounding the forward noise floor allows (6 floors / h),
so it brackets the true error wherever the function is smooth on [x - h, x + h].
If the three differences do not shrink like h**2 (the step is too coarse for a
fast-oscillating function), the step is cut by 8, up to six times; past that the
estimate is infinite: finite differences cannot tell.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> result = central_differences(compile_program(parse("sin(x)")), [[1.0]])
    >>> bool(abs(result.gradient[0, 0] - 0.5403023058681398) < result.estimate[0, 0])
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from verifier.expr import Program
from verifier.ops import OPS
from verifier.reference import sweep

__all__ = ["NumericResult", "central_differences", "forward_values", "step_sweep"]

RETRIES = 6  # each retry divides the step by 8


@dataclass(frozen=True)
class NumericResult:
    """Gradients, error estimates and steps, each of shape (points, variables)."""

    gradient: np.ndarray
    estimate: np.ndarray
    step: np.ndarray


def forward_values(program: Program, points: np.ndarray) -> np.ndarray:
    """The program's value at every row of ``points``, in float64 (nan if undefined)."""
    count = points.shape[0]
    values: list[np.ndarray] = []
    with np.errstate(all="ignore"):
        for op, args, param in zip(program.ops, program.args, program.params):
            if op == "var":
                values.append(points[:, param])
            elif op == "const":
                values.append(np.full(count, param))
            else:
                values.append(np.asarray(OPS[op].numpy(*(values[j] for j in args), param), dtype=float))
    return values[-1]


def _initial_step(x: np.ndarray) -> np.ndarray:
    # About 1e-3 of |x| for small |x| (so that x - h keeps the sign of x: log(1e-200)),
    # about 1e-3 absolute for large |x| (curvature does not grow with |x|: sin(1000)).
    scale = np.where(x == 0, 1.0, np.minimum(np.abs(x), 1.0))
    return 2.0 ** (np.floor(np.log2(scale)) - 10)


def _differences(program: Program, points: np.ndarray, h: np.ndarray) -> list[np.ndarray]:
    """Central differences D(h), D(h/2), D(h/4) for every (point, variable), in one
    batched evaluation."""
    count, nvars = points.shape
    fractions = (1.0, 0.5, 0.25)
    rows = []
    for fraction in fractions:
        for sign in (1.0, -1.0):
            for k in range(nvars):
                shifted = points.copy()
                shifted[:, k] = points[:, k] + sign * fraction * h[:, k]
                rows.append(shifted)
    f = forward_values(program, np.concatenate(rows)).reshape(len(fractions), 2, nvars, count)
    out = []
    for level, fraction in enumerate(fractions):
        # Divide by the step actually taken, after rounding x +- h.
        with np.errstate(all="ignore"):  # an input a narrow format holds as inf: inf - inf
            width = np.stack([(points[:, k] + fraction * h[:, k]) - (points[:, k] - fraction * h[:, k]) for k in range(nvars)])
            out.append(((f[level, 0] - f[level, 1]) / width).T)
    return out


def central_differences(program: Program, points: Sequence[Sequence[float]], value_floor: np.ndarray | None = None) -> NumericResult:
    """Richardson-extrapolated central differences at each point.

    Args:
        value_floor: the float64 noise floor of the value at each point (from
            :func:`verifier.reference.sweep`); computed if not given.
    """
    points = np.asarray(points, dtype=float).reshape(-1, len(program.variables))
    if value_floor is None:
        value_floor = sweep(program, points).value_floor
    h = _initial_step(points)
    gradient = np.full(points.shape, np.nan)
    estimate = np.full(points.shape, np.inf)
    taken = h.copy()
    todo = np.ones(points.shape, dtype=bool)
    for attempt in range(RETRIES + 1):
        d1, d2, d3 = _differences(program, points, h)
        with np.errstate(all="ignore"):
            # Two Richardson steps; their difference bounds the error of the finer.
            r1 = (4.0 * d2 - d1) / 3.0
            r2 = (4.0 * d3 - d2) / 3.0
            rounding = 6.0 * np.abs(value_floor)[:, None] / h
            guess = np.abs(r2 - r1) + rounding
            # In the asymptotic range the error of D(h) falls 4-fold per halving; if it
            # does not, the step is too large for this function (sin(exp(x**3))).
            coarse, fine = np.abs(d1 - d2), np.abs(d2 - d3)
            settled = np.abs(coarse - 4.0 * fine) <= 2.0 * fine + 4.0 * rounding
        last = attempt == RETRIES
        ok = todo & np.isfinite(r2) & np.isfinite(guess) & (settled | last)
        gradient[ok], taken[ok] = r2[ok], h[ok]
        estimate[ok] = np.where(settled[ok], guess[ok], np.inf)
        todo &= ~ok
        if not todo.any():
            break
        h = np.where(todo, h / 8.0, h)
    return NumericResult(gradient=gradient, estimate=estimate, step=taken)


def step_sweep(program: Program, point: Sequence[float], variable: int, steps: Sequence[float] | None = None) -> list[tuple[float, float, float]]:
    """Forward and central differences of one partial over a range of steps.

    Returns ``(h, forward, central)`` triples, for the error-versus-step plot that
    shows truncation error falling and rounding error rising as h shrinks.
    """
    if steps is None:
        steps = [10.0**-e for e in np.arange(1, 13.5, 0.5)]
    base = np.asarray(point, dtype=float)
    rows = [base]
    for h in steps:
        for sign in (1.0, -1.0):
            shifted = base.copy()
            shifted[variable] += sign * h
            rows.append(shifted)
    f = forward_values(program, np.stack(rows))
    out = []
    for i, h in enumerate(steps):
        plus, minus = f[1 + 2 * i], f[2 + 2 * i]
        with np.errstate(all="ignore"):  # near the largest float a difference overflows: nan below
            forward = (plus - f[0]) / h
            central = (plus - minus) / (2 * h)
        out.append((float(h), float(forward) if math.isfinite(forward) else math.nan, float(central) if math.isfinite(central) else math.nan))
    return out
