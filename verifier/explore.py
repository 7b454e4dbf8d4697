"""Exploring and shrinking: the Hypothesis driver of a campaign
(:func:`verifier.campaign.check_engine`).

The examples are split into fixed shards, each explored by Hypothesis from its own
seed (derived from the campaign's seed), so a run is the same whether its shards
run one after another or on N workers. Each Hypothesis example is a batch of cases
(:func:`verifier.strategies.case_batches`); a shard judges each case once, all of
them together (:func:`verifier.evaluate.judge_cases`: each oracle evaluates them side
by side, at a fraction of the cost per case). Exploring records the first case of every
distinct finding (its *signature*: kind, backend, blamed op). Then each signature
is shrunk once: Hypothesis starts from that case's own bytes (seeded by its shard,
so the same everywhere) and shrinks it to the smallest expression and simplest
numbers that still show the same signature. Crashes and hangs are not
shrunk that way (each try costs a restart or a timeout): the op that crashes or
hangs alone is the reproducer, and later cases using it are skipped in that shard.

An engine that answers one case two ways (beyond rounding noise) is a
``nondeterministic`` finding, blamed on the op that also wavers alone, or on the
backward pass; it is not shrunk (each try would be a coin toss). If shrinking fails
in any way (Hypothesis finds the engine flaky, the judge chokes), the finding is
kept as first seen; a finding that no longer shows when its report is built is
nondeterministic too: nothing found is dropped.

Example:
    >>> import threading
    >>> from engine import Value
    >>> from verifier.hosts import InProcess
    >>> config = _Config(None, ("add", "mul"), 0, 10.0, 4, 2, None)
    >>> result = _explore(InProcess(Value), config, 0, 5, threading.Event())
    >>> result.examples, result.occurrences
    (5, {})
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, find, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes
from hypothesis.errors import NoSuchExample, Unsatisfiable

from verifier.blame import blame_engine
from verifier.evaluate import judge_cases
from verifier.evidence import build_finding
from verifier.expr import Program, compile_program, from_program
from verifier.findings import Blame, Finding, OracleReport, jsonable
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import format_point, worst
from verifier.ops import OPS
from verifier.parsing import parse
from verifier.reference import exact
from verifier.run_engine import EngineOutcome
from verifier.second_blame import blame_higher
from verifier.second_evidence import with_section
from verifier.second_order import HIGHER_KINDS, Checks, set_checks
from verifier.strategies import Case, case_batches, cases
from verifier.unsteady import answer, answer_in, answer_text, differ, unsteady_blame

SHARD_SIZE = 100
BATCH_SIZE = 8  # a Hypothesis example is up to 4 chunks of 8 cases
SHRINK_CALLS = 400  # predicate calls a shrink may spend before settling for the best so far

Signature = tuple[str, str, Any, str]  # kind, backend, blamed op, severity


class _Stop(BaseException):
    """Stop exploring (time budget, Ctrl-C, shrink allowance). BaseException so that
    Hypothesis does not take it for a failure of the predicate."""


class _Done(BaseException):
    """A shard has explored its quota of cases."""


@dataclass(frozen=True)
class _Config:
    target: Any  # what starts the engine's sandbox again: a target string or a shipped class
    ops: tuple[str, ...]
    seed: int
    timeout: float
    max_leaves: int
    count: int
    deadline: float | None
    quarantined: frozenset[str] = frozenset()  # ops that crash or hang alone: never generated
    budget: float | None = None  # the time budget, in seconds (it also bounds shrinking)
    definitions: tuple[dict, ...] = ()  # defined ops (OpDefinition.to_json): workers define them again
    number_format: str = "float64"  # the engine's (verifier.formats): workers judge in it too
    order: int = 1  # 2: Hessians are checked too (verifier.second_order)
    forward: bool = False  # forward-mode tangents are checked too


@dataclass
class _Occurrence:
    signature: Signature
    severity: str
    shard: int
    index: int
    expression: str
    points: list[list[float]]
    point: int
    blame: Blame
    crash: tuple[str, str] | None = None
    extra_verdicts: tuple = ()
    outcome: EngineOutcome | None = None  # the engine's answer at points[point] (judge findings)
    answers: tuple = ()  # the two answers of a nondeterministic case
    source: bytes = b""  # its case's bytes (verifier.strategies.Case.source): where shrinking starts


@dataclass
class _ShardResult:
    shard: int
    examples: int = 0
    skipped: int = 0
    counts: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    judged: Counter = field(default_factory=Counter)  # ("value" | "partial", "judged" | why not)
    occurrences: dict = field(default_factory=dict)
    seen: Counter = field(default_factory=Counter)  # signature -> examples that showed it
    quarantine: list = field(default_factory=list)  # (index, op) from crashes and hangs
    stopped: str = ""


# -- signatures --------------------------------------------------------------

def _case_signatures(host: Any, case: Case, oracles: bool, prefer: str | None = None) -> tuple[list[_Occurrence], Any]:
    """Every distinct signature one case shows (error, warning, crash, oracle).

    ``prefer`` names the op to check first when blaming (the op of the finding being
    shrunk): blaming stops at the first op that is wrong alone.
    """
    return _batch_signatures(host, [case], oracles, prefer)[0]


def _batch_signatures(host: Any, batch: Sequence[Case], oracles: bool, prefer: str | None = None) -> list[tuple[list[_Occurrence], Any]]:
    """:func:`_case_signatures` of the cases of a batch, judged together, in order, up
    to and including the first that crashes or hangs the engine (the rest are not run)."""
    reports = judge_cases(host, [compile_program(c.expr) for c in batch], [c.points for c in batch], oracles=oracles)
    return [(_signatures(host, case, report, prefer), report) for case, report in zip(batch, reports)]


def _signatures(host: Any, case: Case, report: Any, prefer: str | None) -> list[_Occurrence]:
    """The signatures in one case's report (blaming each)."""
    if report.crash is None and report.error is None and report.warning is None and report.oracle is None:
        return []  # the usual case
    program = compile_program(case.expr)
    found: list[_Occurrence] = []
    text = str(case.expr)
    points = case.points.tolist()
    if report.crash:
        kind = report.crash[0]
        index = _culprit(host, program, case.points)
        point = case.points[index]
        blame = blame_engine(host, program, point, None, exact(program, point).node_values, prefer=prefer)
        found.append(_Occurrence((kind, "engine", blame.op, "error"), "error", -1, -1, text, points, index, blame, report.crash))
        return found
    for judgement, severity in ((report.error, "error"), (report.warning, "warning")):
        if judgement is None:
            continue
        point = case.points[judgement.index]
        verdict = worst(judgement.verdicts)
        node = verdict.node if verdict.node is not None else judgement.truth.node
        if verdict.kind in HIGHER_KINDS:
            blame = blame_higher(host, program, point, verdict.kind, judgement.truth.node_values, prefer)
            found.append(_Occurrence((verdict.kind, "engine", blame.op, severity), severity, -1, -1, text, points, judgement.index,
                                     blame, extra_verdicts=tuple(judgement.verdicts), outcome=judgement.outcome))
            continue
        if verdict.cause == "domain" and node is not None:
            # The op whose engine input left its domain (recorded by the judge).
            op = program.ops[node]
            blame = Blame("engine", op, "", f"{op} is outside its domain here: {judgement.truth.detail}", node)
        else:
            try:
                [outcome] = host.run(program, [point], record=True)
            except (EngineCrash, EngineTimeout):
                outcome = judgement.outcome
            if differ(judgement.outcome, outcome, judgement.truth.value_floor, judgement.truth.gradient_floor):
                # Asked twice, answered two ways: whatever the verdict, it cannot be
                # reproduced, so that is the finding (and shrinking it would be flaky).
                blame = unsteady_blame(host, program, point, judgement.truth.node_values)
                found.append(_Occurrence(("nondeterministic", "engine", blame.op, "error"), "error", -1, -1, text, points,
                                         judgement.index, blame, outcome=judgement.outcome, answers=(judgement.outcome, outcome)))
                continue
            blame = blame_engine(host, program, point, outcome, judgement.truth.node_values, severity, prefer)
        found.append(_Occurrence((verdict.kind, "engine", blame.op, severity), severity, -1, -1, text, points, judgement.index, blame,
                                 outcome=judgement.outcome))
    if report.oracle is not None:
        verdict = worst(report.oracle.verdicts)
        blame = Blame("torch", None, "", "torch disagrees with the exact reference")
        found.append(_Occurrence((verdict.kind, "torch", None, "warning"), "warning", -1, -1, text, points, report.oracle.index, blame,
                                 extra_verdicts=tuple(report.oracle.verdicts)))
    return found


