"""Mutants of ``engine/value.py`` in the ops of the library (issue: ops from a formula).

Each is one plausible mistake in a defined op, written as a text patch of the
built-in engine (so that every op's result is the mutant's own class): a wrong
gelu derivative, leaky_relu's slope wrong on one side, a softplus that overflows for
large x, a maximum whose gradient goes to both sides at a tie, a clamp that passes
the gradient outside its bounds, and a method name with a typo.

Example::

    from tests.engines import library
    path = library.write(tmp_path, library.BY_NAME["gelu_grad_without_x_pdf"])
    # verifier check --engine {path}:Value --ops +gelu  -> a gradient finding on gelu
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LibraryMutant", "MUTANTS", "BY_NAME", "ENGINE_PATH", "write"]

ENGINE_PATH = Path(__file__).resolve().parents[2] / "engine" / "value.py"


@dataclass(frozen=True)
class LibraryMutant:
    """One wrong op: ``old`` replaced by ``new`` in engine/value.py; ``op`` is the
    op to ask for (``--ops +op``) and to blame; ``kinds`` the finding kinds it may give."""

    name: str
    op: str
    old: str
    new: str
    kinds: frozenset[str]


MUTANTS = (
    LibraryMutant("gelu_grad_without_x_pdf", "gelu",
                  "return cdf + (x * pdf if pdf else 0.0)", "return cdf", frozenset({"gradient"})),
    LibraryMutant("leaky_relu_slope_wrong_below_zero", "leaky_relu",
                  'lambda: 1.0 if x > 0 else 0.01)', 'lambda: 1.0 if x > 0 else 0.1)', frozenset({"gradient"})),
    LibraryMutant("softplus_overflows", "softplus",
                  "data = (x if x > 0 else 0.0) + math.log1p(math.exp(-abs(x)))", "data = math.log(1 + math.exp(x))",
                  frozenset({"exception", "value"})),
    LibraryMutant("maximum_tie_feeds_both_sides", "maximum",
                  "self.grad += (0.5 if tie else", "self.grad += (1.0 if tie else", frozenset({"gradient"})),
    LibraryMutant("clamp_passes_gradient_outside", "clamp",
                  'lambda: 1.0 if lo <= x <= hi else 0.0)', 'lambda: 1.0)', frozenset({"gradient"})),
    LibraryMutant("softplus_method_typo", "softplus",
                  "def softplus(self) -> Value:", "def softpuls(self) -> Value:", frozenset({"exception"})),
)
BY_NAME = {m.name: m for m in MUTANTS}


def write(directory: Path, mutant: LibraryMutant) -> Path:
    """The mutant engine as ``directory/<name>.py`` (a standalone copy of engine/value.py)."""
    text = ENGINE_PATH.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        raise ValueError(f"{mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} times in {ENGINE_PATH}, expected once")
    path = Path(directory) / f"{mutant.name}.py"
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return path
