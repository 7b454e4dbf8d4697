"""``check_engine``: a Hypothesis-driven campaign against an engine.

The examples are split into fixed shards, each explored by Hypothesis from its own
seed (derived from the campaign's seed), so a run is the same whether its shards
run one after another or on N workers. Exploring records the first case of every
distinct finding (its *signature*: kind, backend, blamed op). Then each signature
is shrunk once: Hypothesis replays its shard up to that case (same seed, same
answers, so the same examples) and shrinks it to the smallest expression and
simplest numbers that still show the same signature. Crashes and hangs are not
shrunk that way (each try costs a restart or a timeout): the op that crashes or
hangs alone is the reproducer, and later cases using it are skipped in that shard.

An engine that answers one case two ways (beyond rounding noise) is a
``nondeterministic`` finding, blamed on the op that also wavers alone, or on the
backward pass; it is not shrunk (each try would be a coin toss). If shrinking fails
in any way (Hypothesis finds the engine flaky, the judge chokes), the finding is
kept as first seen; a finding that no longer shows when its report is built is
nondeterministic too: nothing found is dropped.

The engine runs in a sandbox process (:mod:`verifier.hosts`). A time budget stops
exploring, and shrinking then gets at most ``SHRINK_SHARE`` of the budget more;
Ctrl-C stops both. What was found is still reported, unshrunk if need be. A run
that judged nothing is not ``ok``, and says why.

Example:
    >>> result = check_engine("engine:Value", examples=20, seed=1)
    >>> result.ok, result.examples
    (True, 20)
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, find
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import NoSuchExample, Unsatisfiable

from verifier.blame import blame_engine
from verifier.evaluate import judge_case
from verifier.evidence import build_finding
from verifier.expr import Program, compile_program, from_program
from verifier.findings import Blame, Finding, OracleReport, jsonable
from verifier.hosts import EngineCrash, EngineTimeout, InProcess, Sandbox, open_host
from verifier.judge import KIND_ORDER, format_point, worst
from verifier.loader import absolute_target, target_of
from verifier.ops import OPS, op_names
from verifier.parsing import parse
from verifier.reference import exact
from verifier.run_engine import EngineOutcome
from verifier.strategies import Case, cases
from verifier.unsteady import answer, answer_in, answer_text, differ, unsteady_blame

__all__ = ["check_engine", "CampaignResult"]

SHARD_SIZE = 100
POINTS_PER_CASE = 8
MAX_LEAVES = 8
SHRINK_CALLS = 400  # predicate calls a shrink may spend before settling for the best so far
SHRINK_SHARE = 0.5  # with a time budget, shrinking may take this share of it more

Signature = tuple[str, str, Any, str]  # kind, backend, blamed op, severity


class _Stop(BaseException):
    """Stop exploring (time budget, Ctrl-C, shrink allowance). BaseException so that
    Hypothesis does not take it for a failure of the predicate."""


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


@dataclass(frozen=True)
class CampaignResult:
    """What a campaign found.

    Attributes:
        engine: the engine's target (``module:Class`` or ``file.py:Class``).
        seed, examples, requested: the seed, cases judged and cases asked for.
        ops: the ops exercised (the requested ones the engine supports).
        supported, missing: the engine's ops, and the table's ops it lacks.
        findings: error findings, shrunk and blamed (the JSON ``discrepancies``).
        warnings: the engine's warning findings (precision, robustness outside the
            domain).
        oracle_findings: where an oracle other than the engine (torch) disagreed with
            the exact reference: notes for researchers, never the engine's fault.
        quarantined: ops that crash or hang alone: reported once, then not generated.
        counts: judged points by class; notes: oracle limits seen.
        conventions: kink conventions, e.g. ``relu'(0) = 0``.
        duration: seconds; stopped: ``completed``, ``time-budget`` or ``interrupted``.
        unjudged: why nothing was judged ("" when something was): then the run is
            not ``ok``, whatever it found.
        judged: values and partials by whether they were judged, or why not:
            ``{"values": {"judged": n, ...}, "partials": {...}}`` (empty if the judge
            does not count them).
        occurrences: how many examples showed each signature ``(kind, backend,
            op, severity)`` while exploring (empty if not counted): the count of
            :meth:`summary_by_op`.

    In a notebook a result shows as the report's verdict, findings by op and
    finding cards; ``repr()`` is one line; :meth:`write_report` writes the HTML
    page (and its JSON) from Python.

    Example:
        >>> result = check_engine("engine:Value", examples=5, seed=1, ops="add")
        >>> result
        <CampaignResult engine:Value: no discrepancies in 5 examples (seed 1)>
    """

    engine: str
    seed: int
    examples: int
    requested: int
    ops: tuple[str, ...]
    supported: tuple[str, ...]
    missing: tuple[str, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    counts: dict[str, int]
    notes: dict[str, int]
    conventions: tuple[str, ...]
    duration: float
    stopped: str
    workers: int = 1
    skipped: int = 0
    oracle_findings: tuple[Finding, ...] = ()
    quarantined: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    unjudged: str = ""
    judged: dict[str, dict[str, int]] = field(default_factory=dict)
    occurrences: dict[tuple, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No error findings, and something was judged (a run that checked nothing
        proves nothing)."""
        return not self.findings and not self.unjudged

    def summary_by_op(self) -> list[tuple[str, str, str, int]]:
        """``(op, kind, severity, count)`` rows, one per finding signature; count is
        how many examples showed it while exploring (at least 1: a finding of the
        smoke test, or of an uncounted run, counts once)."""
        rows: Counter = Counter()
        for f in self.findings + self.warnings:
            shown = self.occurrences.get((f.kind, f.blame.backend, f.blame.op, f.severity), 0)
            rows[(f.blame.op or f.blame.backend, f.kind, f.severity)] += max(1, shown)
        return [(op, kind, sev, n) for (op, kind, sev), n in sorted(rows.items())]

    def __repr__(self) -> str:
        from verifier.display import plural

        tried = f"{plural(self.examples, 'example')} (seed {self.seed})"
        if self.unjudged:
            text = f"{self.unjudged} ({tried})"
        elif not self.findings:
            text = f"no discrepancies in {tried}"
        else:
            ops = dict.fromkeys(str(f.blame.op or f.blame.backend) for f in self.findings)
            text = f"{plural(len(self.findings), 'error')} in {tried}; at fault: {', '.join(ops)}"
        extra = [plural(n, word) for n, word in ((len(self.warnings), "warning"), (len(self.oracle_findings), "oracle note")) if n]
        stopped = "" if self.stopped == "completed" else f"; stopped early ({self.stopped})"
        return f"<CampaignResult {self.engine}: {text}{' (' + ', '.join(extra) + ')' if extra else ''}{stopped}>"

    def _repr_html_(self) -> str:
        """The report's verdict and findings by op, then each finding's card."""
        from verifier.display import result_html

        shown = self.findings + self.warnings + self.oracle_findings
        return result_html(self.to_dict(), repr(self), [(f.to_dict(), str(f)) for f in shown], engine=self.engine)

    def write_json(self, path: Any) -> Any:
        """Write the JSON report (what ``verifier check --json`` writes).

        Args:
            path: where (a str or a path); missing folders are made.

        Returns:
            The path written, a :class:`pathlib.Path`.
        """
        from reports import write_json

        return write_json(self.to_dict(), path)

    def write_report(self, path: Any, *, json_path: Any = None) -> Any:
        """Write the HTML report to ``path`` and the JSON report beside it (what
        ``verifier check --report`` writes).

        Args:
            path: the page, e.g. ``"report.html"`` (a str or a path).
            json_path: the JSON report (default: ``path`` with the suffix ``.json``),
                which the page's ``verifier replay`` lines name.

        Returns:
            The page's path, a :class:`pathlib.Path`.

        Example:
            >>> import tempfile, pathlib
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> result = check_engine("engine:Value", examples=5, seed=1, ops="add")
            >>> result.write_report(folder / "r.html").name, (folder / "r.json").exists()
            ('r.html', True)
        """
        from pathlib import Path

        from reports import write_html, write_json

        report = self.to_dict()
        target = Path(json_path) if json_path is not None else Path(path).with_suffix(".json")
        write_json(report, target)
        return write_html(report, path, json_path=target)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (see the README for the schema)."""
        from verifier import __version__

        return jsonable({
            "schema": "crossgrad-findings/1",
            "tool": {"name": "crossgrad", "version": __version__},
            "engine": self.engine,
            "seed": self.seed,
            "examples": self.examples,
            "examples_requested": self.requested,
            "ops": list(self.ops),
            "ops_supported": list(self.supported),
            "ops_missing": list(self.missing),
            "ops_quarantined": list(self.quarantined),
            "duration_s": round(self.duration, 3),
            "stopped": self.stopped,
            "workers": self.workers,
            "settings": self.settings,
            "summary": {
                "errors": len(self.findings),
                "warnings": len(self.warnings),
                "by_op": [{"op": op, "kind": kind, "severity": sev, "count": n} for op, kind, sev, n in self.summary_by_op()],
                "points": dict(self.counts),
                **({"judged": self.judged} if self.judged else {}),
                "oracle_notes": dict(self.notes),
                "skipped_examples": self.skipped,
            },
            "conventions": list(self.conventions),
            "discrepancies": [f.to_dict() for f in self.findings],
            "warnings": [f.to_dict() for f in self.warnings],
            "oracle_findings": [f.to_dict() for f in self.oracle_findings],
            # Only when it applies, so that every other report keeps its shape.
            **({"nothing_judged": self.unjudged} if self.unjudged else {}),
        })


# -- signatures --------------------------------------------------------------

def _case_signatures(host: Any, case: Case, oracles: bool, prefer: str | None = None) -> tuple[list[_Occurrence], Any]:
    """Every distinct signature one case shows (error, warning, crash, oracle).

    ``prefer`` names the op to check first when blaming (the op of the finding being
    shrunk): blaming stops at the first op that is wrong alone.
    """
    program = compile_program(case.expr)
    report = judge_case(host, program, case.points, oracles=oracles)
    found: list[_Occurrence] = []
    text = str(case.expr)
    points = case.points.tolist()
    if report.crash:
        kind = report.crash[0]
        index = _culprit(host, program, case.points)
        point = case.points[index]
        blame = blame_engine(host, program, point, None, exact(program, point).node_values, prefer=prefer)
        found.append(_Occurrence((kind, "engine", blame.op, "error"), "error", -1, -1, text, points, index, blame, report.crash))
        return found, report
    for judgement, severity in ((report.error, "error"), (report.warning, "warning")):
        if judgement is None:
            continue
        point = case.points[judgement.index]
        verdict = worst(judgement.verdicts)
        node = verdict.node if verdict.node is not None else judgement.truth.node
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
    return found, report


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


def _hypothesis(max_examples: int, shrink: bool) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=max(1, max_examples), database=None, deadline=None, derandomize=False,
        phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
    )


def _shard_seed(seed: int, shard: int) -> int:
    return (seed * 1_000_003 + shard * 7919) % (2**32)


def _shard_examples(requested: int, shard: int) -> int:
    return min(SHARD_SIZE, requested - shard * SHARD_SIZE)


# -- exploring and shrinking (run in the main process or in workers) -----------------

def _stop_requested(config: _Config, stop: Any) -> bool:
    """Ctrl-C (``stop``: the parent's flag, or the workers' shared event) or the time budget."""
    return stop.is_set() or (config.deadline is not None and time.time() > config.deadline)


def _explore(host: Any, config: _Config, shard: int, requested: int, stop: Any, tick: Callable[[], None] | None = None) -> _ShardResult:
    result = _ShardResult(shard)
    quarantined: set[str] = set(config.quarantined)

    def predicate(case: Case) -> bool:
        if _stop_requested(config, stop):
            raise _Stop()
        index = result.examples
        result.examples += 1
        if tick is not None:
            tick()
        if quarantined and _uses(case, quarantined):
            result.skipped += 1
            return False
        found, report = _case_signatures(host, case, oracles=True)
        result.counts.update(report.counts)
        result.judged.update(getattr(report, "judged", None) or {})
        result.notes.update(report.notes)
        for occurrence in found:
            result.seen[occurrence.signature] += 1
            if occurrence.signature in result.occurrences:
                continue
            occurrence.shard, occurrence.index = shard, index
            result.occurrences[occurrence.signature] = occurrence
            if occurrence.crash and occurrence.blame.op in OPS:
                # An op that crashes or hangs would cost a restart or a timeout in
                # every later case: skip the cases that use it, in this shard.
                quarantined.add(occurrence.blame.op)
                result.quarantine.append((index, occurrence.blame.op))
        return False

    strategy = cases(ops=config.ops, max_leaves=config.max_leaves, count=config.count)
    try:
        find(strategy, predicate, settings=_hypothesis(_shard_examples(requested, shard), False), random=random.Random(_shard_seed(config.seed, shard)))
    except (NoSuchExample, Unsatisfiable):
        pass
    except _Stop:
        result.stopped = "interrupted" if stop.is_set() else "time-budget"
    except KeyboardInterrupt:
        result.stopped = "interrupted"
    return result


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


def _past(deadline: float | None, stop: Any) -> bool:
    return stop.is_set() or (deadline is not None and time.time() > deadline)


def _shrunk(host: Any, config: _Config, occurrence: _Occurrence, quarantine: Sequence[tuple[int, str]], stop: Any,
            deadline: float | None) -> Finding | None:
    """The shrunk finding, or None if shrinking found nothing in time."""
    best: list[Any] = [None]
    calls = [0]
    wanted = occurrence.signature

    def predicate(case: Case) -> bool:
        index = calls[0]
        calls[0] += 1
        if _past(deadline, stop) or (best[0] is not None and calls[0] > SHRINK_CALLS):
            raise _Stop()
        skip = {op for at, op in quarantine if at < index} if best[0] is None else {op for _, op in quarantine}
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
        find(strategy, predicate, settings=_hypothesis(occurrence.index + 1, True), random=random.Random(_shard_seed(config.seed, occurrence.shard)))
    except (NoSuchExample, Unsatisfiable, _Stop):
        pass
    if best[0] is None:
        return None
    case, match = best[0]
    return _finding_of(host, occurrence, _simplify(host, match, lambda: _past(deadline, stop)), shrunk=True)


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


# -- workers ---------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(config: _Config, stop: Any, counter: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    import torch

    torch.set_num_threads(1)
    _WORKER.update(config=config, stop=stop, counter=counter, host=None)


def _worker_host() -> Any:
    if _WORKER["host"] is None:
        config = _WORKER["config"]
        _WORKER["host"] = Sandbox(config.target, timeout=config.timeout)
    return _WORKER["host"]


def _worker_tick() -> None:
    with _WORKER["counter"].get_lock():
        _WORKER["counter"].value += 1


def _worker_explore(shard: int, requested: int) -> _ShardResult:
    return _explore(_worker_host(), _WORKER["config"], shard, requested, _WORKER["stop"], _worker_tick)


def _worker_shrink(occurrence: _Occurrence, quarantine: list, deadline: float | None) -> Finding | None:
    return _shrink(_worker_host(), _WORKER["config"], occurrence, quarantine, _WORKER["stop"], deadline)


# -- the campaign -------------------------------------------------------------------

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


def _order(finding: Finding) -> tuple:
    kind = KIND_ORDER.index(finding.kind) if finding.kind in KIND_ORDER else 99
    return (finding.severity != "error", finding.blame.backend != "engine", str(finding.blame.op), kind, finding.expression)


def _smoke(host: Any, ops: Sequence[str], pressed: threading.Event) -> list[_Occurrence]:
    """Each op alone on ordinary inputs, once, before exploring: an op that crashes
    or hangs is reported and then never generated (each of its cases would cost a
    restart or a timeout)."""
    found: list[_Occurrence] = []
    for op in ops:
        if pressed.is_set():
            break
        spec = OPS[op]
        names = ("x0", "x1")[: spec.arity]
        text = f"{names[0]} {spec.symbol} {names[1]}" if spec.arity == 2 else (
            f"{names[0]}**2.5" if op == "pow" else f"-{names[0]}" if op == "neg" else f"{op}({names[0]})")
        case = Case(parse(text), np.array([[0.75, 1.25][: spec.arity]]))
        program = compile_program(case.expr)
        try:
            report = judge_case(host, program, case.points, oracles=False)
        except KeyboardInterrupt:
            pressed.set()
            break
        if report.crash:
            blame = Blame("engine", op, text, f"{op} {'crashes' if report.crash[0] == 'crash' else 'hangs'} alone on ordinary inputs: {report.crash[1]}", program.output, tuple(case.points[0]))
            found.append(_Occurrence((report.crash[0], "engine", op, "error"), "error", -1, len(found), text, case.points.tolist(), 0, blame, report.crash))
    return found


def _conventions(host: Any, ops: Sequence[str]) -> tuple[str, ...]:
    from verifier.evidence import kink_conventions

    found = []
    for op in ops:
        if OPS[op].kinks:
            program = compile_program(parse(f"{op}(x)"))
            truth = exact(program, (0.0,))
            text = kink_conventions(host, program, truth)
            if text:
                found.append(text)
    return tuple(found)


@contextlib.contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C as a flag as well as a KeyboardInterrupt. Python prints and drops an
    exception raised inside a gc callback or a ``__del__`` (Hypothesis times garbage
    collection with such a callback; an engine may swallow it too), so the exception
    alone can be lost: the campaign also polls the flag between examples."""
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield pressed  # Ctrl-C is ignored, or is not ours to handle
        return

    def handler(signum: int, frame: Any) -> None:
        pressed.set()
        previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def check_engine(
    engine: type | str | None = None,
    *,
    examples: int = 300,
    seed: int = 0,
    ops: Sequence[str] | str | None = None,
    timeout: float = 10.0,
    time_budget: float | None = None,
    workers: int = 1,
    isolate: bool | None = None,
    progress: Callable[..., None] | None | bool = None,
    unstable: str = "error",
) -> CampaignResult:
    """Run a campaign: ``examples`` random expressions, each judged at 8 points with
    every oracle; every distinct discrepancy shrunk and blamed.

    Args:
        engine: the engine class, or a ``package.module:Class`` /
            ``path/to/file.py:Class`` target (default: the built-in ``engine:Value``).
        examples: how many expressions to generate.
        seed: the same seed gives the same findings (whatever ``workers`` is).
        ops: op names (or ``"mul,tanh"``) to exercise; default every op the engine has.
        timeout: seconds one case may take before it counts as a hang.
        time_budget: stop exploring after this many seconds (findings are kept, and
            shrunk for at most half as long again).
        workers: processes to run shards in (needs an importable engine).
        isolate: False runs the engine in this process, unprotected; by default it
            runs in a sandbox process (a class that cannot be imported there, from
            a notebook or ``__main__``, is shipped by value).
        unstable: the severity of findings whose op is right at ordinary inputs
            but breaks at extreme ones (cause ``unstable``): ``"error"`` (the
            default) or ``"warning"``.
        progress: called as ``progress(done, total, phase)``: phase ``"checking"``
            (examples explored of those asked for), then ``"shrinking"`` (findings
            shrunk of those to shrink); a callable taking only ``(done, total)`` is
            called while checking only. Default: a progress line in a Jupyter
            notebook, nothing elsewhere; ``False``: none.

    Returns:
        A frozen :class:`CampaignResult`; ``result.ok`` is True when there is no
        error finding and some example was judged (``result.unjudged`` says why
        none was).

    Raises:
        ValueError: bad arguments (one line naming the value and what was expected).
        verifier.loader.EngineLoadError: the engine cannot be loaded.
    """
    started = time.time()
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples={examples!r}: expected an int >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an int >= 0")
    if unstable not in ("error", "warning"):
        raise ValueError(f"unstable={unstable!r}: expected 'error' or 'warning'")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout={timeout!r}: expected a number of seconds > 0")
    if time_budget is not None and not (isinstance(time_budget, (int, float)) and time_budget > 0):
        raise ValueError(f"time_budget={time_budget!r}: expected a number of seconds > 0")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: expected an int >= 1")
    requested_ops = op_names(ops) if isinstance(ops, str) or ops is None else op_names(",".join(ops))
    # A file target is recorded with its absolute path: the report replays from any folder.
    host = open_host(absolute_target(engine) if isinstance(engine, str) else engine, isolate=isolate, timeout=timeout)
    try:
        name = host.name
        tested = tuple(op for op in requested_ops if op in host.supported)
        missing = tuple(op for op in OPS if op not in host.supported)
        if not tested:
            raise ValueError(f"the engine supports none of the ops asked for ({', '.join(requested_ops)}); it has: {', '.join(host.supported) or 'none'}")
        target = host.target if isinstance(host, Sandbox) else (target_of(host.engine) if isinstance(host, InProcess) else None)
        if workers > 1 and not isinstance(host, Sandbox):
            raise ValueError(f"workers={workers}: parallel runs need an engine that can be re-imported (a module:Class or file.py:Class target)")
        with _ctrl_c() as pressed:
            smoke = _smoke(host, tested, pressed)
            config = _Config(target, tested, seed, float(timeout), MAX_LEAVES, POINTS_PER_CASE,
                             started + time_budget if time_budget else None,
                             frozenset(o.signature[2] for o in smoke), time_budget)
            shards = list(range(math.ceil(examples / SHARD_SIZE)))
            shown = _phased(progress)
            try:
                if pressed.is_set():
                    findings, results = [], []
                elif workers == 1:
                    findings, results = _serial(host, config, shards, examples, shown, pressed)
                else:
                    findings, results = _parallel(config, shards, examples, workers, shown, pressed)
            finally:
                if progress is None and hasattr(shown, "close"):
                    shown.close()  # the notebook's progress line, which we opened
            findings = [_crash_finding(host, o) for o in smoke] + list(findings)
            conventions = () if pressed.is_set() else _conventions(host, tested)
    finally:
        host.close()
    stopped = "interrupted" if pressed.is_set() else next((r.stopped for r in results if r.stopped), "completed")
    _, counts, notes = _merge(results)
    found = _distinct([f for f in findings if f is not None])
    # A numerically unstable formula (right at ordinary inputs, broken at extreme
    # ones) is an error unless the caller asked for it as a warning.
    found = [replace(f, severity=unstable) if f.cause == "unstable" else f for f in found]
    errors = tuple(sorted((f for f in found if f.blame.backend == "engine" and f.severity == "error"), key=_order))
    # A warning about an op that already has an error of the same kind is the same
    # bug seen where it happens to be small (a float32 derivative near 0).
    wrong = {(f.kind, f.blame.op) for f in errors}
    warnings = tuple(sorted((f for f in found if f.blame.backend == "engine" and f.severity != "error"
                             and (f.kind, f.blame.op) not in wrong), key=_order))
    oracle_findings = tuple(sorted((f for f in found if f.blame.backend != "engine"), key=_order))
    tried = sum(r.examples for r in results)
    return CampaignResult(
        engine=name, seed=seed, examples=tried, requested=examples,
        ops=tested, supported=tuple(host.supported), missing=missing, findings=errors, warnings=warnings,
        counts=dict(counts), notes=dict(notes), conventions=conventions, duration=time.time() - started,
        stopped=stopped, workers=workers, skipped=sum(r.skipped for r in results), oracle_findings=oracle_findings,
        quarantined=tuple(sorted(config.quarantined)),
        settings={"timeout": timeout, "time_budget": time_budget, "max_leaves": MAX_LEAVES,
                  "points_per_case": POINTS_PER_CASE, "shard_size": SHARD_SIZE},
        unjudged=_unjudged(stopped, tried, sum(r.skipped for r in results), counts, _judged(results)),
        judged=_judged(results),
        occurrences=dict(sum((r.seen for r in results), Counter())),
    )


