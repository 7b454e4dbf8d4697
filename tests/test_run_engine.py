"""The engine protocol runner (verifier/run_engine.py) with small engines defined here.

What this file proves:

* ``probe`` reports the ops an engine supports and lacks (karpathy's micrograd lacks
  exp, log, tanh, sigmoid, sin, cos and sqrt), and ``run`` works with micrograd;
* whatever the engine does becomes data, never an exception: an op returning None
  is ``invalid`` with the node index; an op raising is ``exception`` at stage
  ``forward`` (with the node) or ``backward``; complex data comes back as complex;
  a ``.data`` property that raises and a ``.grad`` that is None are reported;
* constants stay plain numbers, so ``3 - x`` really calls ``__rsub__`` (an engine
  recording the dunders it receives shows which were called);
* ``record=True`` returns every node's value and gradient.
"""

from __future__ import annotations

import math

import pytest
from micrograd.engine import Value as MicrogradValue

from engine import Value as EngineValue
from verifier.expr import compile_program
from verifier.ops import OPS
from verifier.parsing import parse
from verifier.run_engine import EngineOutcome, describe_error, probe, run


def P(text: str):
    return compile_program(parse(text))


class Mini:
    """A tiny correct engine: + - * / ** neg, tanh, with a recursive backward."""

    def __init__(self, data, children=(), locals_=()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._locals = locals_

    def _lift(self, other):
        return other if isinstance(other, Mini) else type(self)(float(other))

    def _new(self, data, children, locals_):
        return type(self)(data, children, locals_)

    def __add__(self, other):
        other = self._lift(other)
        return self._new(self.data + other.data, (self, other), (1.0, 1.0))

    def __radd__(self, other):
        return self._lift(other) + self

    def __mul__(self, other):
        other = self._lift(other)
        return self._new(self.data * other.data, (self, other), (other.data, self.data))

    def __rmul__(self, other):
        return self._lift(other) * self

    def __neg__(self):
        return self._new(-self.data, (self,), (-1.0,))

    def __sub__(self, other):
        other = self._lift(other)
        return self._new(self.data - other.data, (self, other), (1.0, -1.0))

    def __rsub__(self, other):
        return self._lift(other) - self

    def __truediv__(self, other):
        other = self._lift(other)
        return self._new(self.data / other.data, (self, other), (1 / other.data, -self.data / other.data**2))

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __pow__(self, p):
        return self._new(self.data**p, (self,), (p * self.data ** (p - 1),))

    def tanh(self):
        t = math.tanh(self.data)
        return self._new(t, (self,), (1 - t * t,))

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for c in v._children:
                    visit(c)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for child, d in zip(v._children, v._locals):
                child.grad += d * v.grad


# -- probe and micrograd ---------------------------------------------------------------------------

def test_probe_micrograd() -> None:
    supported, missing = probe(MicrogradValue)
    assert set(missing) == {"exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt"}
    assert set(supported) == {"add", "sub", "mul", "div", "neg", "pow", "relu"}
    assert list(supported) == [n for n in OPS if n in supported]  # in table order


def test_probe_builtin_engine_and_mini() -> None:
    assert probe(EngineValue) == (tuple(OPS), ())
    supported, missing = probe(Mini)
    assert set(supported) == {"add", "sub", "mul", "div", "neg", "pow", "tanh"}
    assert "exp" in missing and "relu" in missing


def test_run_micrograd() -> None:
    [outcome] = run(MicrogradValue, P("3 - x*y + x**2/y + relu(x - 1)"), [(2.0, 3.0)])
    assert outcome.status == "ok" and outcome.error == ""
    assert outcome.value == pytest.approx(3 - 6 + 4 / 3 + 1)
    assert outcome.gradient == pytest.approx((-3 + 4 / 3 + 1, -2 - 4 / 9))


def test_run_micrograd_missing_op_is_an_exception_at_its_node() -> None:
    program = P("x * 2 + tanh(x)")
    [outcome] = run(MicrogradValue, program, [(0.5,)])
    assert outcome.status == "exception" and outcome.stage == "forward"
    assert "AttributeError" in outcome.error and "tanh" in outcome.error
    assert program.ops[outcome.node] == "tanh"


def test_run_fresh_graph_per_point() -> None:
    outcomes = run(Mini, P("x * x + y"), [(3.0, 1.0), (0.5, -2.0), (3.0, 1.0)])
    assert [o.value for o in outcomes] == [10.0, -1.75, 10.0]
    assert [o.gradient for o in outcomes] == [(6.0, 1.0), (1.0, 1.0), (6.0, 1.0)]  # no accumulation across points


# -- engines that misbehave ---------------------------------------------------------------------------------

class ReturnsNone(Mini):
    def __mul__(self, other):
        return None


class RaisesForward(Mini):
    def tanh(self):
        raise ZeroDivisionError("tanh of this engine is broken")


class RaisesBackward(Mini):
    def backward(self):
        raise RuntimeError("no backward today")


class ComplexPow(Mini):
    def __pow__(self, p):
        z = complex(self.data) ** p
        return ComplexPow(z, (self,), (p * complex(self.data) ** (p - 1),))


class NumberResult(Mini):
    def __add__(self, other):
        return 42.0


def test_op_returning_none_is_invalid_with_node() -> None:
    program = P("x + x * y")
    [outcome] = run(ReturnsNone, program, [(2.0, 3.0)])
    assert outcome.status == "invalid" and outcome.stage == "forward"
    assert program.ops[outcome.node] == "mul"
    assert outcome.error == "mul returned None instead of a Value"
    assert outcome.gradient is None


def test_op_returning_a_plain_number_is_invalid() -> None:
    program = P("x * y + x")
    [outcome] = run(NumberResult, program, [(2.0, 3.0)])
    assert outcome.status == "invalid" and program.ops[outcome.node] == "add"
    assert "42.0" in outcome.error


def test_op_raising_in_forward() -> None:
    program = P("x * y + tanh(y)")
    [outcome] = run(RaisesForward, program, [(2.0, 3.0)])
    assert outcome.status == "exception" and outcome.stage == "forward"
    assert outcome.error == "ZeroDivisionError: tanh of this engine is broken"
    assert program.ops[outcome.node] == "tanh"
    assert outcome.value is None and outcome.gradient is None


def test_raising_in_backward() -> None:
    [outcome] = run(RaisesBackward, P("x * y"), [(2.0, 3.0)])
    assert outcome.status == "exception" and outcome.stage == "backward"
    assert outcome.error == "RuntimeError: no backward today"
    assert outcome.value == 6.0  # the forward pass was fine
    assert outcome.node is None


def test_complex_data_comes_back_as_complex() -> None:
    [outcome] = run(ComplexPow, P("x**0.5"), [(-4.0,)])
    assert outcome.status == "ok"
    assert isinstance(outcome.value, complex) and outcome.value == pytest.approx(2j)
    assert isinstance(outcome.gradient[0], complex)


class PrivateData(Mini):
    """Stores its number in ``_d``; the public ``.data`` property raises."""

    def __init__(self, data, children=(), locals_=()):
        super().__init__(0.0, children, locals_)
        object.__setattr__(self, "_d", data)

    def __setattr__(self, name, value):
        if name == "data":
            name = "_d"
        object.__setattr__(self, name, value)

    @property
    def data(self):
        raise RuntimeError(".data is private")

    def __mul__(self, other):
        other = other if isinstance(other, PrivateData) else PrivateData(float(other))
        return PrivateData(self._d * other._d, (self, other), (other._d, self._d))


def test_data_property_that_raises_is_reported_not_raised() -> None:
    [outcome] = run(PrivateData, P("x * y"), [(2.0, 3.0)])
    assert outcome.status in ("invalid", "exception")
    assert outcome.stage == "forward"
    assert outcome.value is None and outcome.gradient is None
    assert ".data is private" in outcome.error or ".data" in outcome.error


def test_data_property_that_raises_is_invalid_like_grad() -> None:
    program = P("x * y")
    [outcome] = run(PrivateData, program, [(2.0, 3.0)])
    assert outcome.status == "invalid"
    assert outcome.node == program.output


class NoneGrad(Mini):
    """``.grad`` reads as None (e.g. an engine that never initialises it)."""

    @property
    def grad(self):
        return None

    @grad.setter
    def grad(self, value):
        object.__setattr__(self, "_g", value)

    def backward(self):
        pass


class RaisingGrad(NoneGrad):
    @property
    def grad(self):
        raise RuntimeError("no grad")

    @grad.setter
    def grad(self, value):
        pass


@pytest.mark.parametrize("engine", [NoneGrad, RaisingGrad])
def test_unreadable_grad_is_invalid(engine) -> None:
    [outcome] = run(engine, P("x * y"), [(2.0, 3.0)])
    assert outcome.status == "invalid" and outcome.stage == "backward"
    assert outcome.value == 6.0
    assert outcome.gradient == (None, None)
    assert ".grad" in outcome.error


class BadOutputData(Mini):
    def __mul__(self, other):
        out = super().__mul__(other)
        out.data = "six"
        return out


def test_output_data_not_a_number_is_invalid() -> None:
    program = P("x * y")
    [outcome] = run(BadOutputData, program, [(2.0, 3.0)])
    assert outcome.status == "invalid" and "not a number" in outcome.error and "six" in outcome.error
    assert outcome.node == program.output


# -- constants stay numbers: reflected dunders ---------------------------------------------------------------

class Recording(Mini):
    """Mini that logs every arithmetic dunder it receives."""

    calls: list[str] = []

    def _log(name):  # noqa: N805 - a decorator factory used in the class body
        def wrap(method):
            def logged(self, *args):
                Recording.calls.append(name)
                return method(self, *args)
            return logged
        return wrap

    __add__ = _log("__add__")(Mini.__add__)
    __radd__ = _log("__radd__")(Mini.__radd__)
    __sub__ = _log("__sub__")(Mini.__sub__)
    __rsub__ = _log("__rsub__")(Mini.__rsub__)
    __mul__ = _log("__mul__")(Mini.__mul__)
    __rmul__ = _log("__rmul__")(Mini.__rmul__)
    __truediv__ = _log("__truediv__")(Mini.__truediv__)
    __rtruediv__ = _log("__rtruediv__")(Mini.__rtruediv__)


def _dunders_for(text: str, point: tuple[float, ...]) -> tuple[EngineOutcome, list[str]]:
    Recording.calls = []
    [outcome] = run(Recording, P(text), [point])
    calls = [c for c in Recording.calls if c in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
                                                  "__truediv__", "__rtruediv__")]
    return outcome, calls


