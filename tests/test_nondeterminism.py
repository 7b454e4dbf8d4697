"""Nondeterministic engines: the same case answered two ways is a finding of kind
``nondeterministic`` (blamed on the op that wavers alone, or on the backward pass),
never a crash of the campaign; shrinking that fails keeps the unshrunk finding; and
nothing found is dropped.

The engines are written to ``tmp_path``: each subclasses ``tests/engines/base.py``
(loaded from its file, as the hostile engines do) and changes one thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines import subclass_header
from verifier.campaign import check_engine

ROOT = Path(__file__).resolve().parent.parent

HEADER = subclass_header("math", "random")

# tanh's value is off by a random relative amount up to 1e-6 (far above float64
# noise), different at every call.
RANDOM_TANH = HEADER + '''

class Value(_base.Value):
    def tanh(self):
        out = super().tanh()
        out.data *= 1 + 1e-6 * random.random()
        return out


_base.Value = Value
'''

# Every second backward() runs the chain rule twice: the gradients are right only
# every other call.
FLIP_FLOP_BACKWARD = HEADER + '''
_calls = [0]


class Value(_base.Value):
    def backward(self):
        _calls[0] += 1
        super().backward()
        if _calls[0] % 2 == 0:
            super().backward()


_base.Value = Value
'''


def _engine(tmp_path: Path, source: str, name: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return f"{path}:Value"


def _validate_if_schema_knows(data: dict) -> None:
    """Schema-check a report with a nondeterministic finding, once the schema (owned
    by reports/) lists that kind."""
    from reports import SCHEMA_PATH, validate

    schema = SCHEMA_PATH.read_text()
    if '"nondeterministic"' not in schema:
        pytest.skip("reports/schema/findings.schema.json does not list kind 'nondeterministic' yet")
    validate(data)


def test_a_randomly_wrong_op_is_a_nondeterministic_finding_blamed_on_it(tmp_path: Path) -> None:
    result = check_engine(_engine(tmp_path, RANDOM_TANH, "random_tanh"), examples=60, seed=1, ops="add,mul,tanh")
    assert result.stopped == "completed" and result.examples == 60
    [finding] = [f for f in result.findings if f.kind == "nondeterministic"]
    assert finding.severity == "error" and finding.blame.op == "tanh", finding.blame
    assert "first value" in finding.message and "then value" in finding.message  # both answers
    first, second = finding.extra["answers"]
    assert first["value"] != second["value"]
    data = json.loads(json.dumps(result.to_dict()))
    assert any(d["kind"] == "nondeterministic" for d in data["discrepancies"])
    assert not result.ok


def test_a_backward_right_every_other_call_is_blamed_on_the_backward_pass(tmp_path: Path) -> None:
    result = check_engine(_engine(tmp_path, FLIP_FLOP_BACKWARD, "flip_flop"), examples=60, seed=2, ops="add,mul,sin")
    assert result.stopped == "completed" and result.examples == 60
    unsteady = [f for f in result.findings if f.kind == "nondeterministic"]
    assert unsteady, [(f.kind, f.blame.op) for f in result.findings]
    assert unsteady[0].blame.op == "backward", unsteady[0].blame


def test_the_cli_finishes_writes_json_and_exits_1(tmp_path: Path) -> None:
    target = _engine(tmp_path, RANDOM_TANH, "random_tanh")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "verifier", "check", "--engine", target, "--examples", "40",
                           "--ops", "add,tanh", "--json", str(tmp_path / "f.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    data = json.loads((tmp_path / "f.json").read_text())
    assert [d["blame"]["op"] for d in data["discrepancies"] if d["kind"] == "nondeterministic"] == ["tanh"]
    _validate_if_schema_knows(data)


def test_a_failing_shrink_keeps_the_unshrunk_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.engines import corpus
    from verifier import explore

    m = corpus.MUTANTS_BY_NAME["exp_grad_uses_input"]
    target = f"{corpus.write_engine(tmp_path, m.name, m.patches)}:Value"

    def broken(*args, **kwargs):
        from hypothesis.errors import FlakyFailure

        raise FlakyFailure("Inconsistent results from replaying a test case!", [ValueError("flaky")])

    monkeypatch.setattr(explore, "_shrunk", broken)
    result = check_engine(target, examples=60, seed=0, isolate=True)
    [finding] = [f for f in result.findings if f.blame.op == "exp"]
    assert finding.kind == "gradient" and not finding.shrunk


def test_a_finding_that_judges_clean_again_becomes_nondeterministic(tmp_path: Path) -> None:
    # Called wrong once (the answer recorded while exploring), right when the finding
    # is built: the case answered two ways, so it is kept as nondeterministic.
    from engine import Value
    from verifier.explore import _finding_of, _Occurrence
    from verifier.findings import Blame
    from verifier.hosts import InProcess
    from verifier.run_engine import EngineOutcome

    wrong = EngineOutcome("ok", 0.5, (3.0,))
    occurrence = _Occurrence(("gradient", "engine", "tanh", "error"), "error", 0, 0, "tanh(x0)", [[0.5]], 0,
                             Blame("engine", "tanh"), outcome=wrong)
    finding = _finding_of(InProcess(Value), occurrence, occurrence, shrunk=False)
    assert finding is not None and finding.kind == "nondeterministic"
    assert "3" in finding.message and finding.extra["answers"][0]["gradient"] == [3.0]