def _judged(results: Sequence[_ShardResult]) -> dict[str, dict[str, int]]:
    total: Counter = Counter()
    for result in results:
        total.update(result.judged)
    by: dict[str, dict[str, int]] = {}
    for (quantity, state), n in sorted(total.items()):
        by.setdefault(f"{quantity}s", {})[state] = n
    return by


def _unjudged(stopped: str, examples: int, skipped: int, counts: Counter, judged: dict | None = None) -> str:
    """Why no point was judged ("" if some were).

    Example:
        >>> _unjudged("time-budget", 0, 0, Counter())
        'nothing was judged: the time budget ran out before the first example'
    """
    if judged and sum(counts.values()) and not any(by.get("judged") for by in judged.values()):
        return "nothing was judged: no value or partial derivative of any example could be judged"
    if sum(counts.values()):
        return ""
    if examples == 0:
        why = {"time-budget": "the time budget ran out", "interrupted": "the run was interrupted"}.get(stopped, "the run stopped")
        return f"nothing was judged: {why} before the first example"
    if skipped == examples:
        return "nothing was judged: every example used an op quarantined for crashing or hanging"
    return "nothing was judged: no point of any example could be judged"


def _distinct(findings: list[Finding]) -> list[Finding]:
    """One ``nondeterministic`` finding per op: several cases may show the same
    wavering op, found by different routes (while exploring, or when a finding did
    not reproduce)."""
    seen: set = set()
    kept = []
    for f in findings:
        if f.kind == "nondeterministic":
            if f.signature in seen:
                continue
            seen.add(f.signature)
        kept.append(f)
    return kept


