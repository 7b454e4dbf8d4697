"""Where the engine under test runs: in this process, or in a sandbox process.

A sandbox survives what an engine can do: an exception or a None result is data
(see :mod:`verifier.run_engine`); a hard crash (``os._exit``, a segfault) becomes
:class:`EngineCrash`, an infinite loop :class:`EngineTimeout` after the per-case
timeout; in both cases the sandbox is restarted for the next case. The engine's own
prints go to /dev/null.

Example:
    >>> with Sandbox("engine:Value", timeout=10) as host:
    ...     host.supported[:3]
    ('add', 'sub', 'mul')
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, Sequence

from verifier.expr import Program
from verifier.loader import EngineLoadError, load_engine, target_of
from verifier.run_engine import EngineOutcome, probe, run

__all__ = ["EngineCrash", "EngineTimeout", "InProcess", "Sandbox", "open_host", "engine_name"]

START_TIMEOUT = 120.0


class EngineCrash(RuntimeError):
    """The engine's process died while evaluating a case."""


class EngineTimeout(RuntimeError):
    """The engine did not finish a case within the timeout."""


def engine_name(engine: type) -> str:
    """``module:Class`` for reports (repr-safe even for hostile classes)."""
    try:
        return f"{engine.__module__}:{engine.__qualname__}"
    except Exception:  # noqa: BLE001
        return "<engine>"


class InProcess:
    """Runs the engine in this process (no protection from crashes or hangs)."""

    def __init__(self, engine: type, name: str | None = None) -> None:
        self.engine = engine
        self.name = name or target_of(engine) or engine_name(engine)
        self.supported, self.missing = probe(engine)

    def run(self, program: Program, points: Sequence[Sequence[float]], record: bool = False) -> list[EngineOutcome]:
        return run(self.engine, program, [tuple(map(float, p)) for p in points], record=record)

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _serve(conn: Any, target: str) -> None:
    """The sandbox's main loop (runs in the child process)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        engine = load_engine(target)
        supported, missing = probe(engine)
    except EngineLoadError as error:
        conn.send(("error", str(error)))
        return
    except BaseException as error:  # noqa: BLE001
        conn.send(("error", f"loading {target} failed: {type(error).__name__}"))
        return
    conn.send(("ready", supported, missing))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "close":
            return
        _, program, points, record = message
        conn.send(("ok", run(engine, program, points, record=record)))


class Sandbox:
    """Runs the engine named by ``target`` in a child process.

    Args:
        target: ``package.module:Class`` or ``path/to/file.py:Class``.
        timeout: seconds one case (an expression at all its points) may take.

    Raises:
        EngineLoadError: if the engine cannot be imported (one-line message).
    """

    def __init__(self, target: str, *, timeout: float = 10.0) -> None:
        self.name = target
        self.timeout = timeout
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self.name), daemon=True)
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT):
            process.kill()
            raise EngineLoadError(f"engine {self.name!r} did not load within {START_TIMEOUT:g} s")
        try:
            message = parent.recv()
        except EOFError:
            process.join(5)
            raise EngineLoadError(f"engine {self.name!r} crashed while loading ({_exit_reason(process.exitcode)})") from None
        if message[0] == "error":
            process.join(5)
            raise EngineLoadError(message[1])
        _, self.supported, self.missing = message
        self._process, self._conn = process, parent

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def run(self, program: Program, points: Sequence[Sequence[float]], record: bool = False) -> list[EngineOutcome]:
        """Evaluate one case. Raises EngineCrash or EngineTimeout (then restarts)."""
        if self._process is None:
            self._restart()
        try:
            self._conn.send(("run", program, [tuple(map(float, p)) for p in points], record))
            if not self._conn.poll(self.timeout):
                self._kill()
                raise EngineTimeout(f"no answer within {self.timeout:g} s (infinite loop?)")
            _, outcomes = self._conn.recv()
            return outcomes
        except (EOFError, OSError, BrokenPipeError):
            code = self._process.exitcode if self._process is not None else None
            if self._process is not None:
                self._process.join(5)
                code = self._process.exitcode
            self._kill()
            raise EngineCrash(f"the engine's process died ({_exit_reason(code)})") from None

    def close(self) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send(("close",))
            except (OSError, BrokenPipeError):
                pass
            self._process.join(2)
        self._kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def open_host(engine: type | str | None, *, isolate: bool | None = None, timeout: float = 10.0) -> InProcess | Sandbox:
    """A host for ``engine`` (a class or a target; None is the built-in engine).

    ``isolate=None`` sandboxes targets and importable classes and runs other classes
    in this process.
    """
    if engine is None:
        engine = "engine:Value"
    if isinstance(engine, str):
        if isolate is False:
            return InProcess(load_engine(engine), engine)
        return Sandbox(engine, timeout=timeout)
    if not isinstance(engine, type):
        raise TypeError(f"engine must be a class or a 'module:Class' target, got {type(engine).__name__}")
    target = target_of(engine)
    if isolate and target is None:
        raise ValueError(f"engine {engine_name(engine)} cannot be re-imported in a sandbox; pass isolate=False or a target string")
    if isolate or (isolate is None and target is not None):
        return Sandbox(target, timeout=timeout)  # type: ignore[arg-type]
    return InProcess(engine)