def _culprit(host: Any, program: Program, points: np.ndarray) -> int:
    """The point of a batch that crashes or hangs the engine, by bisection (a few
    runs, not one per point: each hang costs a timeout)."""
    low, high = 0, len(points)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            host.run(program, points[low:middle])
        except (EngineCrash, EngineTimeout):
            high = middle
            continue
        low = middle
    return low


def _uses(case: Case, ops: set[str]) -> bool:
    return any(node.op in ops for node in case.expr.nodes())


def _hypothesis(max_examples: int, phases: Sequence[Phase] = (Phase.generate,), database: Any = None) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=max(1, max_examples), database=database, deadline=None, derandomize=False, phases=phases,
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
    )


def _shard_seed(seed: int, shard: int) -> int:
    return (seed * 1_000_003 + shard * 7919) % (2**32)


def _shard_examples(requested: int, shard: int) -> int:
    return min(SHARD_SIZE, requested - shard * SHARD_SIZE)


# -- exploring (in the main process or in workers) ----------------------------------

def _stop_requested(config: _Config, stop: Any) -> bool:
    """Ctrl-C (``stop``: the parent's flag, or the workers' shared event) or the time budget."""
    return stop.is_set() or (config.deadline is not None and time.time() > config.deadline)


def _explore(host: Any, config: _Config, shard: int, requested: int, stop: Any, tick: Callable[[], None] | None = None) -> _ShardResult:
    set_checks(Checks(config.order, config.forward))  # in a worker process too
    result = _ShardResult(shard)
    quarantined: set[str] = set(config.quarantined)

    quota = _shard_examples(requested, shard)

    pending: list[Case] = []  # drawn, not yet judged
    drawn: set[bytes] = set()  # every case's bytes: Hypothesis draws some cases again

    def judge_pending() -> None:
        todo = [(result.examples + k, case) for k, case in enumerate(pending)]
        result.examples += len(pending)
        pending.clear()
        for _ in todo if tick is not None else ():
            tick()
        while todo:
            if quarantined:  # a crash or hang earlier in this batch may have added to it
                result.skipped += sum(_uses(case, quarantined) for _, case in todo)
                todo = [(index, case) for index, case in todo if not _uses(case, quarantined)]
            judged = _batch_signatures(host, [case for _, case in todo], oracles=True) if todo else []
            for (index, case), (found, report) in zip(todo, judged):
                _record(result, quarantined, shard, index, case.source, found, report)
            todo = todo[len(judged):]

    def predicate(batch: list[Case]) -> bool:
        if _stop_requested(config, stop):
            raise _Stop()
        fresh = [case for case in batch if case.source not in drawn][: quota - result.examples - len(pending)]
        drawn.update(case.source for case in fresh)
        pending.extend(fresh)
        # The shard's cases are judged together once its quota is drawn (across
        # Hypothesis examples): the oracles cost less per case the more they see at once.
        if result.examples + len(pending) >= quota:
            judge_pending()
        if result.examples >= quota:
            raise _Done()
        return False

    strategy = case_batches(ops=config.ops, max_leaves=config.max_leaves, count=config.count, size=BATCH_SIZE)
    try:
        # The quota ends the shard (_Done), unless the space of cases runs out first.
        # Hypothesis draws its first tenth of max_examples small (one chunk, mostly
        # zero bytes: a case or two); a batch holds about 14 cases, so a quarter of
        # a large quota is plenty.
        find(strategy, predicate, settings=_hypothesis(max(min(quota, 40), quota // 4)), random=random.Random(_shard_seed(config.seed, shard)))
    except (NoSuchExample, Unsatisfiable, _Done):
        judge_pending()  # the space of cases ran out first
    except _Stop:
        result.stopped = "interrupted" if stop.is_set() else "time-budget"
    except KeyboardInterrupt:
        result.stopped = "interrupted"
    return result


def _record(result: _ShardResult, quarantined: set[str], shard: int, index: int, source: bytes, found: list[_Occurrence],
            report: Any) -> None:
    """Count one judged case, and keep the first occurrence of each signature."""
    result.counts.update(report.counts)
    result.judged.update(getattr(report, "judged", None) or {})
    result.notes.update(report.notes)
    for occurrence in found:
        result.seen[occurrence.signature] += 1
        if occurrence.signature in result.occurrences:
            continue
        occurrence.shard, occurrence.index, occurrence.source = shard, index, source
        result.occurrences[occurrence.signature] = occurrence
        if occurrence.crash and occurrence.blame.op in OPS:
            # An op that crashes or hangs would cost a restart or a timeout in
            # every later case: skip the cases that use it, in this shard.
            quarantined.add(occurrence.blame.op)
            result.quarantine.append((index, occurrence.blame.op))


def _merge(results: Sequence[_ShardResult]) -> tuple[dict[Signature, _Occurrence], Counter, Counter]:
    first: dict[Signature, _Occurrence] = {}
    counts: Counter = Counter()
    notes: Counter = Counter()
    for result in sorted(results, key=lambda r: r.shard):
        counts.update(result.counts)
        notes.update(result.notes)
        for signature, occurrence in result.occurrences.items():
            if signature not in first:
                first[signature] = occurrence
    return first, counts, notes


# -- shrinking --------------------------------------------------------------------

def _size(case: Case) -> tuple:
    with np.errstate(over="ignore"):  # points near the largest float sum to inf: still an order
        return (len(compile_program(case.expr)), len(str(case.expr)), float(np.abs(case.points).sum()))


def _shrink(host: Any, config: _Config, occurrence: _Occurrence, quarantine: Sequence[tuple[int, str]], stop: Any,
            deadline: float | None = None) -> Finding | None:
    """The smallest case with the occurrence's signature, as a full finding; the
    finding as first seen if shrinking fails in any way (a flaky engine makes
    Hypothesis raise) or ``deadline`` (``time.time()``) passes first."""
    if occurrence.crash is not None:
        return _crash_finding(host, occurrence)
    if occurrence.answers:
        return _unsteady_finding(host, occurrence)  # every try would be a coin toss
    try:
        shrunk = _shrunk(host, config, occurrence, quarantine, stop, deadline)
    except Exception:  # noqa: BLE001 - FlakyFailure, or the judge failing on a strange answer: keep what was found
        shrunk = None
    return shrunk if shrunk is not None else _unshrunk(host, occurrence)


def _unshrunk(host: Any, occurrence: _Occurrence) -> Finding | None:
    """The finding as first seen (no time to shrink it)."""
    if occurrence.crash:
        return _crash_finding(host, occurrence)
    if occurrence.answers:
        return _unsteady_finding(host, occurrence)
    return _finding_of(host, occurrence, occurrence, False)


def _past(deadline: float | None, stop: Any) -> bool:
    return stop.is_set() or (deadline is not None and time.time() > deadline)


def _shrunk(host: Any, config: _Config, occurrence: _Occurrence, quarantine: Sequence[tuple[int, str]], stop: Any,
            deadline: float | None) -> Finding | None:
    """The shrunk finding, or None if shrinking found nothing in time.

    Hypothesis shrinks the failing case itself (a case on its own, as
    :func:`verifier.strategies.cases` draws it), starting from its bytes: they are the
    one example in the database it reuses.
    """
    if not occurrence.source:
        return None
    best: list[Any] = [None]
    calls = [0]
    wanted = occurrence.signature

    def predicate(case: Case) -> bool:
        calls[0] += 1
        if _past(deadline, stop) or (best[0] is not None and calls[0] > SHRINK_CALLS):
            raise _Stop()
        # The ops the shard had quarantined by then (all of them, once it shows).
        skip = {op for at, op in quarantine if at < occurrence.index} if best[0] is None else {op for _, op in quarantine}
        skip |= config.quarantined
        if skip and _uses(case, skip):
            return False
        found, _ = _case_signatures(host, case, oracles=wanted[1] != "engine", prefer=wanted[2])
        match = next((o for o in found if o.signature == wanted), None)
        if match is not None and (best[0] is None or _size(case) < _size(best[0][0])):
            best[0] = (case, match)
        return match is not None

    strategy = cases(ops=config.ops, max_leaves=config.max_leaves, count=config.count)
    try:
        _shrink_from(strategy, occurrence.source, predicate, _shard_seed(config.seed, occurrence.shard))
    except _Stop:
        pass
    if best[0] is None:
        return None
    case, match = best[0]
    return _finding_of(host, occurrence, _simplify(host, match, lambda: _past(deadline, stop)), shrunk=True)


class _Shown(Exception):
    """The case shows the signature being shrunk (Hypothesis shrinks a failing test)."""


def _shrink_from(strategy: Any, source: bytes, predicate: Callable[[Any], bool], seed_value: int) -> None:
    """Let Hypothesis shrink the value ``strategy`` decodes from the bytes ``source``
    while ``predicate`` holds.

    Hypothesis reuses the examples of its database, and shrinks the ones that still
    fail: the case goes in as its one example (as a "secondary" one, an example not
    yet minimal, which Hypothesis shrinks; a primary one it would take as already
    shrunk). ``seed`` fixes the shrinker's own random choices, so that a finding
    shrinks the same in every run; ``settings`` is applied over it because ``seed``
    alone turns the database off.
    """
    database = InMemoryExampleDatabase()
    database.save(_SHRINK_KEY + b".secondary", choices_to_bytes((source,)))

    @hypothesis_settings(_hypothesis(1, (Phase.reuse, Phase.shrink), database), verbosity=Verbosity.quiet)
    @seed(seed_value)
    @given(strategy)
    def shrink(value: Any) -> None:
        if predicate(value):
            raise _Shown

    shrink._hypothesis_internal_database_key = _SHRINK_KEY  # type: ignore[attr-defined] # as hypothesis.find sets it
    try:
        shrink()
    except _Shown:
        pass


_SHRINK_KEY = b"crossgrad-shrink"


# Candidate coordinates, simplest first.
_SIMPLER = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 10.0, -10.0)


def _candidates(x: float) -> list[float]:
    """Simpler numbers to try in place of ``x``: small integers and halves, then ``x``
    rounded to 1, 2 and 3 significant digits."""
    simple = list(_SIMPLER[: _SIMPLER.index(x)]) if x in _SIMPLER else list(_SIMPLER)
    rounded: list[float] = []
    for digits in (1, 2, 3):
        r = float(f"{x:.{digits}g}")
        if r != x and r not in rounded and r not in simple:
            rounded.append(r)
    return simple + rounded


def _renamed(expression: str) -> tuple[str, dict[str, str]]:
    """The same expression over x0, x1, ... (Hypothesis may have settled on x2)."""
    program = compile_program(parse(expression))
    names = {old: f"x{i}" for i, old in enumerate(program.variables)}
    renamed = Program(tuple(names.values()), program.ops, program.args, program.params)
    return str(from_program(renamed)), names


def _simplify(host: Any, match: _Occurrence, late: Callable[[], bool] = lambda: False) -> _Occurrence:
    """Polish a shrunk finding: variables renamed x0, x1, ...; each coordinate of the
    failing point replaced by the simplest number that keeps the same signature
    (until ``late()``)."""
    expression, _ = _renamed(match.expression)
    point = [float(x) for x in match.points[match.point]]
    blame = match.blame
    if blame.form and blame.form_point and blame.form != expression:
        # The op alone, where blame saw it fail, is smaller than anything shrinking
        # found, if it shows the same signature.
        alone, _ = _renamed(blame.form)
        found, _ = _case_signatures(host, Case(parse(alone), np.array([blame.form_point])), oracles=False, prefer=match.signature[2])
        same = next((o for o in found if o.signature == match.signature), None)
        if same is not None:
            expression, point, match = alone, list(blame.form_point), same
    expr = parse(expression)
    best = match
    for k in range(len(point)):
        for candidate in _candidates(point[k]):
            if late():
                break
            trial = point.copy()
            trial[k] = candidate
            found, _ = _case_signatures(host, Case(expr, np.array([trial])), oracles=match.signature[1] != "engine", prefer=match.signature[2])
            same = next((o for o in found if o.signature == match.signature), None)
            if same is not None:
                point, best = trial, same
                break
    if best is match:
        found, _ = _case_signatures(host, Case(expr, np.array([point])), oracles=match.signature[1] != "engine", prefer=match.signature[2])
        best = next((o for o in found if o.signature == match.signature), match)
    return best


def _finding_of(host: Any, first: _Occurrence, match: _Occurrence, shrunk: bool) -> Finding | None:
    """The full finding for ``match``. Never None for a finding about the engine: if
    the case now judges clean, or now answers otherwise, it is nondeterministic."""
    program = compile_program(parse(match.expression))
    point = match.points[match.point]
    finding = build_finding(
        host, program, point, blame=match.blame, shrunk=shrunk,
        original=first.expression if shrunk and first.expression != match.expression else "",
        who=match.signature[1], verdicts=match.extra_verdicts or None,
    )
    if finding is not None and match.signature[0] in HIGHER_KINDS:
        finding = with_section(host, program, point, finding, match.extra_verdicts)
    if match.outcome is None or match.signature[1] != "engine":
        return finding
    again = answer_in(finding) if finding is not None else answer(host, program, point)
    floors = (finding.value_floor, finding.gradient_floor) if finding is not None else (math.nan, None)
    if finding is None or differ(match.outcome, again, *floors):
        truth = exact(program, point)
        blame = unsteady_blame(host, program, point, truth.node_values)
        return _unsteady_finding(host, replace(match, answers=(match.outcome, again), blame=blame))
    return finding


def _crash_finding(host: Any, occurrence: _Occurrence) -> Finding | None:
    """A crash or hang, reduced to the op that crashes alone when there is one."""
    blame = occurrence.blame
    if blame.form and blame.form_point:
        program = compile_program(parse(_renamed(blame.form)[0]))
        point = blame.form_point
        original = occurrence.expression if occurrence.expression != blame.form else ""
    else:
        program = compile_program(parse(occurrence.expression))
        point = occurrence.points[occurrence.point]
        original = ""
    return build_finding(host, program, point, crash=occurrence.crash, blame=blame, shrunk=False, original=original)


# -- nondeterminism -----------------------------------------------------------------

def _unsteady_finding(host: Any, occurrence: _Occurrence) -> Finding | None:
    """A ``nondeterministic`` finding: both answers of the case, and, where one op
    wavers alone, that op alone as the minimal reproducer (it is not shrunk: every
    try would be a coin toss)."""
    program = compile_program(parse(occurrence.expression))
    point = occurrence.points[occurrence.point]
    first, second = occurrence.answers
    message = (f"the same case answered two ways at {format_point(program.variables, point)}: "
               f"first {answer_text(first)}; then {answer_text(second)}")
    blame, original = occurrence.blame, ""
    if blame.op in OPS and blame.form and blame.form_point:
        original = f"{occurrence.expression} at {format_point(program.variables, point)}"
        text, _ = _renamed(blame.form)
        program, point = compile_program(parse(text)), blame.form_point
        message = f"{blame.reason}; first seen as {original}: first {answer_text(first)}, then {answer_text(second)}"
    finding = build_finding(host, program, point, crash=("nondeterministic", message), blame=blame,
                            shrunk=bool(original), original=original)
    if finding is None:
        return None
    # The engine's row shows an answer (a "nondeterministic" status is none): the
    # first one, or one of the op alone.
    shown = answer(host, program, point) if original else first
    if shown is not None:
        rows = tuple(OracleReport("engine", shown.status, shown.value, shown.gradient, shown.error)
                     if o.name == "engine" else o for o in finding.oracles)
        finding = replace(finding, oracles=rows)
    answers = [None if a is None else {"status": a.status, "value": a.value, "gradient": a.gradient, "error": a.error}
               for a in (first, second)]
    return replace(finding, extra={**finding.extra, "answers": jsonable(answers)})