def test_number_on_the_left_calls_the_reflected_dunder() -> None:
    outcome, calls = _dunders_for("3 - x", (1.25,))
    assert outcome.status == "ok" and outcome.value == 1.75 and outcome.gradient == (-1.0,)
    assert calls[0] == "__rsub__"
    assert "__sub__" in calls  # Recording's __rsub__ lifts and delegates

    _, calls = _dunders_for("2 / x", (4.0,))
    assert calls[0] == "__rtruediv__"
    _, calls = _dunders_for("2 * x + 1", (4.0,))
    assert calls[:1] == ["__rmul__"] and "__add__" in calls
    _, calls = _dunders_for("x - 3", (4.0,))
    assert calls == ["__sub__"]


def test_constant_only_subexpression_is_wrapped_for_methods() -> None:
    outcome, _ = _dunders_for("x * 2 + 1", (4.0,))
    assert outcome.value == 9.0
    [o] = run(EngineValue, P("tanh(2) * x"), [(3.0,)])
    assert o.status == "ok" and o.value == pytest.approx(3 * math.tanh(2)) and o.gradient == pytest.approx((math.tanh(2),))


# -- record=True ------------------------------------------------------------------------------------------------

def test_record_returns_node_values_and_grads() -> None:
    program = P("x * y + 3 - x")
    assert program.ops == ("var", "var", "mul", "const", "add", "sub")
    [outcome] = run(Mini, program, [(2.0, 3.0)], record=True)
    assert outcome.node_values == (2.0, 3.0, 6.0, 3.0, 9.0, 7.0)
    assert outcome.node_grads == (2.0, 2.0, 1.0, None, 1.0, 1.0)  # constants have no grad
    [plain] = run(Mini, program, [(2.0, 3.0)])
    assert plain.node_values is None and plain.node_grads is None
    assert plain.value == outcome.value and plain.gradient == outcome.gradient


def test_record_with_an_exception_still_reports_it() -> None:
    program = P("x * y + tanh(y)")
    [outcome] = run(RaisesForward, program, [(2.0, 3.0)], record=True)
    assert outcome.status == "exception" and program.ops[outcome.node] == "tanh"
    [outcome] = run(RaisesBackward, program, [(2.0, 0.5)], record=True)
    assert outcome.status == "exception" and outcome.stage == "backward"
    assert outcome.node_values[:3] == (2.0, 0.5, 1.0)


# -- describe_error ---------------------------------------------------------------------------------------------

def test_describe_error_is_one_bounded_line() -> None:
    assert describe_error(ValueError("bad\n  input")) == "ValueError: bad input"
    assert describe_error(KeyError()) == "KeyError"
    assert len(describe_error(RuntimeError("x" * 1000))) == 300

    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert describe_error(Hostile()) == "Hostile: <unprintable message>"
