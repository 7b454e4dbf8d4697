"""A campaign's shards as tasks on a ``dask.distributed`` cluster
(``check_engine(..., cluster=...)``, ``verifier check --dask ADDRESS``).

Each shard is one Dask task: on its worker it starts the engine's sandbox (once per
worker thread and campaign), defines the campaign's ops again, judges in the
campaign's number format, explores the shard from its own seed and returns its
:class:`~verifier.explore._ShardResult`. Shrinking stays in this process, as in a
serial run, so the findings are exactly a serial run's with the same seed.

* The engine must load on the workers: one worker loads it first, and a target it
  cannot load is a one-line :class:`ClusterError` naming the target and the worker.
* A worker that dies loses no finding: Dask runs its tasks again elsewhere, and a
  shard whose future still fails because its worker died is submitted again (a
  shard's result is deterministic, so running it twice is safe).
* Ctrl-C (or the time budget) stops the shards being explored through a Dask
  ``Event`` they poll; they return what they found; the rest are cancelled.

``dask[distributed]`` is an optional extra: ``pip install 'crossgrad[dask]'``.

Example (a throwaway cluster in this machine)::

    from dask.distributed import LocalCluster
    from verifier import check_engine

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster:
        result = check_engine("my_value.py:Value", examples=2000, cluster=cluster)
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable, Iterator

from verifier.explore import _Config, _explore, _ShardResult

INSTALL_HINT = "pip install 'crossgrad[dask]'"
CONNECT_TIMEOUT = 30.0  # seconds to reach the scheduler
WORKERS_TIMEOUT = 60.0  # seconds for a first worker to join a scheduler that has none
PROBE_TIMEOUT = 120.0  # seconds the first worker may take to load the engine
RETRIES = 2  # Dask's own retries of a shard's task that raised
RESUBMITS = 3  # a shard whose worker died is submitted again at most this many times
STOP_POLL = 0.5  # seconds between a worker's looks at the campaign's stop event
GRACE = 10.0  # on Ctrl-C, seconds the shards being explored get to return what they found
POLL = 0.1  # seconds between the parent's looks at the futures and at Ctrl-C

# Exceptions a future ends with when its worker died (or the connection to it did).
_LOST = ("KilledWorker", "CommClosedError", "StreamClosedError", "FutureCancelledError", "CancelledError")


class ClusterError(ValueError):
    """The cluster cannot run the campaign (Dask missing, scheduler unreachable, the
    engine not loadable on the workers): a one-line message (``verifier`` exit 2)."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"running on a Dask cluster needs dask.distributed, which is not installed: {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def connect(cluster: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster``: a scheduler address
    (``"tcp://scheduler:8786"``), a ``Client`` (used as is, not closed) or a cluster
    object with a ``scheduler_address`` (a ``LocalCluster``)."""
    distributed = _distributed()
    if isinstance(cluster, distributed.Client):
        yield cluster
        return
    if isinstance(cluster, str) and cluster.strip():
        address = cluster.strip()
    elif isinstance(getattr(cluster, "scheduler_address", None), str):
        address = cluster.scheduler_address
    else:
        raise ClusterError(f"cluster={cluster!r}: expected a Dask scheduler address ('tcp://host:8786'), "
                           "a dask.distributed Client or a cluster (LocalCluster)")
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot connect to the Dask scheduler at {address}: {_one_line(error)}") from None
    try:
        yield client
    finally:
        client.close()


def _workers_of(client: Any) -> int:
    """How many workers the cluster has (waiting a while for a first one)."""
    count = len(client.scheduler_info().get("workers", {}))
    if count:
        return count
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except (TimeoutError, OSError):
        raise ClusterError(f"the Dask scheduler at {client.scheduler.address} has no worker "
                           f"(none joined within {WORKERS_TIMEOUT:g} s)") from None
    return max(1, len(client.scheduler_info().get("workers", {})))


def _lost(error: BaseException) -> bool:
    """Whether a future failed because its worker died, not because the task raised."""
    return type(error).__name__ in _LOST or isinstance(error, (ConnectionError, EOFError))


def _probe(client: Any, config: _Config, campaign: str) -> None:
    """Load the engine on one worker first: a one-line error naming the target and
    the worker if it cannot be."""
    name = config.target if isinstance(config.target, str) else getattr(config.target, "name", repr(config.target))
    future = client.submit(_worker_probe, config, campaign, key=f"crossgrad-probe-{campaign}", pure=False)
    try:
        address, error = future.result(timeout=PROBE_TIMEOUT)
    except Exception as failure:  # noqa: BLE001 - e.g. crossgrad not installed on the worker
        raise ClusterError(f"a Dask worker cannot load engine {name!r}: {type(failure).__name__}: {_one_line(failure)} "
                           "(crossgrad and the engine must be importable on every worker)") from None
    if error:
        raise ClusterError(f"engine {name!r} cannot be loaded on Dask worker {address}: {error} "
                           "(the engine must be importable on every worker)")


def _dask(host: Any, config: _Config, shards: list[int], examples: int, cluster: Any, progress: Callable | None,
          pressed: threading.Event) -> tuple[list, list, int]:
    """Explore ``shards`` as Dask tasks, then shrink here: ``(findings, results,
    workers)``, ``workers`` the number the cluster had when the run started.

    Raises:
        ClusterError: Dask is not installed, the scheduler cannot be reached, the
            engine cannot be loaded on a worker, or a shard keeps failing.
    """
    from verifier.executors import _shrink_here

    if config.target is None:
        raise ClusterError("a Dask run needs an engine the workers can load again (a module:Class or file.py:Class target)")
    results: dict[int, _ShardResult] = {}
    workers = 0
    try:
        with connect(cluster) as client:
            workers = _workers_of(client)
            campaign = uuid.uuid4().hex[:12]
            try:
                _probe(client, config, campaign)
                _run_shards(client, config, shards, examples, campaign, progress, pressed, results)
            finally:
                with contextlib.suppress(Exception):
                    client.run(_worker_close, campaign)
    except KeyboardInterrupt:  # while connecting or loading the engine: nothing explored
        pressed.set()
    ordered = [results[shard] for shard in sorted(results)]
    return _shrink_here(host, config, ordered, progress, pressed), ordered, max(workers, 1)


def _run_shards(client: Any, config: _Config, shards: list[int], examples: int, campaign: str, progress: Callable | None,
                pressed: threading.Event, results: dict[int, _ShardResult]) -> None:
    """Each shard as a task, its result into ``results`` as it finishes; a shard whose
    worker died is submitted again; on Ctrl-C, what the shards found so far."""
    distributed = _distributed()
    stop = distributed.Event(f"crossgrad-stop-{campaign}", client=client)
    tries: Counter = Counter()

    def submit(shard: int) -> Any:
        tries[shard] += 1
        return client.submit(_worker_explore, config, shard, examples, campaign, stop.name, pure=False, retries=RETRIES,
                             key=f"crossgrad-shard-{shard}-{campaign}-{tries[shard]}")

    pending = {submit(shard): shard for shard in shards}
    over = False  # the time budget ran out: the shards not yet started are cancelled
    try:
        while pending:
            finished = [future for future in pending if future.done()]
            for future in finished:
                shard = pending.pop(future)
                try:
                    results[shard] = future.result()
                except Exception as error:  # noqa: BLE001
                    if not _lost(error) or tries[shard] > RESUBMITS:
                        raise ClusterError(f"shard {shard} failed on the Dask cluster: {type(error).__name__}: "
                                           f"{_one_line(error)}") from None
                    pending[submit(shard)] = shard  # its worker died: run it again (same seed, same result)
            if finished and progress is not None:
                progress(min(sum(r.examples for r in results.values()), examples), examples, "checking")
            if pressed.is_set():
                raise KeyboardInterrupt
            if not over and config.deadline is not None and time.time() > config.deadline:
                over = True
                _cancel_waiting(client, pending)
            if pending and not finished:
                time.sleep(POLL)
    except KeyboardInterrupt:
        pressed.set()
        _stop_shards(client, stop, pending, results)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(pending))
        raise


def _stop_shards(client: Any, stop: Any, pending: dict, results: dict) -> None:
    """Ctrl-C: the shards being explored stop and return what they found (within
    ``GRACE`` seconds); the others are cancelled."""
    with contextlib.suppress(Exception):
        stop.set()
    _cancel_waiting(client, pending)
    deadline = time.monotonic() + GRACE
    while pending and time.monotonic() < deadline:
        for future in [f for f in pending if f.done()]:
            shard = pending.pop(future)
            with contextlib.suppress(Exception):
                results[shard] = future.result()
        time.sleep(POLL)
    if pending:
        with contextlib.suppress(Exception):
            client.cancel(list(pending))


def _cancel_waiting(client: Any, pending: dict) -> None:
    """Cancel the shards not yet running on a worker (the exploring is over: they
    would find nothing), and forget them."""
    with contextlib.suppress(Exception):
        running = {key for keys in client.processing().values() for key in keys}
        waiting = [future for future in pending if future.key not in running and not future.done()]
        client.cancel(waiting)
        for future in waiting:
            pending.pop(future, None)


# -- on the workers (module-level: Dask pickles them by name) ----------------------------

_LOCK = threading.Lock()
_HOSTS: dict[int, tuple[Any, Any]] = {}  # worker thread -> (the campaign's key, its engine sandbox)
_DEFINED: list = []  # the op definitions this worker process restored


class _StopFlag:
    """The campaign's stop event, looked at every ``STOP_POLL`` seconds (each look
    is a round trip to the scheduler)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.event: Any = None
        self.checked = 0.0
        self.set_ = False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self.set_ and now - self.checked >= STOP_POLL:
            self.checked = now
            try:
                if self.event is None:
                    from distributed import Event

                    self.event = Event(self.name)
                self.set_ = bool(self.event.is_set())
            except Exception:  # noqa: BLE001 - no scheduler to ask: keep exploring
                pass
        return self.set_


def _prepare(config: _Config) -> None:
    """What a process-pool worker's initializer does, once per worker process: one
    torch thread; the campaign's defined ops (the number format is set per task)."""
    with _LOCK:
        import torch

        torch.set_num_threads(1)
        if config.definitions and config.definitions not in _DEFINED:
            from verifier.define import restore

            restore(config.definitions)
            _DEFINED.append(config.definitions)


def _host(config: _Config, campaign: str) -> Any:
    """This thread's engine sandbox for the campaign (another campaign's is closed)."""
    from verifier.hosts import Sandbox

    ident = threading.get_ident()
    with _LOCK:
        cached = _HOSTS.get(ident)
    if cached is not None and cached[0] == campaign:
        return cached[1]
    if cached is not None:
        with contextlib.suppress(Exception):
            cached[1].close()
    host = Sandbox(config.target, timeout=config.timeout)
    with _LOCK:
        _HOSTS[ident] = (campaign, host)
    return host


def _worker_probe(config: _Config, campaign: str) -> tuple[str, str]:
    """``(this worker's address, why the engine cannot be loaded here or "")``."""
    from distributed import get_worker

    try:
        address = get_worker().address
    except Exception:  # noqa: BLE001
        address = "?"
    try:
        _prepare(config)
        _host(config, campaign)
    except Exception as error:  # noqa: BLE001 - EngineLoadError, or anything else: said in one line
        return address, _one_line(error)
    return address, ""


def _worker_explore(config: _Config, shard: int, requested: int, campaign: str, stop_name: str) -> _ShardResult:
    from verifier.explore import _stop_requested
    from verifier.formats import using

    stop = _StopFlag(stop_name)
    if _stop_requested(config, stop):  # stopped before it started: no sandbox to start
        return _ShardResult(shard, stopped="interrupted" if stop.is_set() else "time-budget")
    _prepare(config)
    with using(config.number_format):
        return _explore(_host(config, campaign), config, shard, requested, stop)


def _worker_close(campaign: str) -> int:
    """Close this worker's engine sandboxes of the campaign (it is over); how many."""
    with _LOCK:
        ours = [ident for ident, (key, _) in _HOSTS.items() if key == campaign]
        hosts = [_HOSTS.pop(ident)[1] for ident in ours]
    for host in hosts:
        with contextlib.suppress(Exception):
            host.close()
    return len(hosts)
