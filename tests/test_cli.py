"""The `verifier` command as a user meets it: exit codes, one-line errors without
tracebacks, reports written, hostile engines survived, Ctrl-C keeping what was found."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reports import validate
from tests.engines import corpus

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ROOT / "tests" / "engines"


def verifier(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifier: error: "), done.stderr
    return lines[0]


def mutant(tmp_path: Path, name: str) -> str:
    m = corpus.MUTANTS_BY_NAME[name]
    return f"{corpus.write_engine(tmp_path, m.name, m.patches)}:Value"


def test_clean_engine_exits_0_and_writes_both_reports(tmp_path: Path) -> None:
    done = verifier("check", "--examples", "60", "--report", str(tmp_path / "report.html"))
    assert done.returncode == 0, done.stderr
    assert "No discrepancies in 60 examples" in done.stdout
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["engine"] == "engine:Value" and data["discrepancies"] == []
    validate(data)
    assert "<html" in (tmp_path / "report.html").read_text().lower()


def test_a_mutant_exits_1_naming_the_op(tmp_path: Path) -> None:
    done = verifier("check", "--engine", mutant(tmp_path, "cos_grad_missing_minus"), "--examples", "100",
                    "--json", str(tmp_path / "f.json"))
    assert done.returncode == 1, done.stderr
    assert "gradient · cos" in done.stdout
    [finding] = json.loads((tmp_path / "f.json").read_text())["discrepancies"]
    assert finding["blame"] == {**finding["blame"], "backend": "engine", "op": "cos"}


def test_student_engine_reports_both_bugs_and_finishes(tmp_path: Path) -> None:
    done = verifier("check", "--engine", f"{ENGINES / 'student.py'}:Value", "--examples", "200", "--timeout", "2",
                    "--json", str(tmp_path / "s.json"))
    assert done.returncode == 1, done.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    validate(data)  # every report the CLI writes follows the schema
    found = {(f["kind"], f["blame"]["op"]) for f in data["discrepancies"]}
    assert {("invalid", "mul"), ("exception", "sub")} <= found


def test_nothing_judged_exits_3_and_says_why(tmp_path: Path) -> None:
    # A buggy engine and a budget too short for one example: never "No discrepancies".
    done = verifier("check", "--engine", mutant(tmp_path, "cos_grad_missing_minus"), "--examples", "1000",
                    "--time-budget", "0.01", "--json", str(tmp_path / "f.json"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "No discrepancies" not in done.stdout
    assert "Nothing was judged: the time budget ran out before the first example" in done.stdout
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["examples"] == 0 and data["nothing_judged"].startswith("nothing was judged")


def test_micrograd_reports_missing_ops_and_no_errors() -> None:
    done = verifier("check", "--engine", "micrograd.engine:Value", "--examples", "200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ops missing (not generated): exp, log, tanh, sigmoid, sin, cos, sqrt" in done.stdout


def test_bad_targets_give_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import math\n\nclass Value:\n    pass\n\nundefined_name + 1\n")
    bad_syntax = tmp_path / "bad_syntax.py"
    bad_syntax.write_text("class Value:\n    def f(self:\n        pass\n")
    cases = {
        str(tmp_path / "nope.py") + ":Value": "does not exist",
        f"{ENGINES / 'base.py'}:Nope": "has no attribute 'Nope'",
        "engine.value:topological_order": "is a function, expected a class",
        f"{broken}:Value": "NameError: name 'undefined_name' is not defined (broken.py line 6)",
        f"{bad_syntax}:Value": "SyntaxError",
        "engine": "not of the form package.module:Class",
        "no_such_package.mod:Value": "no module named 'no_such_package'",
    }
    for target, expected in cases.items():
        line = one_line_error(verifier("check", "--engine", target, "--examples", "5"))
        assert expected in line, (target, line)


@pytest.mark.parametrize(("args", "expected"), [
    (["check", "--ops", "foo,mul"], "unknown op 'foo'"),
    (["check", "--examples", "0"], "--examples"),
    (["check", "--timeout", "-1"], "--timeout"),
    (["check", "--seed", "x"], "--seed"),
    (["check", "--workers", "two"], "--workers"),
    (["check", "--bogus"], "No such option"),
    (["check", "--json", "/no/such/folder/f.json"], "does not exist"),
    (["compare", "tanh(x0", "--at", "x0=1"], "invalid syntax"),
    (["compare", "x0 * y", "--at", "x0=1"], "no value for y"),
    (["compare", "x0", "--at", "x0=abc"], "'abc' for x0 is not a number"),
    (["compare", "eval('1')", "--at", "x0=1"], "unknown function 'eval'"),
    (["replay", "/no/such/file.json"], "does not exist"),
])
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    assert expected in one_line_error(verifier(*args))


def test_compare_prints_every_oracle() -> None:
    done = verifier("compare", "-a**3 + sin(3*b) - 1/c + b**2.5 - a**0.5", "--at", "a=2,b=3,c=4")
    assert done.returncode == 0, done.stderr
    for name in ("reference", "engine", "sympy", "torch", "numeric", "noise floor", "verdict: agree"):
        assert name in done.stdout
    assert "-12.353553390593273" in done.stdout


def test_compare_exits_1_on_a_disagreement(tmp_path: Path) -> None:
    done = verifier("compare", "tanh(x0)", "--at", "x0=1", "--engine", mutant(tmp_path, "tanh_grad_missing_square"))
    assert done.returncode == 1 and "verdict: disagree" in done.stdout and "blame: tanh" in done.stdout


def test_replay_says_whether_findings_still_fail(tmp_path: Path) -> None:
    target = mutant(tmp_path, "sin_grad_negated")
    findings = tmp_path / "f.json"
    assert verifier("check", "--engine", target, "--examples", "100", "--json", str(findings)).returncode == 1
    [finding] = json.loads(findings.read_text())["discrepancies"]
    still = verifier("replay", str(findings), "--id", finding["id"])
    assert still.returncode == 1 and still.stdout.startswith("still fails:"), still.stdout
    fixed = verifier("replay", str(findings), "--engine", "engine:Value")
    assert fixed.returncode == 0 and fixed.stdout.startswith("fixed:"), fixed.stdout
    assert "ids there: " + finding["id"] in one_line_error(verifier("replay", str(findings), "--id", "nope"))


def test_help_shows_examples() -> None:
    done = verifier("--help")
    assert done.returncode == 0 and "verifier check --engine my_value.py:Value" in done.stdout


@pytest.mark.skipif(shutil.which("verifier") is None, reason="the console script is not installed")
def test_console_script_is_the_same_program() -> None:
    done = subprocess.run(["verifier", "compare", "x0*x0", "--at", "x0=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "verdict: agree" in done.stdout


def test_ctrl_c_writes_the_partial_report(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "partial.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "verifier", "check", "--engine", mutant(tmp_path, "exp_grad_uses_input"),
         "--examples", "1000000", "--json", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # xdist workers ignore SIGINT, and an ignored SIGINT is inherited: Python
        # would then install no KeyboardInterrupt handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(8)  # start-up, then a few hundred examples
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # never leave a million-example run behind
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    data = json.loads(out.read_text())
    assert data["stopped"] == "interrupted"
    assert 0 < data["examples"] < 1_000_000
    assert any(f["blame"]["op"] == "exp" for f in data["discrepancies"])
