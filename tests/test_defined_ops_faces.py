"""Defined ops through every face: the CLI (--op, --ops-file, compare --op, replay
from the report alone), the pytest plugin (--verifier-op, [tool.crossgrad.ops])."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from reports import validate
from tests.engines import library

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def verifier(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_op_and_ops_file_are_checked_recorded_and_replayed(tmp_path: Path) -> None:
    engine = library.write(tmp_path, library.BY_NAME["gelu_grad_without_x_pdf"])
    ops_file = tmp_path / "ops.toml"
    ops_file.write_text('[ops.gelu]\n\n[ops.hinge]\nformula = "Max(0, 1 - x)"\nmethod = "relu"\n', encoding="utf-8")
    report = tmp_path / "r.html"
    done = verifier("check", "--engine", f"{engine}:Value", "--ops", "add,mul,tanh", "--ops-file", str(ops_file),
                    "--op", "cube(x) = x**3", "--examples", "300", "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    validate(data)
    assert {d["name"] for d in data["definitions"]} == {"gelu", "hinge", "cube"}  # cube too: the engine lacks it
    blamed = {(f["kind"], f["blame"]["op"]) for f in data["discrepancies"]}
    assert ("gradient", "gelu") in blamed and ("exception", "cube") in blamed
    # hinge is Max(0, 1 - x), not relu: the engine's relu, standing in for it, is wrong
    assert any(op == "hinge" for _, op in blamed)
    # A fresh process defines the ops again from the report alone.
    replayed = verifier("replay", str(report.with_suffix(".json")), cwd=tmp_path)
    assert replayed.returncode == 1 and "still fails" in replayed.stdout and "Traceback" not in replayed.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (("--op", "bad(x) = __import__('os')"), "unknown function '__import__'"),
    (("--op", "softplus = log(1 + exp(x))"), "expected 'name(x) = formula'"),
    (("--op", "tanh(x) = tanh(x)"), "built-in op"),
    (("--ops", "+gelux"), "unknown op 'gelux'"),
])
def test_cli_bad_definitions_are_one_line_exit_2(args: tuple[str, ...], expected: str) -> None:
    done = verifier("check", "--examples", "5", *args)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_bad_ops_file_names_the_op_and_key(tmp_path: Path) -> None:
    path = tmp_path / "ops.toml"
    path.write_text('[ops.softplus]\nformula = "log(1 + exp(x))"\nslope = 2\n', encoding="utf-8")
    done = verifier("check", "--examples", "5", "--ops-file", str(path))
    assert done.returncode == 2 and "ops.softplus: unknown key 'slope'" in done.stderr


def test_compare_with_a_defined_op() -> None:
    done = verifier("compare", "hinge(x0) * gelu(x0)", "--at", "x0=0.5", "--op", "hinge(x) = Max(0, 1 - x)", "--engine", "none")
    assert done.returncode == 0, done.stderr
    assert "verdict: agree" in done.stdout


def _plugin() -> list[str]:
    installed = any(ep.name == "crossgrad" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "verifier.pytest_plugin"]


def test_plugin_reads_verifier_op_and_pyproject_ops(pytester: pytest.Pytester) -> None:
    engine = library.write(pytester.path, library.BY_NAME["gelu_grad_without_x_pdf"])
    pytester.makefile(".toml", pyproject='[tool.crossgrad.ops.softplus]\nrelations = ["softplus(x) - softplus(-x) == x"]\n')
    result = pytester.runpytest_subprocess(
        *_plugin(), "-p", "no:cacheprovider", "--pyargs", "properties.test_op_alone", "properties.test_metamorphic",
        "--verifier-engine", f"{engine}:Value", "--verifier-op", "gelu", "--verifier-examples", "60",
        "--hypothesis-profile=ci", "-k", "softplus or gelu", "-rf")
    out = result.stdout.str()
    assert "ops add, sub, mul, div, neg, pow, exp, log, tanh, relu, sigmoid, sin, cos, sqrt, softplus, gelu;" in out
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "test_op_alone[gelu]" in failed[0] and "GradientMismatch" in failed[0], out
    assert result.parseoutcomes()["passed"] == 2, out  # softplus alone, and its stated relation
