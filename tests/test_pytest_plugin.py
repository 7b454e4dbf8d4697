"""The pytest plugin and the property suites, run as users run them (pytester).

Each run is a subprocess (``pytest --pyargs properties ...`` from a scratch
directory), with few examples per property to keep this file fast.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import entry_points

import pytest

from tests.engines import corpus

pytest_plugins = ["pytester"]

EXAMPLES = ["--verifier-examples", "4", "--hypothesis-profile=ci"]


def _plugin() -> list[str]:
    """``-p verifier.pytest_plugin`` unless the entry point already loads it."""
    installed = any(ep.name == "crossgrad" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "verifier.pytest_plugin"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*_plugin(), "-p", "no:cacheprovider", *args)


def _mutant(pytester: pytest.Pytester, name: str = "tanh_grad_missing_square") -> str:
    m = corpus.MUTANTS_BY_NAME[name]
    return f"{corpus.write_engine(pytester.path, m.name, m.patches)}:Value"


def test_correct_engine_passes_every_suite(pytester):
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "-q", "-rs")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] >= 40
    assert not (pytester.path / "crossgrad-findings.json").exists()  # written only when something fails


def test_header_shows_engine_seed_ops_and_profile(pytester):
    pytester.makepyfile(test_one="def test_engine(verifier_engine, verifier_ops):\n    assert 'add' in verifier_ops\n")
    result = _run(pytester, "--verifier-seed", "7", "--hypothesis-profile=ci")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "crossgrad: engine engine:Value, seed 7, hypothesis profile 'ci' (max_examples=100)",
        "crossgrad: ops add, sub, mul, div, neg, pow, exp, log, tanh, relu, sigmoid, sin, cos, sqrt; missing: none",
    ])


def test_mutant_fails_with_the_table_the_blamed_op_and_replay_under_xdist(pytester):
    target = _mutant(pytester)
    report = pytester.path / "crossgrad.html"
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "-n", "2",
                  "--verifier-engine", target, "--verifier-report", str(report))
    out = result.stdout.str()
    assert result.ret == 1, out
    assert result.parseoutcomes()["failed"] >= 3
    # The compact table, not a traceback: every oracle, the floor, the blame, replay.
    for line in ("  oracle ", "  reference ", "  engine ", "  sympy ", "  torch ", "  numeric ", "  noise floor "):
        assert line in out
    assert re.search(r"  blame +tanh — tanh is wrong alone", out), out
    ids = set(re.findall(r"verifier replay crossgrad-findings\.json --id (F[0-9a-f]{8})", out))
    assert ids
    assert "Traceback" not in out and "def test_" not in out
    # The controller wrote the findings once, with every id a failure printed.
    data = json.loads((pytester.path / "crossgrad-findings.json").read_text())
    assert data["engine"] == target and data["workers"] == 2
    assert {f["blame"]["op"] for f in data["discrepancies"]} == {"tanh"}
    assert ids <= {f["id"] for f in data["discrepancies"]}
    reports = pytest.importorskip("reports")
    if hasattr(reports, "validate"):
        reports.validate(data)
    assert "tanh" in report.read_text(encoding="utf-8")


def test_mutant_failure_without_xdist_is_compact_too(pytester):
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", _mutant(pytester),
                  "-k", "test_exercise_3", "-rf")
    out = result.stdout.str()
    assert result.parseoutcomes() == {"failed": 1, "passed": 1, "deselected": 51}, out  # the exp form has no tanh
    result.stdout.fnmatch_lines(["GradientMismatch: engine d/d* is *", "*blame*tanh — tanh is wrong alone*",
                                 "*replay*verifier replay crossgrad-findings.json --id F*"])
    # the short summary keeps one line per failure
    result.stdout.fnmatch_lines(["FAILED *test_exercise_3_tanh_neuron[[]tanh[]]*"])


def test_micrograd_is_skipped_for_missing_ops_not_failed(pytester):
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", "micrograd.engine:Value", "-rsx")
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert result.ret == 0, out
    assert outcomes.get("failed", 0) == 0 and outcomes["skipped"] >= 10 and outcomes["passed"] >= 20
    result.stdout.fnmatch_lines(["*engine lacks exp, log*", "*engine lacks tanh*", "*engine lacks sin*"])
    # micrograd's convention on two backward() calls is reported, not failed
    result.stdout.fnmatch_lines(["XFAIL *test_two_backward_calls_on_one_graph*micrograd's convention*"])


def test_requires_ops_marker_and_fixtures_in_a_users_tests(pytester):
    pytester.makepyfile(test_mine="""
        import pytest
        from verifier.assertions import assert_gradients

        @pytest.mark.requires_ops("exp", "log")
        def test_needs_exp_and_log(verifier_engine):
            assert_gradients("log(exp(x) + 1)", {"x": 0.5}, engine=verifier_engine)

        @pytest.mark.requires_ops("relu")
        def test_relu(verifier_engine, verifier_ops):
            assert "relu" in verifier_ops
            assert_gradients(lambda x: x.relu() * x, [[1.5], [-2.0]], engine=verifier_engine)
    """)
    result = _run(pytester, "--verifier-engine", "micrograd.engine:Value", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_mine.py:4: engine lacks exp, log"])


def test_bad_engine_is_a_one_line_usage_error(pytester):
    result = _run(pytester, "--pyargs", "properties", "--verifier-engine", "nowhere/engine.py:Value")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == ["ERROR: --verifier-engine nowhere/engine.py:Value: engine file 'nowhere/engine.py' does not exist"]
    assert "Traceback" not in result.stdout.str()
