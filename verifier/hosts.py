"""Where the engine under test runs: in this process, or in a sandbox process.

A sandbox survives what an engine can do: an exception or a None result is data
(see :mod:`verifier.run_engine`); a hard crash (``os._exit``, a segfault) becomes
:class:`EngineCrash`, an infinite loop :class:`EngineTimeout` after the per-case
timeout; in both cases the sandbox is restarted for the next case. The engine's own
prints go to /dev/null.

A class that cannot be imported again (defined in a notebook cell, in ``__main__``
or inside a function) is shipped to the sandbox by value: its cloudpickle, or, when
cloudpickle cannot pickle it, its source with the globals it names
(:func:`ship`). That direction may carry pickles: the parent trusts its own user's
class. A class that cannot be shipped either is a one-line :class:`EngineLoadError`
saying how to fix it.

The sandbox imports crossgrad's own ``engine``, ``reports``, ``properties`` and
``verifier`` from crossgrad's folder, never from the user's current folder (which
comes last on its import path): see :func:`verifier.loader.own_packages_first`.

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

import ast
import builtins
import inspect
import io
import linecache
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time
import types
from dataclasses import dataclass
from typing import Any, Sequence

from verifier.expr import Program
from verifier.loader import HOME, EngineLoadError, child_path, load_engine, own_packages_first, target_of
from verifier.run_engine import EngineOutcome, describe_error, plain_text, probe, run, run_plain

__all__ = ["EngineCrash", "EngineTimeout", "InProcess", "Sandbox", "Shipped", "open_host", "engine_name", "ship"]

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


@dataclass(frozen=True)
class Shipped:
    """A class sent to the sandbox by value (plain bytes and strings, so it also
    travels to worker processes inside a campaign's settings).

    ``kind`` is ``"pickle"`` (``payload`` is the class's cloudpickle) or
    ``"source"`` (``payload`` pickles ``(source, imports, values)``).
    """

    name: str  # module:Class, for reports
    qualname: str
    kind: str
    payload: bytes

    def __repr__(self) -> str:
        return f"Shipped({self.name!r}, {self.kind}, {len(self.payload)} bytes)"


def _cannot_ship(engine: type, why: str) -> EngineLoadError:
    name = getattr(engine, "__name__", "Value")
    return EngineLoadError(
        f"engine {engine_name(engine)} cannot be shipped to a sandbox process ({why}); move the class to a "
        f".py file and pass 'file.py:{name}', or pass isolate=False to run it in this process, unprotected"
    )


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:160]


def ship(engine: type) -> Shipped:
    """``engine`` by value, for a sandbox: its cloudpickle; failing that, its source
    and the globals the source names (modules by name, other values pickled).

    Raises:
        EngineLoadError: neither works (one line, saying how to fix it).
    """
    name, qualname = engine_name(engine), getattr(engine, "__qualname__", "Value")
    try:
        import cloudpickle
    except ImportError as error:
        cloudpickle, why = None, _one_line(error)
    if cloudpickle is not None:
        try:
            return Shipped(name, qualname, "pickle", cloudpickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as error:  # noqa: BLE001 - whatever the class holds
            why = f"cloudpickle: {_one_line(error)}"
    try:
        return Shipped(name, qualname, "source", _source_payload(engine, cloudpickle))
    except Exception as error:  # noqa: BLE001
        raise _cannot_ship(engine, f"{why}; its source: {_one_line(error)}") from None


def _source_payload(engine: type, cloudpickle: Any) -> bytes:
    """``(source, {alias: module}, {name: value})`` of a class whose source can be
    found (a notebook cell's too), with the globals the source reads: modules by
    name, other values pickled one by one.

    Raises:
        OSError: no source (or the class is defined inside a function).
        TypeError, pickle.PicklingError: a global it reads cannot be pickled.
    """
    if "<locals>" in engine.__qualname__:
        raise OSError("it is defined inside a function")
    source = textwrap.dedent(_class_source(engine))
    tree = ast.parse(source)
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    bound = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
    bound |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    scope = _scope(engine)
    dumps = cloudpickle.dumps if cloudpickle is not None else pickle.dumps
    imports, values = {}, {}
    for n in sorted(read - bound - {engine.__name__}):
        if n not in scope or (hasattr(builtins, n) and scope[n] is getattr(builtins, n)):
            continue
        value = scope[n]
        if isinstance(value, types.ModuleType):
            imports[n] = value.__name__
            continue
        try:
            dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001
            raise TypeError(f"the global {n!r} it uses: {_one_line(error)}") from None
        values[n] = value
    return dumps((source, imports, values), protocol=pickle.HIGHEST_PROTOCOL)


def _functions(engine: type) -> list[Any]:
    """The functions defined in ``engine``'s class body."""
    found = []
    for value in vars(engine).values():
        function = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
        if isinstance(function, types.FunctionType):
            found.append(function)
    return found


def _scope(engine: type) -> dict[str, Any]:
    """The globals ``engine``'s methods see (a notebook's, a script's)."""
    for function in _functions(engine):
        return function.__globals__
    module = sys.modules.get(engine.__module__)
    return vars(module) if module is not None else {}


def _class_source(engine: type) -> str:
    """The source of ``engine``'s class statement: from its file, or from the cell
    its methods were compiled from (IPython keeps each cell in linecache, where
    ``inspect`` before Python 3.13 does not look for a class)."""
    try:
        return inspect.getsource(engine)
    except (OSError, TypeError):
        pass
    for function in _functions(engine):
        code = function.__code__
        lines = linecache.getlines(code.co_filename)
        if not lines:
            continue
        for node in ast.walk(ast.parse("".join(lines))):
            if (isinstance(node, ast.ClassDef) and node.name == engine.__name__
                    and node.lineno <= code.co_firstlineno <= (node.end_lineno or 0)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                return "".join(lines[start - 1:node.end_lineno])
    raise OSError("source code not available")


def _unship(kind: str, qualname: str, payload: bytes) -> type:
    """The class a parent shipped (in the sandbox)."""
    if kind == "pickle":
        engine = pickle.loads(payload)
    else:
        source, imports, values = pickle.loads(payload)
        module = types.ModuleType("__crossgrad_shipped__")
        sys.modules[module.__name__] = module
        scope = vars(module)
        for alias, name in imports.items():
            scope[alias] = __import__(name, fromlist=["_"])
        scope.update(values)
        exec(compile(source, f"<{qualname}>", "exec"), scope)  # noqa: S102 - the user's own class
        engine = scope[qualname]
    if not isinstance(engine, type):
        raise TypeError(f"a {type(engine).__name__}, expected a class")
    return engine


class InProcess:
    """Runs the engine in this process (no protection from crashes or hangs)."""

    def __init__(self, engine: type, name: str | None = None) -> None:
        self.engine = engine
        # An engine made in this process (a framework with a custom gradient) names itself.
        said = getattr(engine, "crossgrad_name", None)
        self.name = name or (said if isinstance(said, str) else None) or target_of(engine) or engine_name(engine)
        self.supported, self.missing = probe(engine)

    def run(self, program: Program, points: Sequence[Sequence[float]], record: bool = False, order: int = 1,
            forward: bool = False) -> list[EngineOutcome]:
        return run(self.engine, program, [tuple(map(float, p)) for p in points], record=record, order=order, forward=forward)

    def run_batch(self, jobs: Sequence[tuple[Program, Sequence[Sequence[float]]]], order: int = 1,
                  forward: bool = False) -> list[list[EngineOutcome]]:
        """:meth:`run` of each ``(program, points)`` in turn."""
        return [self.run(program, points, order=order, forward=forward) for program, points in jobs]

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
        n = len(program.variables)
        if o.hessian is not None and (len(o.hessian) != n or any(len(row) != n for row in o.hessian)):
            raise ValueError(f"a Hessian that is not {n} x {n}")
        if o.tangents is not None and len(o.tangents) != n:
            raise ValueError(f"{len(o.tangents)} tangents for {n} variables")
        # Up to the node that failed, when building the graph failed.
        if any(xs is not None and len(xs) > len(program) for xs in (o.node_values, o.node_grads)):
            raise ValueError("node values that do not match the graph")
    return outcomes


SHIPPED = "-"  # the sandbox's target argument when the class comes on stdin


def _request(requests: Any) -> Any:
    (size,) = _HEADER.unpack(requests.read(_HEADER.size))
    return pickle.loads(requests.read(size))


def serve(target: str) -> None:
    """The sandbox's main loop (see :data:`_BOOT`; also ``python -m verifier.hosts TARGET``).

    Requests come as pickles on stdin (first the shipped class, when ``target`` is
    ``-``); answers go out on what was stdout, which is then pointed at /dev/null
    (with stderr) so that the engine's prints go nowhere. Ctrl-C is left to the
    parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        _, specs = _request(requests)  # the ops defined in the parent, by name and method
        if specs:
            from verifier.define import register_engine_side

            register_engine_side(specs)
        if target == SHIPPED:
            _, kind, target, qualname, payload = _request(requests)
            try:
                engine = _unship(kind, qualname, payload)
            except BaseException as error:  # noqa: BLE001
                name = qualname.rpartition(".")[2]
                raise EngineLoadError(
                    f"engine {target} could not be rebuilt in a sandbox process ({plain_text(describe_error(error))[:160]});"
                    f" move the class to a .py file and pass 'file.py:{name}', or pass isolate=False to run it in this"
                    f" process, unprotected") from None
        else:
            engine = load_engine(target)
        supported, missing = probe(engine)
    except EngineLoadError as error:
        _send(answers, ("error", plain_text(str(error))))
        return
    except BaseException as error:  # noqa: BLE001 - e.g. SystemExit while importing
        _send(answers, ("error", f"loading {target} failed: {describe_error(error).partition(':')[0]}"))
        return
    declared = getattr(engine, "crossgrad_format", None)
    _send(answers, ("ready", supported, missing, plain_text(declared) if isinstance(declared, str) else ""))
    while True:
        try:
            message = _request(requests)
        except (EOFError, OSError, struct.error):
            return
        if message[0] == "close":
            return
        # Cases to run: one answer each, sent as soon as it is ready, in plain
        # tuples only (every number an exact builtin).
        _, jobs, record, order, forward = message
        for program, points in jobs:
            _send(answers, ("ok", run_plain(engine, program, points, record=record, order=order, forward=forward)))


# The sandbox's first lines: its import path is set before anything is imported
# (``python -c`` put the current folder first), verifier comes from crossgrad's own
# folder, and so do engine, reports and properties afterwards.
_BOOT = """\
import sys
sys.path[:] = {path!r}
import importlib.util
spec = importlib.util.spec_from_file_location(
    "verifier", {init!r}, submodule_search_locations=[{package!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["verifier"] = module
spec.loader.exec_module(module)
from verifier.loader import own_packages_first
own_packages_first()
from verifier.hosts import serve
serve(sys.argv[1])
"""


def _defined_specs() -> tuple[tuple[str, int, str], ...]:
    # Only when some op was defined: a plain campaign never imports SymPy here.
    if "verifier.define" not in sys.modules:
        return ()
    return sys.modules["verifier.define"].engine_specs()


class Sandbox:
    """Runs the engine in a child process (a fresh interpreter: nothing of the
    caller's script or notebook is re-run there).

    Args:
        target: ``package.module:Class`` or ``path/to/file.py:Class``; or a class
            (one that cannot be imported again is shipped by value, see :func:`ship`);
            or a :class:`Shipped` class.
        timeout: seconds one case (an expression at all its points) may take.

    Attributes:
        name: ``module:Class`` for reports.
        target: what starts this sandbox again (a target string or a
            :class:`Shipped`), e.g. in a worker process.

    Raises:
        EngineLoadError: if the engine cannot be imported or shipped (one-line message).
    """

    def __init__(self, target: str | type | Shipped, *, timeout: float = 10.0) -> None:
        if isinstance(target, type):
            target = target_of(target) or ship(target)
        self.target: str | Shipped = target
        self.name: str = target.name if isinstance(target, Shipped) else target
        self.timeout = timeout
        self.restarts = 0
        self._process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        package = os.path.join(HOME, "verifier")
        boot = _BOOT.format(path=child_path(), init=os.path.join(package, "__init__.py"), package=package)
        shipped = isinstance(self.target, Shipped)
        process = subprocess.Popen(
            [sys.executable, "-c", boot, SHIPPED if shipped else self.target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the terminal is the parent's to handle.
            start_new_session=True,
        )
        try:
            try:
                _send(process.stdin, ("ops", _defined_specs()))
                if shipped:
                    t = self.target
                    _send(process.stdin, ("engine", t.kind, t.name, t.qualname, t.payload))
            except OSError:
                pass  # it died: reading its answer says how
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
        if not (type(message) is tuple and len(message) == 4 and message[0] == "ready" and type(message[3]) is str
                and all(type(names) is tuple and all(type(n) is str for n in names) for names in message[1:3])):
            process.kill()
            process.wait()
            raise EngineLoadError(f"engine {self.name!r} sent a garbled answer while loading")
        _, self.supported, self.missing, declared = message
        # What the engine says it computes in (its crossgrad_format), or "".
        self.declared_format: str = declared
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

    def run(self, program: Program, points: Sequence[Sequence[float]], record: bool = False, order: int = 1,
            forward: bool = False) -> list[EngineOutcome]:
        """Evaluate one case (see :func:`verifier.run_engine.run`). Raises
        EngineCrash or EngineTimeout (and restarts the sandbox for the next case)."""
        rows = [tuple(map(float, p)) for p in points]
        [result] = self._exchange(("run", [(program, rows)], record, order, forward), [(program, len(rows))])
        if isinstance(result, (EngineCrash, EngineTimeout)):
            raise result
        return result

    def run_batch(self, jobs: Sequence[tuple[Program, Sequence[Sequence[float]]]], order: int = 1,
                  forward: bool = False) -> list[list[EngineOutcome] | EngineCrash | EngineTimeout]:
        """:meth:`run` of each ``(program, points)`` in turn, in one round trip: the
        outcomes of each case, up to and including the first case that crashes or
        hangs the engine (as its EngineCrash or EngineTimeout; each case still has
        the whole timeout). The cases after it are not run."""
        jobs = [(program, [tuple(map(float, p)) for p in points]) for program, points in jobs]
        return self._exchange(("run", jobs, False, order, forward), [(program, len(rows)) for program, rows in jobs])

    def _exchange(self, message: tuple, shapes: Sequence[tuple[Program, int]]) -> list[list[EngineOutcome] | EngineCrash | EngineTimeout]:
        """Send one request; read one answer per ``(program, points)`` shape, until
        the first that fails (restarting the sandbox for the next request)."""
        if self._process is None:
            self.restarts += 1
            self._start()
        process = self._process
        results: list[list[EngineOutcome] | EngineCrash | EngineTimeout] = []
        try:
            _send(process.stdin, message)
            for program, count in shapes:
                results.append(_outcomes(_receive(process.stdout.fileno(), self.timeout), program, count))
        except TimeoutError:
            self._kill()
            results.append(EngineTimeout(f"no answer within {self.timeout:g} s (an infinite loop?)"))
        except (EOFError, OSError):
            code = process.wait()
            self._kill()
            results.append(EngineCrash(f"the engine's process died ({_exit_reason(code)})"))
        except ValueError as error:
            # Something wrote its own bytes to the answer channel: out of step for good.
            self._kill()
            results.append(EngineCrash(f"the engine's process sent a garbled answer ({error})"))
        except BaseException:
            # Interrupted half-way through a message: the channel is out of step.
            self._kill()
            raise
        return results

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

    Every engine runs in a sandbox unless ``isolate=False``: a class that cannot be
    imported again there (a notebook's, ``__main__``'s) is shipped by value.

    Raises:
        EngineLoadError: the engine cannot be loaded, or shipped (one line).
    """
    if engine is None:
        engine = "engine:Value"
    if isinstance(engine, str):
        if isolate is False:
            return InProcess(load_engine(engine), engine)
        return Sandbox(engine, timeout=timeout)
    if not isinstance(engine, type):
        raise TypeError(f"engine must be a class or a 'module:Class' target, got {type(engine).__name__}")
    if isolate is False:
        return InProcess(engine)
    return Sandbox(engine, timeout=timeout)


if __name__ == "__main__":
    own_packages_first()
    serve(sys.argv[1])
