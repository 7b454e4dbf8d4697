"""The pytest plugin and the property suites, run as users run them (pytester).

Each run is a subprocess (``pytest --pyargs properties ...`` from a scratch
directory), with few examples per property to keep this file fast.
"""

from __future__ import annotations

import json
import re
import sys
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
    # tanh fails alone, once; everything built on it is skipped, not failed again
    assert result.parseoutcomes()["failed"] == 1, out
    assert "FAILED test_op_alone.py::test_op_alone[tanh]" in out
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
    # test_op_alone[tanh] is deselected: nothing is skipped for it, the tanh form fails (the exp form has no tanh)
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["passed"], "skipped" in outcomes) == (1, 1, False), out
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


# -- each op alone first: one bug, one failure, named after its op ---------------------------------

def _two_bug_engine(pytester: pytest.Pytester) -> str:
    """base.py with a wrong tanh derivative and a wrong mul gradient."""
    patches = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"].patches + corpus.MUTANTS_BY_NAME["mul_grad_uses_own_data"].patches
    corpus.write_engine(pytester.path, "two_bug_engine", patches)
    return "two_bug_engine.py:Value"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_two_bugs_fail_once_each_under_their_ops_name(pytester, workers):
    target = _two_bug_engine(pytester)
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, *workers, "-p", "no:randomly",
                  "--verifier-engine", target, "-rfs")
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert result.ret == 1, out
    # Before: 25 failures named after properties (reused nodes x4, MLPs, ...), the op only in the blame line.
    failed = sorted(re.findall(r"^FAILED (\S+)", out, re.MULTILINE))
    assert failed == ["test_op_alone.py::test_op_alone[mul]", "test_op_alone.py::test_op_alone[tanh]"], out
    assert outcomes["skipped"] >= 20 and outcomes["passed"] >= 30, out  # the other ops are still exercised
    result.stdout.fnmatch_lines([
        "mul fails alone (test_op_alone[[]mul[]]); * tests that use it skipped",
        "tanh fails alone (test_op_alone[[]tanh[]]); * tests that use it skipped",
    ])
    assert re.search(r"SKIPPED \[6\] \S*test_backward.py:\d+: depends on mul, which fails alone: see test_op_alone\[mul\]", out), out
    assert "depends on tanh, which fails alone: see test_op_alone[tanh]" in out
    data = json.loads((pytester.path / "crossgrad-findings.json").read_text())
    assert data["ops_quarantined"] == ["mul", "tanh"]
    assert sorted(f["blame"]["op"] for f in data["discrepancies"]) == ["mul", "tanh"]
    assert max(len(f["expression"]) for f in data["discrepancies"]) < 20  # "a * b", "tanh(a)": no 3,188-character MLP


def test_op_alone_tests_run_first(pytester):
    result = _run(pytester, "--pyargs", "properties", "--collect-only", "-q", "-p", "no:randomly")
    ids = [line for line in result.stdout.lines if "::" in line]
    alone = [i for i, line in enumerate(ids) if "test_op_alone[" in line]
    assert len(alone) == 14 and alone == list(range(14)), ids[:16]


def test_an_expression_using_an_op_that_fails_alone_is_skipped_in_a_users_tests(pytester):
    pytester.makepyfile(test_mine="""
        from properties.test_op_alone import test_op_alone  # the suite's checks of each op alone, here too
        from verifier.assertions import assert_gradients

        def test_uses_tanh(verifier_engine):
            assert_gradients("2 * tanh(x)", {"x": 0.5}, engine=verifier_engine)

        def test_uses_exp(verifier_engine):
            assert_gradients("2 * exp(x)", {"x": 0.5}, engine=verifier_engine)
    """)
    result = _run(pytester, "--verifier-engine", _mutant(pytester), "-rfs", "-p", "no:randomly")
    result.assert_outcomes(passed=14, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["FAILED test_mine.py::test_op_alone[[]tanh[]]*",
                                 "SKIPPED [[]1[]] test_mine.py:5: depends on tanh, which fails alone: see test_op_alone[[]tanh[]]"])


