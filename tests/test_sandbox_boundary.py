"""The data-only boundary with the engine's sandbox (verifier/hosts.py,
verifier/run_engine.py).

What this file proves:

* numbers and strings an engine makes come back as exact builtin ``float``,
  ``complex`` and ``str``, in this process as from the sandbox, even when they are
  subclasses (numpy's float64 is one) or come from a hostile ``__str__``;
* the parent never unpickles an object the engine could have made: a ``.data``
  whose class has a ``__reduce__`` that would write a file writes nothing, and the
  campaign ends with a finding, not a traceback;
* a harmless subclass defined in the engine's file (which the parent cannot import)
  does not crash the campaign;
* bytes the engine writes itself to the answer channel (garbage, a forged pickle,
  an absurd length) are a ``crash`` finding about the engine.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.engines import subclass_header
from verifier.campaign import check_engine
from verifier.expr import compile_program
from verifier.hosts import EngineCrash, Sandbox, _loads, _outcomes
from verifier.loader import load_engine
from verifier.parsing import parse
from verifier.run_engine import EngineOutcome, describe_error, run

ROOT = Path(__file__).resolve().parent.parent

HEADER = subclass_header("math", "os", "pickle", "stat", "struct")

# tanh's .data is a complex subclass whose pickle would write MARKER when loaded.
EVIL_DATA = HEADER + '''
MARKER = {marker!r}


class Evil(complex):
    def __reduce__(self):
        return (open, (MARKER, "w"))


class Value(_base.Value):
    def tanh(self):
        out = super().tanh()
        out.data = Evil(out.data, 1.0)
        return out


_base.Value = Value
'''

# Subclasses the parent could not import (they live in the engine's file): every
# op's .data and .grad are float subclasses, exp's .data a complex subclass, and
# log raises an exception whose message is a str subclass with its own split().
HARMLESS = HEADER + '''

class MyFloat(float):
    pass


class MyComplex(complex):
    pass


class MyStr(str):
    def split(self, *args):
        return ["not", "what", "was", "said"]


class Oops(ValueError):
    def __str__(self):
        return MyStr("log does not like " + "<b>this</b>")


class Value(_base.Value):
    def __init__(self, data, _children=(), _op=''):
        super().__init__(data, _children, _op)
        self.data = MyFloat(self.data)

    def exp(self):
        out = super().exp()
        out.data = MyComplex(out.data, 0.5)
        return out

    def log(self):
        raise Oops()


_base.Value = Value
'''

# sin writes its own bytes to the sandbox's answer channel (the only writable pipe).
WRITER = HEADER + '''
PAYLOAD = {payload!r}


def _answer_channels():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode) and os.get_blocking(fd) is not None:
                import fcntl
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                    yield fd
        except OSError:
            pass


class Value(_base.Value):
    def sin(self):
        for fd in _answer_channels():
            os.write(fd, PAYLOAD)
        return super().sin()


_base.Value = Value
'''


def _forged(marker: Path) -> bytes:
    """A pickle that would create ``marker`` if loaded with ``pickle.loads``."""
    class Opener:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(("ok", [Opener()]), protocol=pickle.HIGHEST_PROTOCOL)


def _write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return f"{path}:Value"


def P(text: str):
    return compile_program(parse(text))


# -- exact builtin types -------------------------------------------------------------------

def _assert_plain(outcome: EngineOutcome) -> None:
    numbers = [outcome.value, *(outcome.gradient or ()), *(outcome.node_values or ()), *(outcome.node_grads or ())]
    assert all(x is None or type(x) in (float, complex) for x in numbers), [type(x) for x in numbers]
    assert type(outcome.error) is str and type(outcome.stage) is str and type(outcome.status) is str
    assert outcome.node is None or type(outcome.node) is int


def test_in_process_outcomes_hold_exact_builtin_types(tmp_path: Path) -> None:
    engine = load_engine(_write(tmp_path, "harmless", HARMLESS))
    for text in ("exp(x0) * x1", "log(x0) + x1", "x0 * x1 - 3"):
        for outcome in run(engine, P(text), [(0.5, 2.0)], record=True):
            _assert_plain(outcome)
    [raised] = run(engine, P("log(x0)"), [(2.0,)])
    assert raised.status == "exception" and raised.error == "Oops: log does not like <b>this</b>"
    [complex_] = run(engine, P("exp(x0)"), [(0.0,)])
    assert type(complex_.value) is complex and complex_.value == 1 + 0.5j


def test_describe_error_makes_plain_strings_of_hostile_messages() -> None:
    class Loud(str):
        def split(self, *args):
            raise RuntimeError("split was called")

        def __format__(self, spec):
            raise RuntimeError("format was called")

    class Meta(type):
        @property
        def __name__(cls):
            raise RuntimeError("the metaclass's __name__ was called")

    class Weird(Exception, metaclass=Meta):
        def __str__(self):
            return Loud("a   message")

    text = describe_error(Weird())
    assert text == "Weird: a message" and type(text) is str


def test_outcomes_are_checked_field_by_field() -> None:
    good = ("ok", 1.0, (2.0,), "", "", None, None, None, None, None, "", "")
    assert EngineOutcome.from_tuple(good).value == 1.0
    for bad in [
        ("ok", 1.0, (2.0,), "", "", None, None),  # short
        ("fine", 1.0, (2.0,), "", "", None, None, None, None, None, "", ""),  # unknown status
        ("ok", 1, (2.0,), "", "", None, None, None, None, None, "", ""),  # an int value
        ("ok", 1.0, [2.0], "", "", None, None, None, None, None, "", ""),  # a list gradient
        ("ok", 1.0, (2.0,), b"", "", None, None, None, None, None, "", ""),  # bytes
        ("ok", 1.0, (2.0,), "", "", -1, None, None, None, None, "", ""),  # a negative node
        ("ok", 1.0, (2.0,), "", "", True, None, None, None, None, "", ""),  # a bool node
        ("ok", 1.0, (2.0,), "", "", None, None, None, [(1.0,)], None, "", ""),  # a list Hessian
        ("ok", 1.0, (2.0,), "", "", None, None, None, ((1,),), None, "", ""),  # an int in the Hessian
        ("ok", 1.0, (2.0,), "", "", None, None, None, None, ("1",), "", ""),  # a str tangent
        ("ok", 1.0, (2.0,), "", "", None, None, None, None, None, None, ""),  # a None error
    ]:
        with pytest.raises(ValueError, match="not an engine outcome"):
            EngineOutcome.from_tuple(bad)
    program = P("x0 * x1")
    with pytest.raises(ValueError, match="outcomes for 2 points"):
        _outcomes(("ok", [good]), program, 2)
    with pytest.raises(ValueError, match="partials"):
        _outcomes(("ok", [good]), program, 1)  # one partial for two variables


def test_the_parent_refuses_every_class_but_complex(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    plain = ("ok", [1 + 2j, float("inf"), "text", None, (1, True)])
    assert _loads(pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)) == plain
    with pytest.raises(ValueError, match="refused to load .*open"):
        _loads(_forged(marker))
    with pytest.raises(ValueError):
        _loads(b"\x80\x05garbage")
    assert not marker.exists()


# -- through the sandbox and the campaign ---------------------------------------------------

def test_a_data_with_a_hostile_reduce_never_runs_in_the_parent(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    target = _write(tmp_path, "evil_data", EVIL_DATA.format(marker=str(marker)))
    with Sandbox(target, timeout=10) as host:
        [outcome] = host.run(P("tanh(x0)"), [(0.5,)])
    assert type(outcome.value) is complex
    result = check_engine(target, examples=40, seed=0, ops="add,tanh")
    assert result.stopped == "completed" and result.examples == 40
    assert any(f.blame.op == "tanh" for f in result.findings + result.warnings), result.findings
    assert not marker.exists()


def test_harmless_subclasses_do_not_crash_the_campaign(tmp_path: Path) -> None:
    result = check_engine(_write(tmp_path, "harmless", HARMLESS), examples=60, seed=0, ops="add,mul,exp,log")
    assert result.stopped == "completed" and result.examples == 60
    found = {(f.kind, f.blame.op) for f in result.findings}
    assert ("exception", "log") in found and all(f.kind != "crash" for f in result.findings), found
    [log] = [f for f in result.findings if f.blame.op == "log"]
    assert "log does not like <b>this</b>" in log.message


@pytest.mark.parametrize("payload", [
    b"\x00\x00\x00\x00\x00\x00\x00\x07garbage",  # a length, then bytes that are no pickle
    b"\xff" * 8,  # an absurd length
    None,  # a forged pickle that would write a file (filled in below)
])
def test_bytes_written_to_the_answer_channel_are_a_crash(tmp_path: Path, payload: bytes | None) -> None:
    import struct

    marker = tmp_path / "pwned"
    if payload is None:
        forged = _forged(marker)
        payload = struct.pack("!Q", len(forged)) + forged
    target = _write(tmp_path, "writer", WRITER.format(payload=payload))
    with Sandbox(target, timeout=5) as host:
        with pytest.raises(EngineCrash, match="garbled answer"):
            host.run(P("sin(x0)"), [(0.5,)])
        [after] = host.run(P("x0 * x0"), [(3.0,)])  # restarted for the next case
        assert after.gradient == (6.0,)
    result = check_engine(target, examples=30, seed=0, ops="add,sin", timeout=5)
    assert result.stopped == "completed"
    assert [(f.kind, f.blame.op) for f in result.findings] == [("crash", "sin")]
    assert not marker.exists()