def _shrink_deadline(config: _Config) -> float | None:
    """When shrinking must end (``time.time()``): with a time budget, a share of it
    after exploring ends, however exploring ended; past it, findings stay unshrunk."""
    return None if config.budget is None else time.time() + SHRINK_SHARE * config.budget


def _serial(host: Any, config: _Config, shards: list[int], examples: int, progress: Callable | None,
            pressed: threading.Event) -> tuple[list, list]:
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], examples, "checking")

    results = []
    for shard in shards:
        result = _explore(host, config, shard, examples, pressed, tick)
        results.append(result)
        if result.stopped:
            break
    first, _, _ = _merge(results)
    quarantine = {r.shard: r.quarantine for r in results}
    findings = []
    deadline = _shrink_deadline(config)
    for shrunk, occurrence in enumerate(first.values()):
        if progress is not None:
            progress(shrunk, len(first), "shrinking")
        if not pressed.is_set():
            try:
                findings.append(_shrink(host, config, occurrence, quarantine[occurrence.shard], pressed, deadline))
                continue
            except KeyboardInterrupt:  # stop shrinking; keep everything found
                pressed.set()
        findings.append(_unshrunk(host, occurrence))
    if progress is not None and first:
        progress(len(first), len(first), "shrinking")
    return findings, results


