"""Where the engine under test runs: in this process, or in a sandbox process.

A sandbox survives what an engine can do: an exception or a None result is data
(see :mod:`verifier.run_engine`); a hard crash (``os._exit``, a segfault) becomes
:class:`EngineCrash`, an infinite loop :class:`EngineTimeout` after the per-case
timeout; in both cases the sandbox is restarted for the next case. The engine's own
prints go to /dev/null.

Only plain data crosses back: the child turns every outcome into a tuple of exact
builtin floats, complex numbers, strings, ints and None
(:meth:`EngineOutcome.to_tuple`), and the parent reads answers with an unpickler
that can build nothing but ``complex`` (the engine could write its own bytes to the
answer channel: a forged pickle must not run code here). An answer that does not
decode to that shape is an :class:`EngineCrash`.

Example:
    >>> with Sandbox("engine:Value", timeout=10) as host:
    ...     host.supported[:3]
    ('add', 'sub', 'mul')
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from typing import Any, Sequence

from verifier.expr import Program
from verifier.loader import EngineLoadError, load_engine, target_of
from verifier.run_engine import EngineOutcome, describe_error, plain_text, probe, run

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


_HEADER = struct.Struct("!Q")
MAX_ANSWER = 64 << 20  # bytes; a real answer (8 points, a few hundred nodes) is a few kB


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what plain data needs: tuples, lists, str, int, float, None are
    pickle opcodes; complex is the one class it may look up."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "complex"):
            return complex
        raise pickle.UnpicklingError(f"refused to load {module}.{name}"[:120])


def _loads(payload: bytes) -> Any:
    """Plain data from an answer; ValueError for anything else (garbled or forged)."""
    try:
        return _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception as error:  # noqa: BLE001 - garbage may fail in any way
        # One line: the message may quote names the forged bytes chose.
        raise ValueError(" ".join(f"{type(error).__name__}: {error}".split())[:200]) from None


def _send(stream: Any, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    """Read ``size`` bytes from ``fd``; None deadline waits forever.

    Raises:
        TimeoutError: past the deadline.
        EOFError: the other side closed (it died).
    """
    chunks, remaining = [], size
    while remaining:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, timeout: float | None) -> Any:
    """One answer from the sandbox, as plain data.

    Raises:
        TimeoutError, EOFError: see :func:`_read_exactly`.
        ValueError: the bytes are not a plain-data answer.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if size > MAX_ANSWER:
        raise ValueError(f"an answer of {size} bytes")
    return _loads(_read_exactly(fd, size, deadline))


def _outcomes(answer: Any, program: Program, count: int) -> list[EngineOutcome]:
    """The outcomes in an ``("ok", [tuple, ...])`` answer, each checked against the
    program's shape (the judge indexes gradients by variable).

    Raises:
        ValueError: anything else.
    """
    if type(answer) is not tuple or len(answer) != 2 or answer[0] != "ok" or type(answer[1]) is not list:
        raise ValueError("not an answer")
    if len(answer[1]) != count:
        raise ValueError(f"{len(answer[1])} outcomes for {count} points")
    outcomes = [EngineOutcome.from_tuple(item) for item in answer[1]]
    for o in outcomes:
        if o.gradient is not None and len(o.gradient) != len(program.variables):
            raise ValueError(f"a gradient of {len(o.gradient)} partials for {len(program.variables)} variables")
        # Up to the node that failed, when building the graph failed.
        if any(xs is not None and len(xs) > len(program) for xs in (o.node_values, o.node_grads)):
            raise ValueError("node values that do not match the graph")
    return outcomes


def serve(target: str) -> None:
    """The sandbox's main loop: ``python -m verifier.hosts TARGET``.

    Requests come as pickles on stdin; answers go out on what was stdout, which is
    then pointed at /dev/null (with stderr) so that the engine's prints go nowhere.
    Ctrl-C is left to the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        engine = load_engine(target)
        supported, missing = probe(engine)
    except EngineLoadError as error:
        _send(answers, ("error", plain_text(str(error))))
        return
    except BaseException as error:  # noqa: BLE001 - e.g. SystemExit while importing
        _send(answers, ("error", f"loading {target} failed: {describe_error(error).partition(':')[0]}"))
        return
    _send(answers, ("ready", supported, missing))
    while True:
        try:
            (size,) = _HEADER.unpack(requests.read(_HEADER.size))
            message = pickle.loads(requests.read(size))
        except (EOFError, OSError, struct.error):
            return
        if message[0] == "close":
            return
        _, program, points, record = message
        # Plain tuples only (run already made every number an exact builtin).
        _send(answers, ("ok", [o.to_tuple() for o in run(engine, program, points, record=record)]))


class Sandbox:
    """Runs the engine named by ``target`` in a child process
    (``python -m verifier.hosts``: nothing of the caller's script is re-run there).

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
        self._process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        environment = dict(os.environ)
        # The child must find this package and the user's modules as the parent does.
        environment["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [environment.get("PYTHONPATH", "")])
        process = subprocess.Popen(
            [sys.executable, "-m", "verifier.hosts", self.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the terminal is the parent's to handle.
            env=environment, start_new_session=True,
        )
        try:
            message = _receive(process.stdout.fileno(), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            process.wait()
            raise EngineLoadError(f"engine {self.name!r} did not load within {START_TIMEOUT:g} s") from None
        except EOFError:
            code = process.wait()
            raise EngineLoadError(f"engine {self.name!r} crashed while loading ({_exit_reason(code)})") from None
        except ValueError as error:
            process.kill()
            process.wait()
            raise EngineLoadError(f"engine {self.name!r} sent a garbled answer while loading ({error})") from None
        if type(message) is tuple and len(message) == 2 and message[0] == "error" and type(message[1]) is str:
            process.wait()
            raise EngineLoadError(" ".join(message[1].split())[:300])
        if not (type(message) is tuple and len(message) == 3 and message[0] == "ready"
                and all(type(names) is tuple and all(type(n) is str for n in names) for names in message[1:])):
            process.kill()
            process.wait()
            raise EngineLoadError(f"engine {self.name!r} sent a garbled answer while loading")
        _, self.supported, self.missing = message
        self._process = process

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def run(self, program: Program, points: Sequence[Sequence[float]], record: bool = False) -> list[EngineOutcome]:
        """Evaluate one case. Raises EngineCrash or EngineTimeout (and restarts
        the sandbox for the next case)."""
        if self._process is None:
            self.restarts += 1
            self._start()
        process = self._process
        rows = [tuple(map(float, p)) for p in points]
        try:
            _send(process.stdin, ("run", program, rows, record))
            return _outcomes(_receive(process.stdout.fileno(), self.timeout), program, len(points))
        except TimeoutError:
            self._kill()
            raise EngineTimeout(f"no answer within {self.timeout:g} s (an infinite loop?)") from None
        except (EOFError, OSError):
            code = process.wait()
            self._kill()
            raise EngineCrash(f"the engine's process died ({_exit_reason(code)})") from None
        except ValueError as error:
            # Something wrote its own bytes to the answer channel: out of step for good.
            self._kill()
            raise EngineCrash(f"the engine's process sent a garbled answer ({error})") from None
        except BaseException:
            # Interrupted half-way through a message: the channel is out of step.
            self._kill()
            raise

    def close(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            try:
                _send(process.stdin, ("close",))
                process.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
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


if __name__ == "__main__":
    serve(sys.argv[1])