def test_without_the_op_alone_test_a_users_test_fails_naming_the_op(pytester):
    pytester.makepyfile(test_mine="""
        import pytest
        from verifier.assertions import assert_gradients

        @pytest.mark.requires_ops("tanh")
        def test_uses_tanh(verifier_engine):
            assert_gradients("2 * tanh(x)", {"x": 0.5}, engine=verifier_engine)
    """)
    result = _run(pytester, "--verifier-engine", _mutant(pytester), "-rf")
    result.assert_outcomes(failed=1)  # never skipped into a silent pass
    result.stdout.fnmatch_lines(["*blame*tanh — tanh is wrong alone*"])


def test_findings_with_the_same_op_kind_and_cause_are_one_finding(pytester):
    target = _mutant(pytester)
    report = pytester.path / "crossgrad.html"
    # test_op_alone is deselected: two tests find the same tanh bug, on expressions of different sizes
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", target, "-p", "no:randomly",
                  "-k", "test_exercise_3 and tanh or test_each_op_agrees_with_every_oracle and tanh",
                  "--verifier-report", str(report))
    out = result.stdout.str()
    assert result.parseoutcomes()["failed"] == 2, out
    data = json.loads((pytester.path / "crossgrad-findings.json").read_text())
    [finding] = data["discrepancies"]
    assert finding["blame"]["op"] == "tanh" and finding["expression"] == "tanh(a)"  # the shorter one kept
    assert finding["extra"]["duplicates"] == 1 and len(finding["extra"]["tests"]) == 2
    # every failure's replay line names the finding that is in the file
    ids = set(re.findall(r"verifier replay crossgrad-findings\.json --id (F[0-9a-f]{8})", out))
    assert ids == {finding["id"]}, out
    assert "1 finding on engine" in out and "(found 2 times)" in out
    reports = pytest.importorskip("reports")
    if hasattr(reports, "validate"):
        reports.validate(data)
    assert report.exists()


def test_assert_gradients_outside_pytest_points_to_no_file(pytester):
    engine = _mutant(pytester)
    pytester.makepyfile(check="""
        import sys
        from verifier.assertions import GradientMismatch, assert_gradients

        try:
            assert_gradients("tanh(x)", {"x": 0.7}, engine=sys.argv[1])
        except GradientMismatch as error:
            print(error)
    """)
    result = pytester.run(sys.executable, "check.py", engine)
    out = result.stdout.str()
    assert "blame" in out and "tanh" in out, out
    assert "verifier replay" not in out and "crossgrad-findings.json" not in out  # no file is written outside pytest
    assert "reproduce    verifier.compare('tanh(x)'" in out
    assert not (pytester.path / "crossgrad-findings.json").exists()


def test_second_order_suite_skips_an_engine_that_cannot_and_fails_it_when_asked(pytester):
    import tests.engines.base as base

    target = f"{base.__file__}:Value"  # micrograd-style: backward() takes no create_graph, Value no tangent
    auto = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", target, "-k", "second_order", "-rs")
    outcomes = auto.parseoutcomes()
    assert outcomes.get("skipped", 0) > 0 and "failed" not in outcomes and "passed" not in outcomes, auto.stdout.str()
    auto.stdout.fnmatch_lines(["*the engine cannot (backward(create_graph=True): TypeError*--verifier-order auto*"])
    asked = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", target, "-k", "hessian",
                 "--verifier-order", "2", "--verifier-modes", "rev")
    assert asked.parseoutcomes().get("errors", 0) > 0 and asked.ret != 0, asked.stdout.str()  # failed in the fixture
    asked.stdout.fnmatch_lines(["*--verifier-order 2: the engine cannot: backward(create_graph=True): TypeError*"])


def test_second_order_suite_catches_a_mutant_at_second_order(pytester, tmp_path):
    from tests.engines import second_order

    path = second_order.write(tmp_path, second_order.BY_NAME["tanh_second_derivative_wrong"])
    result = _run(pytester, "--pyargs", "properties", *EXAMPLES, "--verifier-engine", f"{path}:Value",
                  "-k", "each_op_has_the_exact_second_derivative and tanh")
    assert result.parseoutcomes().get("failed", 0) >= 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*d2/da2 is *"])