def _gather(jobs: list[Future], pressed: threading.Event, progress: Callable | None = None) -> list:
    """The jobs' results in order; KeyboardInterrupt as soon as Ctrl-C is seen.
    ``progress(done, total, "shrinking")`` as jobs finish."""
    while True:
        finished, pending = wait(jobs, timeout=0.25)
        if progress is not None and jobs:
            progress(len(finished), len(jobs), "shrinking")
        if not pending:
            break
        if pressed.is_set():
            raise KeyboardInterrupt
    return [job.result() for job in jobs]


def _phased(progress: Any) -> Any:
    """The progress callback as ``progress(done, total, phase)``: as given if it takes
    a phase; one that calls it with ``(done, total)`` while checking only if not;
    the notebook's progress line for None; nothing for False.

    Example:
        >>> seen = []
        >>> _phased(lambda done, total: seen.append(done))(3, 10, "shrinking")
        >>> _phased(lambda done, total: seen.append(done))(2, 10, "checking")
        >>> seen, _phased(False)
        ([2], None)
    """
    if progress is None:
        from verifier.display import notebook_progress

        return notebook_progress()
    if progress is False or not callable(progress):
        return None
    import inspect

    try:
        inspect.signature(progress).bind(0, 0, "checking")
        return progress
    except TypeError:
        pass
    except ValueError:  # no signature to read (some builtins): assume the old form
        pass

    def checking_only(done: int, total: int, phase: str = "checking") -> None:
        if phase == "checking":
            progress(done, total)

    return checking_only


