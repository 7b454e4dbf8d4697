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

from verifier.expr import Program, Schedule, merge, schedule
from verifier.ops import OPS
from verifier.reference import sweep

__all__ = ["NumericResult", "central_differences", "central_differences_many", "forward_values", "forward_values_many", "evaluate_schedule", "step_sweep"]

RETRIES = 6  # each retry divides the step by 8


@dataclass(frozen=True)
class NumericResult:
    """Gradients, error estimates and steps, each of shape (points, variables)."""

    gradient: np.ndarray
    estimate: np.ndarray
    step: np.ndarray


def forward_values(program: Program, points: np.ndarray) -> np.ndarray:
    """The program's value at every row of ``points``, in float64 (nan if undefined)."""
    return forward_values_many([program], [points])[0]


def forward_values_many(programs: Sequence[Program], points: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`forward_values` of each program at its own rows, in one pass over the
    programs side by side (each padded to the most rows by repeating its first),
    one numpy call per step of their :func:`verifier.expr.schedule`."""
    merged = merge(programs)
    plan = schedule(merged.program)
    rows = max(p.shape[0] for p in points)
    columns = np.concatenate([np.concatenate([p, np.repeat(p[:1], rows - p.shape[0], axis=0)]) if p.shape[0] < rows else p
                              for p in points], axis=1)
    values = evaluate_schedule(plan, columns)
    return [values[o, : p.shape[0]] for o, p in zip(merged.outputs, points)]


def evaluate_schedule(plan: Schedule, columns: np.ndarray) -> np.ndarray:
    """Every node's float64 value (one row per node) at the rows of ``columns`` (one
    column per variable)."""
    values = np.empty((plan.size, columns.shape[0]))
    values[plan.variables] = columns[:, plan.columns].T
    values[plan.constants] = plan.values[:, None]
    with np.errstate(all="ignore"):
        for step in plan.steps:
            values[step.nodes] = OPS[step.op].numpy(*(values[a] for a in step.args), step.param)
    return values


def _initial_step(x: np.ndarray) -> np.ndarray:
    # About 1e-3 of |x| for small |x| (so that x - h keeps the sign of x: log(1e-200)),
    # about 1e-3 absolute for large |x| (curvature does not grow with |x|: sin(1000)).
    scale = np.where(x == 0, 1.0, np.minimum(np.abs(x), 1.0))
    return 2.0 ** (np.floor(np.log2(scale)) - 10)


_FRACTIONS = (1.0, 0.5, 0.25)


def central_differences(program: Program, points: Sequence[Sequence[float]], value_floor: np.ndarray | None = None) -> NumericResult:
    """Richardson-extrapolated central differences at each point.

    Args:
        value_floor: the float64 noise floor of the value at each point (from
            :func:`verifier.reference.sweep`); computed if not given.
    """
    points = np.asarray(points, dtype=float).reshape(-1, len(program.variables))
    if value_floor is None:
        value_floor = sweep(program, points).value_floor
    return central_differences_many([program], [points], [value_floor])[0]


def central_differences_many(programs: Sequence[Program], points: Sequence[np.ndarray], value_floors: Sequence[np.ndarray]) -> list[NumericResult]:
    """:func:`central_differences` of each program at its own points (with its
    value floors). Every (point, variable) of every program is one entry of flat
    arrays, and each try evaluates the programs still unsettled side by side."""
    grids = [np.asarray(p, dtype=float).reshape(-1, len(program.variables)) for program, p in zip(programs, points)]
    if not grids:
        return []
    # Entry i is point p of its program with variable k moved, row-major in each program.
    width, size = np.array([g.shape[1] for g in grids]), np.array([g.size for g in grids])
    bounds = np.concatenate([[0], np.cumsum(size)])
    owner = np.repeat(np.arange(len(grids)), size)
    position = np.arange(bounds[-1]) - bounds[owner]
    x = np.concatenate([g.ravel() for g in grids])
    first_point = np.concatenate([[0], np.cumsum([g.shape[0] for g in grids])])
    floor = np.concatenate([np.asarray(f, dtype=float).ravel() for f in value_floors] or [np.zeros(0)])
    floor = floor[first_point[owner] + position // width[owner]] if x.size else x
    h = _initial_step(x)
    gradient, estimate, taken = np.full(x.shape, np.nan), np.full(x.shape, np.inf), h.copy()
    todo = np.ones(x.shape, dtype=bool)
    for attempt in range(RETRIES + 1):
        busy = np.flatnonzero(np.bincount(owner[todo], minlength=len(grids)))
        if not busy.size:
            break
        # Every entry's moved coordinate, for each (fraction, sign) in turn.
        moved = np.stack([x + sign * fraction * h for fraction in _FRACTIONS for sign in (1.0, -1.0)])
        merged = merge([programs[b] for b in busy])
        values = evaluate_schedule(schedule(merged.program), _moved_points(busy, width, size, bounds, x, moved))
        # Entry i's differences: rows (2 * level) * n + i and (2 * level + 1) * n of
        # its program's output, n being the program's number of entries.
        which = np.full(len(grids), -1)
        which[busy] = np.arange(busy.size)
        mine = np.flatnonzero(which[owner] >= 0)
        output = np.asarray(merged.outputs)[which[owner[mine]]]
        n = size[owner[mine]]
        d = np.full((len(_FRACTIONS), x.size), np.nan)
        with np.errstate(all="ignore"):
            for level in range(len(_FRACTIONS)):
                plus = values[output, 2 * level * n + position[mine]]
                d[level, mine] = plus - values[output, (2 * level + 1) * n + position[mine]]
            # Divide by the step actually taken, after rounding x +- h (an input a
            # narrow format holds as inf: inf - inf).
            d1, d2, d3 = (d[level] / ((x + fraction * h) - (x - fraction * h)) for level, fraction in enumerate(_FRACTIONS))
            # Two Richardson steps; their difference bounds the error of the finer.
            r1 = (4.0 * d2 - d1) / 3.0
            r2 = (4.0 * d3 - d2) / 3.0
            rounding = 6.0 * np.abs(floor) / h
            guess = np.abs(r2 - r1) + rounding
            # In the asymptotic range the error of D(h) falls 4-fold per halving; if it
            # does not, the step is too large for this function (sin(exp(x**3))).
            coarse, fine = np.abs(d1 - d2), np.abs(d2 - d3)
            settled = np.abs(coarse - 4.0 * fine) <= 2.0 * fine + 4.0 * rounding
        ok = todo & np.isfinite(r2) & np.isfinite(guess) & (settled | (attempt == RETRIES))
        gradient[ok], taken[ok] = r2[ok], h[ok]
        estimate[ok] = np.where(settled[ok], guess[ok], np.inf)
        todo &= ~ok
        h = np.where(todo, h / 8.0, h)
    return [NumericResult(gradient=gradient[bounds[b]:bounds[b + 1]].reshape(g.shape),
                          estimate=estimate[bounds[b]:bounds[b + 1]].reshape(g.shape),
                          step=taken[bounds[b]:bounds[b + 1]].reshape(g.shape)) for b, g in enumerate(grids)]


def _moved_points(busy: np.ndarray, width: np.ndarray, size: np.ndarray, bounds: np.ndarray, x: np.ndarray,
                  moved: np.ndarray) -> np.ndarray:
    """The points to evaluate the ``busy`` programs at, side by side (one column per
    variable of each): row ``f * n + i`` of a program with ``n`` entries is its entry
    ``i``'s point with the entry's variable moved to ``moved[f]``; the rows past
    ``6 * n`` repeat its first."""
    column_owner = np.repeat(busy, width[busy])
    variable = np.arange(column_owner.size) - np.repeat(np.cumsum(width[busy]) - width[busy], width[busy])
    n, w, base = size[column_owner], width[column_owner], bounds[column_owner]
    rows = np.arange(len(moved) * n.max())[:, None]
    row = np.where(rows < len(moved) * n, rows, 0)
    f, entry = row // n, row % n
    return np.where(entry % w == variable, moved[f, base + entry], x[base + (entry // w) * w + variable])


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
