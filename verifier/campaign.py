"""``check_engine``: a Hypothesis-driven campaign against an engine.

The examples are explored and each distinct finding shrunk by
:mod:`verifier.explore`, shard by shard, in this process or on worker processes
(:mod:`verifier.executors`); the result is a :class:`~verifier.result.CampaignResult`.

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

import math
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from verifier.evaluate import judge_case
from verifier.executors import _ctrl_c, _parallel, _serial
from verifier.explore import SHARD_SIZE, _Config, _crash_finding, _merge, _Occurrence, _ShardResult
from verifier.define import definitions
from verifier.formats import current as current_format
from verifier.formats import declared_format, format_named, using
from verifier.expr import apply, compile_program, var
from verifier.evidence import build_finding
from verifier.findings import Blame, Finding
from verifier.narrower import narrower_format, one_finding
from verifier.hosts import EngineCrash, EngineTimeout, InProcess, Sandbox, open_host
from verifier.judge import KIND_ORDER
from verifier.loader import absolute_target, target_of
from verifier.ops import OPS, op_names, written_ops
from verifier.reference import exact
from verifier.result import CampaignResult
from verifier.second_order import Checks, cannot, checking, current_checks, parse_modes
from verifier.strategies import Case

__all__ = ["check_engine", "CampaignResult"]

POINTS_PER_CASE = 8
MAX_LEAVES = 8


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
        expr = apply(op, *(var(n) for n in names), param=2.5 if op == "pow" else None)
        text = str(expr)
        case = Case(expr, np.array([[0.75, 1.25][: spec.arity]]))
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


def _absent_finding(host: Any, op: str) -> Finding | None:
    """The finding for a defined op asked for by name that the engine has no method for."""
    spec = OPS[op]
    expr = apply(op, *(var(n) for n in ("x0", "x1")[: spec.arity]))
    point = (0.75, 1.25)[: spec.arity]
    reason = (f"the engine has no method {spec.method}() for the op {op}, which was asked for: add it, or define the op "
              f"with the engine's name for it (define_op({op!r}, ..., method='...'), or method = \"...\" in an ops file)")
    blame = Blame("engine", op, str(expr), reason, None, point)
    return build_finding(host, compile_program(expr), point, blame=blame)


def _conventions(host: Any, ops: Sequence[str]) -> tuple[str, ...]:
    import mpmath

    from verifier.evidence import kink_conventions
    from verifier.local import local_rule, one_sided

    found = []
    for op in ops:
        kinks = local_rule(op).kinks if op != "pow" else ()
        for q, kink in enumerate(kinks):
            if kink.point is None:
                continue
            at = [mpmath.mpf(x) for x in kink.point]
            sides = [one_sided(op, None, tuple(s if i == q else 0 for i in range(len(kinks))))(*at) for s in (1, -1)]
            if sides[0] == sides[1]:
                continue  # the derivative does not jump there (elu at 0): no convention to show
            names = ("a", "b")[: OPS[op].arity]
            program = compile_program(apply(op, *(var(n) for n in names)))
            text = kink_conventions(host, program, exact(program, kink.point))
            if text and text not in found:
                found.append(text)
    return tuple(found)


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
    dtype: str | None = None,
    cluster: Any = None,
    order: int = 1,
    modes: str | Sequence[str] = "rev",
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
        cluster: run the shards as tasks on a Dask cluster instead (``pip install
            'crossgrad[dask]'``): a scheduler address (``"tcp://host:8786"``), a
            ``dask.distributed.Client`` or a ``LocalCluster``. The engine must load on
            the workers (checked first: a one-line ``ValueError`` if not); the
            findings are a serial run's (see :mod:`verifier.cluster`).
        isolate: False runs the engine in this process, unprotected; by default it
            runs in a sandbox process (a class that cannot be imported there, from
            a notebook or ``__main__``, is shipped by value).
        unstable: the severity of findings whose op is right at ordinary inputs
            but breaks at extreme ones (cause ``unstable``): ``"error"`` (the
            default) or ``"warning"``.
        dtype: the number format the engine computes in (``"float32"``, see
            :mod:`verifier.formats`): it is judged by what that format allows, at
            inputs that format holds. Default: the adapter's own (``"torch:float32"``),
            else float64.
        order: 2 also checks the Hessian of every expression at every point against
            the exact one: the engine's ``backward`` must accept ``create_graph=True``
            (see :mod:`verifier.second_order`).
        modes: ``"rev"`` (reverse mode, the default) or ``"fwd,rev"``: forward mode
            too, where the engine's ``Value(x, tangent=t)`` carries a ``.tangent``.
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
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order={order!r}: expected 1 or 2")
    try:
        checks = Checks(order, parse_modes(modes))
    except ValueError as error:
        raise ValueError(f"modes={modes!r}: {error}") from None
    if dtype is not None:
        format_named(dtype)  # a bad name fails before the engine is loaded
    requested_ops = op_names(ops) if isinstance(ops, str) or ops is None else op_names(",".join(ops))
    # A file target is recorded with its absolute path: the report replays from any folder.
    host = open_host(absolute_target(engine) if isinstance(engine, str) else engine, isolate=isolate, timeout=timeout)
    # The format the engine computes in: asked for, else the engine's own word for it
    # (an adapter's, a class's crossgrad_format, read in its sandbox), else float64.
    said = getattr(host, "declared_format", None) or declared_format(engine)
    try:
        number_format = format_named(dtype or said)
    except ValueError as error:
        host.close()
        raise ValueError(f"the engine's crossgrad_format: {error}") from None
    with using(number_format), checking(checks):
        return _campaign(host, requested_ops, examples, seed, ops, timeout, time_budget, workers, progress, unstable, started, cluster=cluster)


def _campaign(host: Any, requested_ops: tuple[str, ...], examples: int, seed: int, ops: Any, timeout: float,
              time_budget: float | None, workers: int, progress: Any, unstable: str, started: float, cluster: Any = None) -> CampaignResult:
    try:
        name = host.name
        tested = tuple(op for op in requested_ops if op in host.supported)
        # A defined op asked for by name that the engine lacks (a typo in the method's
        # name?) is never generated, and is a finding on that op.
        named = set(written_ops(ops))
        absent = tuple(op for op in requested_ops if op not in host.supported and op in named and op in {d.name for d in definitions()})
        missing = tuple(op for op in OPS if op not in host.supported)
        if not tested:
            raise ValueError(f"the engine supports none of the ops asked for ({', '.join(requested_ops)}); it has: {', '.join(host.supported) or 'none'}")
        target = host.target if isinstance(host, Sandbox) else (target_of(host.engine) if isinstance(host, InProcess) else None)
        if workers > 1 and not isinstance(host, Sandbox):
            raise ValueError(f"workers={workers}: parallel runs need an engine that can be re-imported (a module:Class or file.py:Class target)")
        checks = current_checks()
        if checks.higher:
            _can_check(host, checks)
        with _ctrl_c() as pressed:
            smoke = _smoke(host, tested, pressed)
            config = _Config(target, tested, seed, float(timeout), MAX_LEAVES, POINTS_PER_CASE,
                             started + time_budget if time_budget else None,
                             frozenset(o.signature[2] for o in smoke), time_budget,
                             tuple(d.to_json() for d in definitions()), current_format().name, checks.order, checks.forward)
            shards = list(range(math.ceil(examples / SHARD_SIZE)))
            shown = _phased(progress)
            try:
                if pressed.is_set():
                    findings, results = [], []
                elif cluster is not None:
                    from verifier.cluster import _dask

                    findings, results, workers = _dask(host, config, shards, examples, cluster, shown, pressed)
                elif workers == 1:
                    findings, results = _serial(host, config, shards, examples, shown, pressed)
                else:
                    findings, results = _parallel(config, shards, examples, workers, shown, pressed)
            finally:
                if progress is None and hasattr(shown, "close"):
                    shown.close()  # the notebook's progress line, which we opened
            findings = [_crash_finding(host, o) for o in smoke] + [_absent_finding(host, op) for op in absent] + list(findings)
            conventions = () if pressed.is_set() else _conventions(host, tested)
            mine = [f for f in findings if f is not None and f.blame.backend == "engine"]
            narrower = None if pressed.is_set() else narrower_format(host, mine)
            if narrower:  # every finding is the format's: one finding says so
                findings = [one_finding(mine, narrower)] + [f for f in findings if f is not None and f.blame.backend != "engine"]
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
                  "points_per_case": POINTS_PER_CASE, "shard_size": SHARD_SIZE, "dtype": current_format().name,
                  "order": checks.order, "modes": ",".join(checks.modes)},
        unjudged=_unjudged(stopped, tried, sum(r.skipped for r in results), counts, _judged(results)),
        judged=_judged(results),
        occurrences=dict(sum((r.seen for r in results), Counter())),
        definitions=tuple(d.to_json() for d in definitions() if d.name in tested or d.name in absent),
    )


def _can_check(host: Any, checks: Checks) -> None:
    """Raise a one-line ValueError if the engine cannot do what ``checks`` asks
    (see :func:`verifier.second_order.cannot`)."""
    try:
        what, error = cannot(host, checks)
    except (EngineCrash, EngineTimeout) as error:
        host.close()
        raise ValueError(f"the engine failed on x * y: {error}") from None
    if what:
        host.close()
        needs = "--order 2 needs backward(create_graph=True)" if what == "order" else "--modes fwd needs Value(x, tangent=t) and .tangent"
        raise ValueError(f"{needs}, and {host.name} cannot: x * y at (1.5, -2) gave {error}")


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


