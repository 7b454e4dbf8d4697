"""The verifier cannot pass a broken engine, and does not fail a correct one.

Each mutant of tests/engines/base.py carries one realistic bug; `check_engine` with
its default settings must catch every one within 300 examples and blame the right
op (or the backward pass). Correct engines written in different ways (ours, the
published micrograd, torch behind the protocol, other valid formulas) must give no
error finding in 2000 examples each (5000 for ours and micrograd, CI's false-positive
runs): a fixed tight tolerance would flag the
alternative formulas, a loose one would miss the single-precision mutants.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines import corpus
from verifier.campaign import check_engine

ENGINES = Path(__file__).parent / "engines"


@pytest.mark.parametrize("mutant", corpus.MUTANTS, ids=lambda m: m.name)
def test_every_mutant_is_caught_and_blamed(mutant: corpus.Mutant, tmp_path: Path) -> None:
    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    result = check_engine(f"{path}:Value", examples=300, seed=0, timeout=5)
    pool = result.findings if mutant.severity == "error" else result.warnings
    caught = [f for f in pool if f.blame.op == mutant.blame and f.kind in mutant.kinds]
    shown = [(f.kind, f.blame.op, f.expression) for f in result.findings + result.warnings]
    assert caught, f"{mutant.name}: expected a {mutant.severity} blamed on {mutant.blame}, got {shown}"
    finding = caught[0]
    assert finding.expression and finding.message
    # Shrunk and polished: small, re-parsable, over x0, x1...
    assert len(finding.expression) <= 60, finding.expression
    assert all(v.startswith("x") for v in finding.variables)


CORRECT = {
    "engine.Value": "engine:Value",
    "micrograd": "micrograd.engine:Value",
    "torch": f"{ENGINES / 'torch_engine.py'}:Value",
    "base": f"{ENGINES / 'base.py'}:Value",
}
# The false-positive runs of CI: the built-in engine and the published micrograd get
# at least 5,000 examples each (issue 9), the other correct engines 2,000.
EXAMPLES = {"engine.Value": 5000, "micrograd": 5000}
DEFAULT_EXAMPLES = 2000


@pytest.mark.parametrize("name", [*CORRECT, "alternative formulas"])
def test_correct_engines_have_no_error_findings(name: str, tmp_path: Path) -> None:
    if name == "alternative formulas":
        target = f"{corpus.write_engine(tmp_path, 'alt', corpus.ALT_FORMULAS)}:Value"
    else:
        target = CORRECT[name]
    examples = EXAMPLES.get(name, DEFAULT_EXAMPLES)
    result = check_engine(target, examples=examples, seed=0)
    assert result.examples == examples
    errors = [(f.kind, f.blame.op, f.expression, f.point, f.message) for f in result.findings]
    assert not errors, f"{name}: false alarms {errors}"
    if name == "micrograd":
        # It lacks these: reported as missing, never generated.
        assert set(result.missing) == {"exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt"}
        assert set(result.ops) == {"add", "sub", "mul", "div", "neg", "pow", "relu"}
        # x**0.5 of a negative number is a silent complex in micrograd: a warning.
        assert all(w.cause == "domain" for w in result.warnings)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("mutant", corpus.MUTANTS, ids=lambda m: m.name)
def test_every_mutant_is_caught_whatever_the_seed(mutant: corpus.Mutant, seed: int, tmp_path: Path) -> None:
    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    result = check_engine(f"{path}:Value", examples=300, seed=seed, timeout=5)
    pool = result.findings if mutant.severity == "error" else result.warnings
    assert any(f.blame.op == mutant.blame for f in pool), [(f.kind, f.blame.op) for f in pool]


@pytest.mark.slow
@pytest.mark.parametrize("name", [*CORRECT, "alternative formulas"])
def test_correct_engines_stay_clean_for_20000_examples(name: str, tmp_path: Path) -> None:
    target = f"{corpus.write_engine(tmp_path, 'alt', corpus.ALT_FORMULAS)}:Value" if name == "alternative formulas" else CORRECT[name]
    result = check_engine(target, examples=20_000, seed=11, workers=2)
    assert not result.findings, [(f.kind, f.blame.op, f.expression, f.point, f.message) for f in result.findings]
