"""Numerically unstable formulas (verifier/stability.py).

What this file proves:

* Karpathy's lecture tanh, ``(exp(2x) - 1) / (exp(2x) + 1)`` with ``1 - t**2``, is
  right at ordinary inputs: its findings say "numerically unstable", with the
  ranges where it breaks (cancellation near 0, OverflowError past 354.9) and a
  stable formula, instead of calling its derivative wrong;
* an op whose rule is wrong at ordinary inputs (tanh' = 1 - t) is not called
  unstable, and a stable engine has nothing to diagnose;
* the severity of a stability finding is the caller's choice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Value
from tests.engines import corpus
from verifier.evidence import build_finding
from verifier.expr import compile_program
from verifier.hosts import InProcess, Sandbox
from verifier.parsing import parse
from verifier.stability import diagnose

LECTURE_TANH = [(
    "        t = math.tanh(self.data)\n        out = Value(t, (self,), 'tanh')",
    "        x = self.data\n        t = (math.exp(2*x) - 1)/(math.exp(2*x) + 1)\n        out = Value(t, (self, ), 'tanh')",
)]


@pytest.fixture(scope="module")
def lecture(tmp_path_factory) -> Path:
    return corpus.write_engine(tmp_path_factory.mktemp("lecture"), "lecture_tanh", LECTURE_TANH)


def test_the_lecture_tanh_is_unstable_with_the_ranges_where_it_breaks(lecture: Path) -> None:
    with Sandbox(f"{lecture}:Value") as host:
        found = diagnose(host, "tanh")
    assert found is not None and found.op == "tanh"
    text = found.message
    assert text.startswith("numerically unstable formula: tanh is right at ordinary inputs")
    assert "x >= 354.9: raised OverflowError" in text
    assert any("<= x <=" in r and "wrong value" in r for r in found.ranges)  # exp(2x) - 1 cancels
    assert "math.tanh" in found.hint


def test_a_stable_engine_and_a_wrong_rule_are_not_unstable(tmp_path: Path) -> None:
    host = InProcess(Value)
    assert all(diagnose(host, op) is None for op in ("tanh", "exp", "sigmoid", "div", "log", "sin"))
    wrong = corpus.write_engine(tmp_path, "tanh_wrong", [("self.grad += (1 - t**2) * out.grad", "self.grad += (1 - t) * out.grad")])
    with Sandbox(f"{wrong}:Value") as host:
        assert diagnose(host, "tanh") is None  # wrong at 0.5 already: a wrong rule


@pytest.mark.parametrize("severity", ["error", "warning"])
def test_a_stability_finding_says_so_with_the_chosen_severity(lecture: Path, severity: str) -> None:
    program = compile_program(parse("tanh(x0)"))
    with Sandbox(f"{lecture}:Value") as host:
        finding = build_finding(host, program, (1e-295,), unstable=severity)
    assert finding is not None and finding.blame.op == "tanh"
    assert (finding.cause, finding.severity) == ("unstable", severity)
    assert "numerically unstable formula" in finding.message and "354.9" in finding.message


def test_the_severity_is_configurable_in_the_api_and_in_assert_gradients(lecture: Path, monkeypatch) -> None:
    from verifier import assertions
    from verifier.assertions import GradientMismatch, UnstableFormulaWarning, assert_gradients

    target = f"{lecture}:Value"
    with pytest.raises(GradientMismatch):
        assert_gradients("tanh(x)", {"x": 1e-295}, engine=target)
    monkeypatch.setattr(assertions, "UNSTABLE_SEVERITY", "warning")
    with pytest.warns(UnstableFormulaWarning, match="numerically unstable formula"):
        assert_gradients("tanh(x)", {"x": 1e-295}, engine=target)
    # A wrong rule still fails, whatever the setting for unstable formulas.
    wrong = corpus.write_engine(lecture.parent, "tanh_wrong", [("self.grad += (1 - t**2) * out.grad", "self.grad += (1 - t) * out.grad")])
    with pytest.raises(GradientMismatch):
        assert_gradients("tanh(x)", {"x": 0.5}, engine=f"{wrong}:Value")


def test_check_engine_takes_the_severity(lecture: Path) -> None:
    from verifier.campaign import check_engine

    with pytest.raises(ValueError, match="unstable='fatal'"):
        check_engine("engine:Value", examples=1, unstable="fatal")
    result = check_engine(f"{lecture}:Value", examples=150, seed=0, ops="tanh,add,mul", unstable="warning")
    unstable = [f for f in result.warnings if f.cause == "unstable"]
    assert unstable and all(f.blame.op == "tanh" and f.severity == "warning" for f in unstable)
    assert not [f for f in result.findings if f.cause == "unstable"]


def test_an_edge_among_the_subnormals_is_narrowed_to_where_it_is(tmp_path: Path) -> None:
    # relu that flushes subnormal inputs breaks below the smallest normal float; the
    # bisection between 1e-308 and 1e-302 must not underflow to 0 on the way.
    from tests.engines import edge

    mutant = edge.EDGE_BY_NAME["relu_flushes_subnormal_input"]
    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    with Sandbox(f"{path}:Value") as host:
        found = diagnose(host, "relu")
    assert found is not None and found.ranges == ("5e-324 <= x <= 2.225e-308: wrong derivative",)
