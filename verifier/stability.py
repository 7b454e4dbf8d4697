"""Numerically unstable formulas: an op that is right at ordinary inputs but breaks
at extreme ones.

Karpathy's lecture tanh, ``(exp(2x) - 1) / (exp(2x) + 1)``, has the right
derivative, yet it returns 0 for ``x = 1e-295`` (``exp(2x) - 1`` cancels) and raises
OverflowError for ``x > 354.9`` (``exp(2x)`` overflows). Reporting that as a wrong
derivative would send a student looking for a bug that is not there; what they need
is where the formula breaks and a stable one to use instead. :func:`diagnose` runs
the op alone at ordinary inputs (all must pass) and across every magnitude float64
has, both signs, then narrows each edge of a failing range by bisection.

Example:
    >>> from engine import Value
    >>> from verifier.hosts import InProcess
    >>> diagnose(InProcess(Value), "tanh") is None  # math.tanh is stable
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from verifier.expr import apply, compile_program, var
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.formats import current as current_format
from verifier.judge import judge_point
from verifier.ops import OPS
from verifier.printing import format_number
from verifier.reference import exact, sweep

__all__ = ["Instability", "diagnose", "ORDINARY"]

# Inputs where any valid formula of any op is accurate (inside every domain, away
# from kinks, far from over- and underflow).
ORDINARY = (0.5, 0.75, 1.25, 2.0, 3.5)
OTHER = 1.5  # the other argument of a binary op while one is scanned
# Magnitudes from the smallest subnormal to the largest float (both signs are
# scanned), in increasing order.
MAGNITUDES = (5e-324, *(10.0**k for k in range(-320, 308, 6)), 1.7e308)
BISECTIONS = 24  # halvings of log|x| between a passing and a failing input


@dataclass(frozen=True)
class Instability:
    """Where an op that is right at ordinary inputs breaks.

    Attributes:
        op: the op.
        ranges: each failing range as text, with what fails there
            (``"x >= 354.9: raised OverflowError"``).
        hint: a stable formula for the op (from the op table).
    """

    op: str
    ranges: tuple[str, ...]
    hint: str

    @property
    def message(self) -> str:
        """One sentence for a finding."""
        where = "; ".join(self.ranges)
        text = f"numerically unstable formula: {self.op} is right at ordinary inputs but breaks for {where}"
        return text + (f". A stable formula: {self.hint}" if self.hint else "")


def _failures(host: Any, op: str, param: float | None, scanned: int, values: Sequence[float]) -> list[str]:
    """For each input, "" where the op alone passes, else what fails."""
    arity = OPS[op].arity
    program = compile_program(apply(op, *(var(n) for n in "xy"[:arity]), param=param))
    points = np.full((len(values), arity), OTHER)
    points[:, scanned] = values
    points = current_format().round(points)  # what the engine's format holds of them
    try:
        outcomes = host.run(program, points)
    except (EngineCrash, EngineTimeout) as error:
        return [f"{type(error).__name__}: {error}"] * len(values)
    ref = sweep(program, points)
    out = []
    for p, outcome in enumerate(outcomes):
        truth = exact(program, points[p], classify=not ref.clean[p])
        errors = [v for v in judge_point(truth, outcome, program.variables) if v.severity == "error"]
        out.append(_what(errors[0], outcome) if errors else "")
    return out


def _what(verdict: Any, outcome: Any) -> str:
    if verdict.kind == "exception":
        return f"raised {outcome.error.split(':')[0]}"
    return {"value": "wrong value", "gradient": "wrong derivative"}.get(verdict.kind, verdict.kind)


def _edge(host: Any, op: str, param: float | None, scanned: int, good: float, bad: float) -> float:
    """Bisect (in log scale, same sign) between a passing and a failing input."""
    for _ in range(BISECTIONS):
        # The geometric mean as a product of roots: 1e-300 * 1e-310 underflows to 0.
        middle = math.copysign(math.sqrt(abs(good)) * math.sqrt(abs(bad)), bad)
        if middle in (good, bad):
            break
        if _failures(host, op, param, scanned, [middle])[0]:
            bad = middle
        else:
            good = middle
    return bad


def diagnose(host: Any, op: str, param: float | None = None) -> Instability | None:
    """The ranges where ``op`` alone fails although it passes at ordinary inputs,
    or None (it fails at ordinary inputs too: a wrong rule; or it never fails).

    Args:
        host: where the engine runs (:mod:`verifier.hosts`).
        op: the op's name in the op table; ``param`` its exponent for pow.
    """
    spec = OPS[op]
    ranges: list[str] = []
    for scanned in range(spec.arity):
        if any(_failures(host, op, param, scanned, ORDINARY)):
            return None
        runs = _runs(host, op, param, scanned)
        ranges += [f"{_span('xy'[scanned], low, high)}: {what}" for low, high, what in _mirrored(runs)]
    if not ranges:
        return None
    return Instability(op, tuple(ranges), spec.stable)


def _runs(host: Any, op: str, param: float | None, scanned: int) -> list[tuple[float, float, str]]:
    """The failing runs of inputs across :data:`MAGNITUDES` (each sign on its own),
    their ends narrowed by bisection."""
    grid = sorted([-m for m in MAGNITUDES] + list(MAGNITUDES))
    fails = _failures(host, op, param, scanned, grid)
    runs, i = [], 0
    while i < len(grid):
        if not fails[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(grid) and fails[j + 1] and _same_sign(grid[j + 1], grid[i]):
            j += 1
        low, high = grid[i], grid[j]
        if i > 0 and _same_sign(grid[i - 1], low):
            low = _edge(host, op, param, scanned, grid[i - 1], low)
        if j + 1 < len(grid) and _same_sign(grid[j + 1], high):
            high = _edge(host, op, param, scanned, grid[j + 1], high)
        runs.append((low, high, fails[i]))
        i = j + 1
    return runs


def _same_sign(a: float, b: float) -> bool:
    return (a > 0) == (b > 0)  # not a * b > 0: 1e-296 * 1e-302 underflows to 0


def _mirrored(runs: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Joins a run just below 0 and its mirror image just above (|x| <= 1e-8)."""
    out: list[tuple[float, float, str]] = []
    for run in runs:
        if out and out[-1][1] == -MAGNITUDES[0] and run[0] == MAGNITUDES[0] and out[-1][2] == run[2]:
            out[-1] = (out[-1][0], run[1], run[2])
        else:
            out.append(run)
    return out


def _span(name: str, low: float, high: float) -> str:
    def show(x: float) -> str:
        return format_number(float(f"{x:.4g}"))
    if low < 0 < high and show(-low) == show(high):
        return f"|{name}| <= {show(high)}"
    if high >= MAGNITUDES[-1]:
        return f"{name} >= {show(low)}"
    if low <= -MAGNITUDES[-1]:
        return f"{name} <= {show(high)}"
    return f"{show(low)} <= {name} <= {show(high)}"
