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
         "--examples", "1000000", "--workers", "1", "--json", str(out)],
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


# -- issue 10: CLI frictions -------------------------------------------------------------

def test_one_example_is_singular_and_progress_goes_to_a_ci_log(tmp_path: Path) -> None:
    done = verifier("check", "--examples", "1", "--ops", "add")
    assert done.returncode == 0, done.stderr
    assert "1 example (seed 0)" in done.stdout and "No discrepancies in 1 example." in done.stdout
    assert "1 examples" not in done.stdout
    # Not a terminal: plain progress lines on stderr, not silence until the end.
    assert "verifier: checking 1/1 example (100%)" in done.stderr


def test_progress_lines_every_tenth_and_while_shrinking(tmp_path: Path) -> None:
    done = verifier("check", "--engine", mutant(tmp_path, "cos_grad_missing_minus"), "--examples", "100")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    checking = [line for line in lines if line.startswith("verifier: checking ")]
    assert [line.split()[2] for line in checking] == [f"{n}/100" for n in range(10, 101, 10)]
    shrinking = [line for line in lines if line.startswith("verifier: shrinking ")]
    assert shrinking and shrinking[0].startswith("verifier: shrinking 0/") and lines.index(shrinking[0]) > lines.index(checking[-1])


def test_plain_progress_every_30_seconds_without_a_tenth(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from rich.console import Console

    from verifier.cli import _Progress

    now = [0.0]
    out = io.StringIO()
    progress = _Progress(Console(file=io.StringIO()), clock=lambda: now[0], out=out)
    with progress as update:
        for done, t in ((1, 1.0), (2, 29.0), (3, 31.0), (4, 40.0), (100, 45.0)):
            now[0] = t
            update(done, 1000)
        update(0, 3, "shrinking")
    assert out.getvalue().splitlines() == [
        "verifier: checking 3/1000 examples (0%), 31 s",
        "verifier: checking 100/1000 examples (10%), 45 s",
        "verifier: shrinking 0/3 findings, 45 s",
    ]


def test_terminal_bar_switches_to_shrinking() -> None:
    import io

    from rich.console import Console

    from verifier.cli import _Progress

    screen = io.StringIO()
    progress = _Progress(Console(file=screen, force_terminal=True, width=100))
    with progress as update:
        update(300, 300)
        update(1, 3, "shrinking")
        assert [task.description for task in progress.bar.tasks] == ["shrinking"]
        assert progress.bar.tasks[0].completed == 1 and progress.bar.tasks[0].total == 3


def test_summary_pluralises_and_counts_examples_per_finding() -> None:
    import dataclasses
    import io

    from rich.console import Console

    from verifier.campaign import check_engine
    from verifier.cli import _summary
    from verifier.findings import Blame, Finding

    result = check_engine("engine:Value", examples=2, ops="add", progress=False)
    warning = Finding("gradient", "warning", "precision", "d/dx0 is a little off", "tanh(x0)", ("x0",), (20.0,),
                      "defined", "", Blame("engine", "tanh"))
    error = dataclasses.replace(warning, severity="error", cause="engine", kind="value", blame=Blame("engine", "mul"))
    screen = io.StringIO()
    _summary(Console(file=screen, width=120), dataclasses.replace(result, warnings=(warning,)), None, None)
    assert "No discrepancies in 2 examples (1 warning)." in screen.getvalue()
    screen = io.StringIO()
    counted = dataclasses.replace(result, findings=(error,), occurrences={("value", "engine", "mul", "error"): 23})
    _summary(Console(file=screen, width=120), counted, None, None)
    table = screen.getvalue()
    assert "examples" in table and "count" not in table
    assert any(line.split("│")[1:5] == [" mul  ", " value ", " error    ", " 23       "] or
               [c.strip() for c in line.split("│")[1:5]] == ["mul", "value", "error", "23"] for line in table.splitlines())


def test_replay_of_the_html_report_suggests_the_json(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    page.write_text("<html></html>")
    line = one_line_error(verifier("replay", str(page)))
    assert "is the HTML report" in line and "JSON report" in line
    (tmp_path / "r.json").write_text(json.dumps({"engine": "engine:Value", "discrepancies": []}))
    line = one_line_error(verifier("replay", str(page)))
    assert line.endswith(f"verifier replay {tmp_path / 'r.json'}")


def test_replay_help_wording() -> None:
    done = verifier("replay", "--help")
    text = " ".join(done.stdout.split())
    assert "Re-judge recorded findings (errors and warnings; an oracle finding with --id) and say whether each still fails." in text
    assert "Replay only this finding (any list, oracle findings included)." in text


def test_reports_record_the_engine_file_absolutely_and_replay_from_anywhere(tmp_path: Path) -> None:
    m = corpus.MUTANTS_BY_NAME["sin_grad_negated"]
    work = tmp_path / "work"
    work.mkdir()
    corpus.write_engine(work, "mine", m.patches)
    done = verifier("check", "--engine", "mine.py:Value", "--examples", "100", "--json", "f.json", cwd=work)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    data = json.loads((work / "f.json").read_text())
    assert data["engine"] == f"{work / 'mine.py'}:Value"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = verifier("replay", str(work / "f.json"), cwd=elsewhere)
    assert again.returncode == 1 and again.stdout.startswith("still fails:"), again.stdout + again.stderr
    # An older report, with the path as typed: one line, with a hint.
    data["engine"] = "mine.py:Value"
    (work / "old.json").write_text(json.dumps(data))
    line = one_line_error(verifier("replay", str(work / "old.json"), cwd=elsewhere))
    assert "does not exist" in line and "relative to the folder the check ran in" in line and "--engine" in line


@pytest.mark.parametrize("body", ["    pass", "    backward = 3"])
def test_a_class_without_backward_is_one_line(tmp_path: Path, body: str) -> None:
    source = ("class Value:\n    def __init__(self, data):\n        self.data, self.grad = data, 0.0\n"
              "    def __add__(self, other):\n        return Value(self.data + other.data)\n"
              "    def __mul__(self, other):\n        return Value(self.data * other.data)\n" + body + "\n")
    (tmp_path / "nobackward.py").write_text(source)
    line = one_line_error(verifier("check", "--engine", f"{tmp_path / 'nobackward.py'}:Value", "--examples", "5"))
    assert "engine class 'Value' has " in line and "backward" in line
    line = one_line_error(verifier("compare", "x0 * x0", "--at", "x0=1", "--engine", f"{tmp_path / 'nobackward.py'}:Value"))
    assert "backward" in line


def test_small_campaigns_run_serially_whatever_workers_says(tmp_path: Path) -> None:
    done = verifier("check", "--examples", "150", "--workers", "2", "--ops", "add,mul", "--json", str(tmp_path / "f.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "f.json").read_text())["workers"] == 1
    assert "(--workers 2: ran serially, one per 4,000 examples at most" in " ".join(done.stdout.split())
    from verifier.cli import EXAMPLES_PER_WORKER, _workers

    assert _workers(2, 2 * EXAMPLES_PER_WORKER) == 2 and _workers(2, 2 * EXAMPLES_PER_WORKER - 1) == 1
    assert "4,000" in " ".join(verifier("check", "--help").stdout.split())


def test_compare_fits_80_columns_and_keeps_the_blame(tmp_path: Path) -> None:
    done = verifier("compare", "tanh(x0*x1) - 3/x1 + x0**2.5", "--at", "x0=0.5,x1=2", "--engine",
                    mutant(tmp_path, "tanh_grad_missing_square"))
    assert done.returncode == 1
    assert max(map(len, done.stdout.splitlines())) <= 80, done.stdout
    assert "blame: tanh (" in done.stdout and "verdict: disagree" in done.stdout
