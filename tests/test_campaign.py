"""Campaigns: deterministic for a seed whatever the number of workers, survive
crashing, hanging and buggy engines, stop on a time budget without losing what they
found, and produce the JSON contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines import corpus
from verifier.campaign import check_engine

ENGINES = Path(__file__).parent / "engines"


def _mutant(tmp_path: Path, name: str) -> str:
    m = corpus.MUTANTS_BY_NAME[name]
    return f"{corpus.write_engine(tmp_path, m.name, m.patches)}:Value"


def _key(result):
    return [(f.kind, f.blame.op, f.expression, f.point) for f in result.findings + result.warnings]


def test_same_seed_same_findings(tmp_path: Path) -> None:
    target = _mutant(tmp_path, "sub_grad_sign_second_arg")
    first = check_engine(target, examples=150, seed=7)
    again = check_engine(target, examples=150, seed=7)
    assert first.findings and _key(first) == _key(again)
    assert first.counts == again.counts


def test_workers_find_exactly_what_a_serial_run_finds() -> None:
    target = f"{ENGINES / 'student.py'}:Value"  # two bugs: two findings
    serial = check_engine(target, examples=200, seed=5)
    parallel = check_engine(target, examples=200, seed=5, workers=2)
    assert len(serial.findings) >= 2 and _key(serial) == _key(parallel)
    assert parallel.workers == 2 and parallel.examples == serial.examples


def test_a_time_budget_stops_early_and_keeps_findings(tmp_path: Path) -> None:
    target = _mutant(tmp_path, "exp_grad_uses_input")
    result = check_engine(target, examples=100_000, seed=0, time_budget=3)
    assert result.stopped == "time-budget"
    assert 0 < result.examples < 100_000
    assert any(f.blame.op == "exp" for f in result.findings)


def test_a_time_budget_run_still_shrinks_within_a_bounded_time(tmp_path: Path) -> None:
    from verifier.executors import SHRINK_SHARE

    target = _mutant(tmp_path, "exp_grad_uses_input")
    result = check_engine(target, examples=100_000, seed=0, time_budget=4)
    assert result.stopped == "time-budget"
    [exp] = [f for f in result.findings if f.blame.op == "exp"]
    assert exp.shrunk, exp.expression
    # Exploring takes the budget, shrinking at most SHRINK_SHARE of it more; the rest
    # is start-up and building the findings (slow on a busy machine).
    assert result.duration < 4 * (1 + SHRINK_SHARE) + 15, result.duration


def test_a_shrink_past_its_deadline_keeps_the_unshrunk_finding(tmp_path: Path) -> None:
    import threading
    import time

    import numpy as np

    from verifier.explore import _case_signatures, _Config, _shrink
    from verifier.hosts import open_host
    from verifier.parsing import parse
    from verifier.strategies import Case

    with open_host(_mutant(tmp_path, "exp_grad_uses_input"), timeout=10) as host:
        found, _ = _case_signatures(host, Case(parse("x0 * exp(x0 + x1)"), np.array([[0.5, 1.5]])), oracles=False)
        [occurrence] = found
        occurrence.shard = occurrence.index = 0
        config = _Config(None, ("add", "mul", "exp"), 0, 10.0, 8, 8, None)
        finding = _shrink(host, config, occurrence, [], threading.Event(), deadline=time.time() - 1)
    assert finding is not None and finding.kind == "gradient" and finding.blame.op == "exp"
    assert not finding.shrunk and finding.expression == "x0 * exp(x0 + x1)"


def test_nothing_judged_is_never_ok(tmp_path: Path) -> None:
    # The budget runs out while the sandbox starts: no example is judged.
    result = check_engine(_mutant(tmp_path, "exp_grad_uses_input"), examples=1000, time_budget=0.01)
    assert result.examples == 0 and result.stopped == "time-budget"
    assert not result.ok
    assert result.unjudged == "nothing was judged: the time budget ran out before the first example"
    assert result.to_dict()["nothing_judged"] == result.unjudged
    judged = check_engine("engine:Value", examples=5)
    assert judged.ok and judged.unjudged == "" and "nothing_judged" not in judged.to_dict()


def test_student_engine_with_none_and_infinite_recursion_reports_both() -> None:
    result = check_engine(f"{ENGINES / 'student.py'}:Value", examples=300, timeout=2)
    found = {(f.kind, f.blame.op) for f in result.findings}
    assert ("invalid", "mul") in found, found
    assert ("exception", "sub") in found, found
    assert result.stopped == "completed" and result.examples == 300


@pytest.mark.parametrize(("engine", "kind", "op"), [
    ("hostile_exit.py", "crash", "sin"),
    ("hostile_segfault.py", "crash", "cos"),
    ("hostile_hang.py", "timeout", "sqrt"),
])
def test_crashes_and_hangs_become_findings_and_the_campaign_goes_on(engine: str, kind: str, op: str) -> None:
    result = check_engine(f"{ENGINES / engine}:Value", examples=200, timeout=2)
    assert result.stopped == "completed" and result.examples == 200
    matches = [f for f in result.findings if f.kind == kind and f.blame.op == op]
    assert matches, [(f.kind, f.blame.op) for f in result.findings]
    assert matches[0].expression == f"{op}(x0)"  # reduced to the op alone
    assert op in result.quarantined
    # Nothing else is wrong with these engines.
    assert all(f.blame.op == op for f in result.findings)


def test_hostile_strings_are_kept_as_data() -> None:
    result = check_engine(f"{ENGINES / 'hostile_strings.py'}:Value", examples=100)
    [finding] = [f for f in result.findings if f.blame.op == "log"]
    assert "<script>" in finding.message  # kept verbatim; escaping is the report's job


def test_json_contract_fields(tmp_path: Path) -> None:
    data = check_engine(_mutant(tmp_path, "tanh_grad_float32"), examples=100).to_dict()
    for key in ("engine", "seed", "examples", "ops", "discrepancies", "warnings"):
        assert key in data
    [d] = [d for d in data["discrepancies"] if d["blame"]["op"] == "tanh"]
    for key in ("kind", "expression", "point", "blame", "oracles"):
        assert key in d
    assert d["blame"]["backend"] == "engine"
    assert set(d["point"]) == set(d["variables"])
    assert {"reference", "engine", "sympy", "torch", "numeric"} <= set(d["oracles"])
    from verifier.parsing import parse

    parse(d["expression"])  # re-parsable


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"examples": 0}, "examples=0"),
    ({"seed": -1}, "seed=-1"),
    ({"timeout": 0}, "timeout=0"),
    ({"workers": 0}, "workers=0"),
    ({"ops": "foo"}, "unknown op 'foo'"),
    ({"ops": "exp"}, "supports none of the ops"),
])
def test_bad_arguments_say_what_is_wrong(kwargs: dict, message: str) -> None:
    engine = "micrograd.engine:Value" if kwargs.get("ops") == "exp" else "engine:Value"
    with pytest.raises(ValueError, match=message):
        check_engine(engine, **kwargs)


def test_a_class_that_cannot_be_reimported_is_shipped_to_a_sandbox() -> None:
    from engine import Value
    from verifier.hosts import InProcess, Sandbox, open_host

    class Local(Value):  # defined here: a sandbox could not import it, so it is shipped
        pass

    host = open_host(Local)
    try:
        assert isinstance(host, Sandbox)
    finally:
        host.close()
    assert isinstance(open_host(Local, isolate=False), InProcess)
    result = check_engine(Local, examples=30)
    assert result.ok and result.examples == 30


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_campaign_even_when_the_interrupt_is_swallowed(workers: int) -> None:
    # Python prints and drops a KeyboardInterrupt raised inside a gc callback
    # (Hypothesis has one), as does a bare `except:`; this progress callback drops it too.
    import signal

    def progress(done: int, total: int) -> None:
        if done >= 50:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist workers ignore SIGINT
    try:
        result = check_engine("engine:Value", examples=100_000, workers=workers, progress=progress)
    finally:
        restored = signal.signal(signal.SIGINT, previous)
    assert result.stopped == "interrupted"
    assert 50 <= result.examples < 100_000
    assert restored is signal.default_int_handler  # the campaign put the handler back
