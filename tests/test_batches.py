"""Judging cases in batches: the same numbers and findings as one case at a time,
a crash or hang mid-batch cut short at that case, and batches that shrink to the
case that fails."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from verifier import numeric, torch_oracle
from verifier.evaluate import judge_case, judge_cases
from verifier.expr import compile_program, merge
from verifier.hosts import EngineCrash, EngineTimeout, InProcess, Sandbox
from verifier.parsing import parse
from verifier.reference import sweep, sweep_many
from verifier.strategies import case_batches, cases

ENGINES = Path(__file__).parent / "engines"
PROGRAMS = [compile_program(parse(text)) for text in ("x * y", "log(x)", "sqrt(x) + sin(x)", "tanh(x - y) / z")]


def _generated(count: int, seed: int = 3) -> list:
    drawn: list = []

    def keep(case) -> bool:
        drawn.append(case)
        return False

    try:
        find(cases(max_leaves=8, count=8), keep, random=random.Random(seed),
             settings=settings(max_examples=count, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        pass
    return drawn


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_merged_programs_keep_their_own_nodes_variables_and_outputs() -> None:
    m = merge(PROGRAMS[:2])
    assert m.program.variables == ("0:x", "0:y", "1:x")
    assert m.outputs == (2, 4) and m.starts == (0, 3, 5)
    assert m.program.args[4] == (3,) and m.program.params[3] == 2  # log reads its own x: variable 2


def test_batched_sweep_and_oracles_give_the_numbers_of_one_call_per_program() -> None:
    drawn = _generated(300)
    programs, points = [compile_program(c.expr) for c in drawn], [c.points for c in drawn]
    for start in range(0, len(drawn), 16):
        some, at = programs[start:start + 16], points[start:start + 16]
        for program, grid, many, torch_many, fd_many in zip(
                some, at, sweep_many(some, at), torch_oracle.evaluate_many(some, at),
                numeric.central_differences_many(some, at, [sweep(p, g).value_floor for p, g in zip(some, at)])):
            one = sweep(program, grid)
            for name in ("value", "value_floor", "gradient", "gradient_floor", "clean", "outside"):
                assert _same(getattr(one, name), getattr(many, name)), (str(program), name)
            torch_one = torch_oracle.evaluate(program, grid)
            assert _same(torch_one.value, torch_many.value) and _same(torch_one.gradient, torch_many.gradient)
            fd_one = numeric.central_differences(program, grid)
            assert _same(fd_one.gradient, fd_many.gradient) and _same(fd_one.estimate, fd_many.estimate)


def test_batched_judging_reports_what_judging_one_case_at_a_time_reports() -> None:
    from engine import Value

    host = InProcess(Value)
    drawn = _generated(60, seed=5)
    programs, points = [compile_program(c.expr) for c in drawn], [c.points for c in drawn]
    for one, report in zip((judge_case(host, p, g) for p, g in zip(programs, points)), judge_cases(host, programs, points)):
        assert (one.counts, one.judged, one.notes) == (report.counts, report.judged, report.notes)
        assert (one.error is None, one.warning is None) == (report.error is None, report.warning is None)


def test_a_crash_mid_batch_ends_the_batch_at_that_case_and_the_sandbox_starts_again() -> None:
    jobs = [(PROGRAMS[0], [[1.0, 2.0]]), (compile_program(parse("sin(x)")), [[1.0]]), (PROGRAMS[0], [[3.0, 4.0]])]
    with Sandbox(f"{ENGINES / 'hostile_exit.py'}:Value", timeout=10) as host:
        first, crash = host.run_batch(jobs)  # the third case is not run
        assert first[0].value == 2.0 and isinstance(crash, EngineCrash)
        assert host.run(*jobs[2])[0].value == 12.0 and host.restarts == 1
        reports = judge_cases(host, [program for program, _ in jobs], [grid for _, grid in jobs])
    assert len(reports) == 2 and reports[0].crash is None and reports[1].crash[0] == "crash"


def test_a_hang_mid_batch_costs_one_timeout_not_one_per_case_left() -> None:
    sqrt = compile_program(parse("sqrt(x)"))
    jobs = [(PROGRAMS[0], [[1.0, 2.0]]), (sqrt, [[4.0]]), (sqrt, [[9.0]])]
    with Sandbox(f"{ENGINES / 'hostile_hang.py'}:Value", timeout=1.5) as host:
        start = time.monotonic()
        answers = host.run_batch(jobs)
        assert time.monotonic() - start < 3.0
        assert answers[0][0].gradient == (2.0, 1.0) and isinstance(answers[1], EngineTimeout) and len(answers) == 2


def test_a_batch_holds_distinct_cases_and_shrinks_to_the_one_that_fails() -> None:
    sizes: list[int] = []
    distinct: list[bool] = []

    def has_log_below_zero(batch) -> bool:
        sizes.append(len(batch))
        distinct.append(len({c.source for c in batch}) == len(batch))
        # Not in Hypothesis's first, small examples: found in a big batch.
        return len(sizes) > 40 and any("log" in str(c.expr) and (c.points < 0).any() for c in batch)

    batch = find(case_batches(ops=["log", "add", "mul"], size=8), has_log_below_zero, random=random.Random(1),
                 settings=settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck)))
    assert max(sizes) > 8 and all(distinct)  # several cases per example, never one twice
    assert len(batch) == 1 and "log" in str(batch[0].expr) and (batch[0].points < 0).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_batches_repeat_few_cases(seed: int) -> None:
    """Without unique lists Hypothesis's mutator copied cases inside a batch: 60%
    of a campaign's cases were repeats."""
    drawn: list = []

    def keep(batch) -> bool:
        drawn.extend(batch)
        return False

    try:
        find(case_batches(), keep, random=random.Random(seed),
             settings=settings(max_examples=100, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        pass
    distinct = {(str(c.expr), c.points.tobytes()) for c in drawn}
    assert len(drawn) > 500 and len(distinct) >= 0.95 * len(drawn)


def test_a_shard_judges_each_case_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis draws some chunks again in later examples (8% of a shard's cases
    were repeats); a shard judges a case it has seen once."""
    import threading

    from engine import Value
    from verifier import explore

    judged: list[list[bytes]] = []
    real = explore._batch_signatures

    def recording(host, batch, oracles, prefer=None):
        judged[-1].extend(case.source for case in batch)
        return real(host, batch, oracles, prefer)

    monkeypatch.setattr(explore, "_batch_signatures", recording)
    config = explore._Config(None, ("add", "mul", "tanh", "exp"), 0, 10.0, 8, 8, None)
    for shard in range(4):
        judged.append([])
        result = explore._explore(InProcess(Value), config, shard, 1000, threading.Event())
        assert result.examples == len(judged[-1]) == 100
        assert len(set(judged[-1])) == 100
