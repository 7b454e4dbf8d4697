"""Number formats: what an engine's arithmetic can hold, and how finely it rounds.

The judge's noise model, its classifier and its thresholds take the engine's format:
a float32 engine is judged by what float32 allows (each rounding costs 2**-24, not
2**-53; results below 2**-126 may be flushed; past 3.4e38 nothing is representable),
and its inputs are the float32 numbers it actually holds (0.1 is 0.100000001490116...,
1e-248 is 0, 1e300 is inf: such points are not judged). A derivative off by 1e-4
relative is still an error in float32: the error threshold is in ulps of the format.

The format in force is a context (:func:`using`), set by a campaign for its engine.

Example:
    >>> FORMATS["float32"].unit_roundoff == 2.0**-24
    True
    >>> with using("float32"):
    ...     float(current().round(np.array([0.1]))[0])
    0.10000000149011612
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["NumberFormat", "FORMATS", "current", "using", "format_named", "declared_format", "set_format"]


@dataclass(frozen=True)
class NumberFormat:
    """One binary floating-point format, as an engine computes in it.

    Attributes:
        name: ``float64``, ``float32``, ``float16``, ``bfloat16``; ``float64-ftz`` and
            ``float32-ftz`` flush subnormal inputs and results to zero (XLA on CPU).
        unit_roundoff: half the spacing of numbers just above 1 (2**-53 for float64).
        smallest_normal, largest: the normal range.
        subnormal_spacing: the spacing of subnormals (what a subnormal keeps).
        flushes_subnormals: subnormal inputs become 0 before any op sees them.
        error_ulps: how many noise floors apart an answer is an error, not a
            precision warning (10 bits of float64's 53; 6 of float32's 24; 3 of 8).
        precision_only: relative errors below this are lost precision, not a wrong formula.
    """

    name: str
    unit_roundoff: float
    smallest_normal: float
    largest: float
    subnormal_spacing: float
    flushes_subnormals: bool = False
    error_ulps: float = 1024.0
    precision_only: float = 1e-5

    def round(self, x: np.ndarray) -> np.ndarray:
        """``x`` (float64) as this format holds it, widened back to float64."""
        x = np.asarray(x, dtype=float)
        if self.name == "float64":
            return x
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if self.name == "bfloat16":
                rounded = _round_bfloat16(x)
            else:
                rounded = x.astype(np.float16 if self.name == "float16" else np.float32).astype(float)
        if self.flushes_subnormals:
            rounded = np.where(np.abs(rounded) < self.smallest_normal, np.copysign(0.0, rounded), rounded)
        return rounded


def _round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (8 significant bits, float32's exponent), nearest-even."""
    single = x.astype(np.float32)
    bits = single.view(np.uint32).astype(np.uint64)
    finite = np.isfinite(single)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    rounded = np.where(finite, ((bits + rounding) >> 16) << 16, bits).astype(np.uint32)
    return rounded.view(np.float32).astype(float)


FORMATS: dict[str, NumberFormat] = {
    f.name: f for f in (
        NumberFormat("float64", 2.0**-53, 2.0**-1022, float(np.finfo(np.float64).max), 2.0**-1074),
        NumberFormat("float64-ftz", 2.0**-53, 2.0**-1022, float(np.finfo(np.float64).max), 2.0**-1022,
                     flushes_subnormals=True),
        NumberFormat("float32", 2.0**-24, 2.0**-126, float(np.finfo(np.float32).max), 2.0**-149,
                     error_ulps=64.0, precision_only=1e-4),
        NumberFormat("float32-ftz", 2.0**-24, 2.0**-126, float(np.finfo(np.float32).max), 2.0**-126,
                     flushes_subnormals=True, error_ulps=64.0, precision_only=1e-4),
        NumberFormat("float16", 2.0**-11, 2.0**-14, 65504.0, 2.0**-24, error_ulps=16.0, precision_only=1e-2),
        NumberFormat("bfloat16", 2.0**-8, 2.0**-126, float.fromhex("0x1.fep127"), 2.0**-133,
                     error_ulps=8.0, precision_only=1e-1),
    )
}
FLOAT64 = FORMATS["float64"]
_CURRENT: contextvars.ContextVar[NumberFormat] = contextvars.ContextVar("crossgrad_format", default=FLOAT64)


def format_named(name: str | NumberFormat) -> NumberFormat:
    """The format called ``name``; ValueError naming the known ones."""
    if isinstance(name, NumberFormat):
        return name
    if name not in FORMATS:
        raise ValueError(f"dtype {name!r} is not a number format crossgrad knows; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def current() -> NumberFormat:
    """The format the judge works in now (float64 unless :func:`using` says otherwise)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(name: str | NumberFormat) -> Iterator[NumberFormat]:
    """Judge in format ``name`` inside the ``with`` block."""
    token = _CURRENT.set(format_named(name))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def declared_format(engine: Any) -> str:
    """The format an engine says it computes in: an adapter's (``"torch:float32"``),
    a class's ``crossgrad_format`` attribute, else float64."""
    if isinstance(engine, str):
        try:
            from verifier.adapters import ADAPTERS
        except ImportError:
            return "float64"
        return ADAPTERS[engine][1] if engine in ADAPTERS else "float64"
    declared = getattr(engine, "crossgrad_format", None) if isinstance(engine, type) else None
    return declared if isinstance(declared, str) else "float64"


def set_format(name: str | NumberFormat) -> Any:
    """Set the format for the rest of this context (a worker process); returns a token."""
    return _CURRENT.set(format_named(name))
