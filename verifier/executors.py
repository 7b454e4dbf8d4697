"""Where a campaign's shards run: one after another in this process
(:func:`_serial`), or on a pool of spawned worker processes, each with its own
engine sandbox (:func:`_parallel`), or as tasks on a Dask cluster
(:mod:`verifier.cluster`, which shrinks here with :func:`_shrink_here`); and Ctrl-C
turned into a flag they all poll (:func:`_ctrl_c`). :func:`auto_workers` is what
``--workers auto`` starts.

Both explore every shard, then shrink the first occurrence of each signature
(:mod:`verifier.explore` holds the exploring and shrinking). With a time budget,
shrinking gets at most ``SHRINK_SHARE`` of it more; on Ctrl-C, what was found is
kept unshrunk.

Example:
    >>> import threading
    >>> from verifier.explore import _Config
    >>> from verifier.hosts import InProcess
    >>> from engine import Value
    >>> config = _Config(None, ("add",), 0, 10.0, 4, 2, None)
    >>> findings, results = _serial(InProcess(Value), config, [0], 3, None, threading.Event())
    >>> findings, [r.examples for r in results]
    ([], [3])
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator

from verifier.explore import _Config, _explore, _merge, _Occurrence, _shrink, _ShardResult, _unshrunk
from verifier.findings import Finding
from verifier.hosts import Sandbox

SHRINK_SHARE = 0.5  # with a time budget, shrinking may take this share of it more
# ``--workers auto``: a worker process takes ~5-15 s to start (see verifier.cli), so a
# campaign with a time budget under this many seconds runs serially whatever its size.
AUTO_MIN_BUDGET = 60.0


def auto_workers(examples: int, time_budget: float | None = None, per_worker: int = 4000, cpus: int | None = None) -> int:
    """The worker processes worth starting for a campaign (``--workers auto``): one per
    CPU, but at most one per ``per_worker`` examples, and none (a serial run) with a
    time budget under ``AUTO_MIN_BUDGET`` seconds. A campaign too small to gain from
    processes (a few shards, a short budget) runs serially.

    Example:
        >>> auto_workers(300, cpus=8), auto_workers(20_000, cpus=8), auto_workers(20_000, cpus=2)
        (1, 5, 2)
        >>> auto_workers(100_000, time_budget=30, cpus=8), auto_workers(100_000, time_budget=600, cpus=8)
        (1, 8)
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if time_budget is not None and time_budget < AUTO_MIN_BUDGET:
        return 1
    return max(1, min(cpus, examples // per_worker))


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
    return _shrink_here(host, config, results, progress, pressed), results


def _shrink_here(host: Any, config: _Config, results: list, progress: Callable | None, pressed: threading.Event) -> list:
    """Shrink, in this process, the first occurrence of each signature the shards
    found (unshrunk once Ctrl-C is pressed or the shrink deadline passes)."""
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
    return findings


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
                if config.deadline is not None and time.time() > config.deadline:
                    pending = _cancel_queued(pending)  # out of time: the shards not yet started find nothing
            first, _, _ = _merge(results)
            quarantine = {r.shard: r.quarantine for r in results}
            deadline = _shrink_deadline(config)
            jobs = [pool.submit(_worker_shrink, occ, quarantine[occ.shard], deadline) for occ in first.values()]
            findings = _gather(jobs, pressed, progress)
        except KeyboardInterrupt:
            pressed.set()
            stop.set()
            # The shards not yet started would find nothing (thousands of them take minutes).
            for future in list(_cancel_queued(pending)):
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


def _cancel_queued(pending: set) -> set:
    """Cancel the jobs no worker has started; the others."""
    return {future for future in pending if not future.cancel()}


# -- in the workers' processes (module-level: the pool pickles them by name) -----------


_WORKER: dict[str, Any] = {}


def _worker_init(config: _Config, stop: Any, counter: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    import torch

    torch.set_num_threads(1)
    from verifier.formats import set_format

    set_format(config.number_format)
    if config.definitions:
        from verifier.define import restore

        restore(config.definitions)
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
