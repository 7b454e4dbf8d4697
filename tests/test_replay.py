"""`replay` re-judges findings of every severity, kind and backend: "still fails"
whenever the re-judged point is not clean for that finding, "fixed" only when it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.engines import corpus
from verifier import replay, torch_oracle
from verifier.replay import load_findings, replay_finding

ENGINES = Path(__file__).parent / "engines"
BASE = f"{corpus.BASE_PATH}:Value"
# tanh' off by 1e-14 relative: tens of noise floors, a precision warning, not an error.
TANH_GRAD_SLIGHTLY_OFF = [("(1 - t**2) * out.grad", "(1 - t**2) * (1 + 1e-14) * out.grad")]


def finding(id: str, kind: str, expression: str, point: dict[str, float], op: str | None,
            severity: str = "error", cause: str = "engine", backend: str = "engine") -> dict[str, Any]:
    """A finding as the JSON report holds it (the fields replay reads)."""
    return {"id": id, "kind": kind, "severity": severity, "cause": cause, "expression": expression,
            "point": point, "blame": {"backend": backend, "op": op}}


def engine(tmp_path: Path, name: str, patches: Any) -> str:
    return f"{corpus.write_engine(tmp_path, name, list(patches))}:Value"


def test_a_domain_warning_still_fails_on_the_same_engine_and_is_fixed_on_a_correct_one() -> None:
    # micrograd's x**0.5 of a negative number is a silent complex number.
    warning = finding("W1", "value", "x0**0.5", {"x0": -2.0}, "pow", severity="warning", cause="domain")
    still, text = replay_finding("micrograd.engine:Value", warning)
    assert still and text.startswith("still fails: W1 warning value · pow"), text
    assert "complex" in text
    fixed, text = replay_finding("engine:Value", warning)
    assert not fixed and text.startswith("fixed:"), text


def test_a_precision_warning_still_fails(tmp_path: Path) -> None:
    warning = finding("W2", "gradient", "tanh(x0)", {"x0": 0.5}, "tanh", severity="warning", cause="precision")
    still, text = replay_finding(engine(tmp_path, "tanh_slightly_off", TANH_GRAD_SLIGHTLY_OFF), warning)
    assert still and "warning (gradient)" in text, text
    assert not replay_finding(BASE, warning)[0]


def test_an_error_finding_is_fixed_on_a_fixed_engine_and_still_fails_on_the_same(tmp_path: Path) -> None:
    mutant = corpus.MUTANTS_BY_NAME["sin_grad_negated"]
    error = finding("E1", "gradient", "sin(x0) * x1", {"x0": 0.4, "x1": 2.0}, "sin")
    still, text = replay_finding(engine(tmp_path, mutant.name, mutant.patches), error)
    assert still and "error (gradient)" in text and "d/dx0" in text, text
    fixed, text = replay_finding(BASE, error)
    assert not fixed and text.startswith("fixed: E1 gradient · sin: sin(x0) * x1 at x0=0.4, x1=2"), text


def test_an_exception_finding_still_fails(tmp_path: Path) -> None:
    mutant = corpus.MUTANTS_BY_NAME["log_grad_divides_by_output"]  # 1 / log(1)
    error = finding("E2", "exception", "log(x0)", {"x0": 1.0}, "log")
    still, text = replay_finding(engine(tmp_path, mutant.name, mutant.patches), error)
    assert still and "ZeroDivisionError" in text, text


def test_a_timeout_finding_still_fails() -> None:
    hang = finding("T1", "timeout", "sqrt(x0)", {"x0": 2.0}, "sqrt")
    still, text = replay_finding(f"{ENGINES / 'hostile_hang.py'}:Value", hang, timeout=1.0)
    assert still and "timeout" in text, text


def test_an_oracle_finding_is_rejudged_against_its_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    oracle = finding("O1", "gradient", "tanh(x0)", {"x0": 0.5}, None, severity="warning", cause="oracle", backend="torch")
    fixed, text = replay_finding("engine:Value", oracle)  # torch float64 is right here
    assert not fixed and text.startswith("fixed: O1 warning gradient · torch") and "torch now agrees" in text, text
    real = torch_oracle.evaluate

    def off(program: Any, points: Any) -> torch_oracle.TorchResult:  # a torch whose tanh' is 1% off
        result = real(program, points)
        return torch_oracle.TorchResult(result.value, np.asarray(result.gradient) * 1.01)

    monkeypatch.setattr(torch_oracle, "evaluate", off)
    still, text = replay_finding("engine:Value", oracle)  # whatever the engine: this is about torch
    assert still and "torch d/dx0" in text, text


def test_an_oracle_finding_about_an_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="cannot replay a finding about 'jax'"):
        replay_finding("engine:Value", finding("O2", "gradient", "x0", {"x0": 1.0}, None, cause="oracle", backend="jax"))


def test_load_findings_replays_errors_and_warnings_and_any_finding_by_id(tmp_path: Path) -> None:
    report = {"engine": "engine:Value",
              "discrepancies": [finding("E1", "gradient", "sin(x0)", {"x0": 0.4}, "sin")],
              "warnings": [finding("W1", "value", "x0**0.5", {"x0": -2.0}, "pow", severity="warning", cause="domain")],
              "oracle_findings": [finding("O1", "gradient", "tanh(x0)", {"x0": 0.5}, None, "warning", "oracle", "torch")]}
    path = tmp_path / "f.json"
    path.write_text(json.dumps(report))
    _, chosen = load_findings(path)
    assert [f["id"] for f in chosen] == ["E1", "W1"]  # oracle findings are not about the engine
    assert [f["id"] for f in load_findings(path, "O1")[1]] == ["O1"]
    with pytest.raises(ValueError, match="ids there: E1, W1, O1"):
        load_findings(path, "nope")
    assert replay.ENGINE_KEYS == ("discrepancies", "warnings")