def _unshrunk(host: Any, occurrence: _Occurrence) -> Finding | None:
    """The finding as first seen (no time to shrink it)."""
    if occurrence.crash:
        return _crash_finding(host, occurrence)
    if occurrence.answers:
        return _unsteady_finding(host, occurrence)
    return _finding_of(host, occurrence, occurrence, False)


def _parallel(config: _Config, shards: list[int], examples: int, workers: int, progress: Callable | None,
              pressed: threading.Event) -> tuple[list, list]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    counter = context.Value("i", 0)
    results: list[_ShardResult] = []
    findings: list[Finding | None] = []
    pending: set = set()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(config, stop, counter)) as pool:
        try:
            pending = {pool.submit(_worker_explore, shard, examples) for shard in shards}
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                results += [f.result() for f in done]
                if progress is not None:
                    progress(min(counter.value, examples), examples, "checking")
                if pressed.is_set():
                    raise KeyboardInterrupt
            first, _, _ = _merge(results)
            quarantine = {r.shard: r.quarantine for r in results}
            deadline = _shrink_deadline(config)
            jobs = [pool.submit(_worker_shrink, occ, quarantine[occ.shard], deadline) for occ in first.values()]
            findings = _gather(jobs, pressed, progress)
        except KeyboardInterrupt:
            pressed.set()
            stop.set()
            for future in list(pending):
                try:
                    results.append(future.result())
                except Exception:  # noqa: BLE001
                    pass
    if not findings:
        first, _, _ = _merge(results)
        if first:
            host = Sandbox(config.target, timeout=config.timeout)
            try:
                findings = [_unshrunk(host, occ) for occ in first.values()]
            finally:
                host.close()
    return findings, results
