"""The judge (verifier/judge.py) on hand-made engine outcomes.

What this file proves:

* where the value is defined: the exact answer passes; 2 floors off passes; 100
  floors off is a precision warning; 1e7 floors off with a relative error ~1e-8 is an
  error caused by "precision"; a wrong formula is an error caused by "engine";
  nan, inf, complex and None are errors; an exception (forward or backward) is an
  error; an invalid outcome is an error;
* outside the domain: an exception, nan and inf are accepted; a complex or finite
  value is a warning caused by "domain", except that a finite final value is
  accepted when the engine's own value at the offending node is nan/inf (IEEE
  propagation, as in 1/log(-1) = 1/nan);
* where the gradient is undefined (sqrt at 0) an exception in backward() is fine,
  one in the forward pass is not; not-representable and ill-conditioned points
  accept anything;
* at a kink any gradient between the one-sided values passes, one outside fails;
* ``format_point`` prints numbers that parse back exactly.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.expr import compile_program
from verifier.judge import ERROR, PASS, Verdict, format_point, judge_oracle, judge_point, worst
from verifier.parsing import parse
from verifier.reference import exact
from verifier.run_engine import EngineOutcome

VARS = ("x", "y")


def truth_of(text: str, *point: float):
    return exact(compile_program(parse(text)), point)


@pytest.fixture(scope="module")
def truth():
    """tanh(x) * y at (0.5, 3): an ordinary defined point."""
    t = truth_of("tanh(x) * y", 0.5, 3.0)
    assert t.status == "defined" and t.value_floor > 0 and all(f > 0 for f in t.gradient_floor)
    return t


def ok(value, gradient, **kw) -> EngineOutcome:
    return EngineOutcome("ok", value, tuple(gradient), **kw)


def kinds(verdicts) -> list[tuple[str, str, str]]:
    return [(v.kind, v.severity, v.cause) for v in verdicts]


# -- defined points ------------------------------------------------------------------------------

def test_exact_answer_passes(truth) -> None:
    assert judge_point(truth, ok(truth.value, truth.gradient), VARS) == []


def test_two_floors_off_passes(truth) -> None:
    g = list(truth.gradient)
    g[0] += 2 * truth.gradient_floor[0]
    g[1] -= 2 * truth.gradient_floor[1]
    assert judge_point(truth, ok(truth.value + 2 * truth.value_floor, g), VARS) == []


def test_hundred_floors_off_is_a_precision_warning(truth) -> None:
    verdicts = judge_point(truth, ok(truth.value + 100 * truth.value_floor, truth.gradient), VARS)
    assert kinds(verdicts) == [("value", "warning", "precision")]
    assert verdicts[0].ratio == pytest.approx(100, rel=0.01)
    g = (truth.gradient[0], truth.gradient[1] - 100 * truth.gradient_floor[1])
    verdicts = judge_point(truth, ok(truth.value, g), VARS)
    assert kinds(verdicts) == [("gradient", "warning", "precision")]
    assert verdicts[0].variable == 1 and "d/dy" in verdicts[0].message


def test_far_off_with_tiny_relative_error_is_a_precision_error(truth) -> None:
    g0 = truth.gradient[0] + 1e7 * truth.gradient_floor[0]
    relative = abs(g0 - truth.gradient[0]) / abs(truth.gradient[0])
    assert 1e-9 < relative < 1e-7  # the point of the case: ~1e-8, e.g. single precision
    verdicts = judge_point(truth, ok(truth.value, (g0, truth.gradient[1])), VARS)
    assert kinds(verdicts) == [("gradient", "error", "precision")]
    assert verdicts[0].ratio > ERROR
    assert "relative error" in verdicts[0].message


def test_wrong_formula_is_an_engine_error(truth) -> None:
    wrong = 3.0 * (1 - math.tanh(0.5))  # tanh' written as 1 - t instead of 1 - t**2
    verdicts = judge_point(truth, ok(truth.value, (wrong, truth.gradient[1])), VARS)
    assert kinds(verdicts) == [("gradient", "error", "engine")]
    v = verdicts[0]
    assert v.variable == 0 and "engine d/dx" in v.message and v.error == pytest.approx(abs(wrong - truth.gradient[0]))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1j, 1 + 0j, None])
def test_non_numbers_where_defined_are_errors(truth, bad) -> None:
    verdicts = judge_point(truth, ok(bad, truth.gradient), VARS)
    assert kinds(verdicts) == [("value", "error", "engine")]
    verdicts = judge_point(truth, ok(truth.value, (truth.gradient[0], bad)), VARS)
    assert kinds(verdicts) == [("gradient", "error", "engine")] and verdicts[0].variable == 1


@pytest.mark.parametrize("stage", ["forward", "backward"])
def test_exception_where_defined_is_an_error(truth, stage: str) -> None:
    value = None if stage == "forward" else truth.value
    outcome = EngineOutcome("exception", value, None, "ZeroDivisionError: float division", stage)
    verdicts = judge_point(truth, outcome, VARS)
    assert kinds(verdicts) == [("exception", "error", "engine")]
    assert "ZeroDivisionError" in verdicts[0].message


def test_invalid_outcome_is_an_error(truth) -> None:
    outcome = EngineOutcome("invalid", None, None, "mul returned None instead of a Value", "forward", 2)
    assert kinds(judge_point(truth, outcome, VARS)) == [("invalid", "error", "engine")]


def test_who_labels_the_message(truth) -> None:
    wrong = (truth.gradient[0] * 2, truth.gradient[1])
    [v] = judge_oracle(truth, truth.value, wrong, VARS, "torch")
    assert v.message.startswith("torch d/dx")


def test_thresholds_are_ordered() -> None:
    assert 1 < PASS < 100 < ERROR < 1e7


# -- outside the domain ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outside():
    t = truth_of("log(x)", -1.0)
    assert t.status == "outside-domain"
    return t


@pytest.mark.parametrize("outcome", [
    EngineOutcome("exception", None, None, "ValueError: math domain error", "forward", 1),
    EngineOutcome("ok", math.nan, (math.nan,)),
    EngineOutcome("ok", math.inf, (0.0,)),
    EngineOutcome("ok", -math.inf, (math.nan,)),
], ids=["exception", "nan", "inf", "-inf"])
def test_outside_domain_accepts_exceptions_nan_and_inf(outside, outcome) -> None:
    assert judge_point(outside, outcome, ("x",)) == []


@pytest.mark.parametrize("value", [1j, math.pi * 1j, 0.5, 0.0])
def test_outside_domain_complex_and_finite_are_domain_warnings(outside, value) -> None:
    verdicts = judge_point(outside, EngineOutcome("ok", value, (1.0,)), ("x",))
    assert kinds(verdicts) == [("value", "warning", "domain")]
    assert "undefined" in verdicts[0].message and "log of -1" in verdicts[0].message
    if isinstance(value, complex):
        assert "complex" in verdicts[0].message


def test_outside_domain_ieee_propagation_is_accepted() -> None:
    text = "1 / log(x)"
    truth = truth_of(text, -1.0)
    program = compile_program(parse(text))
    assert truth.status == "outside-domain" and program.ops[truth.node] == "log"
    # The engine's log returned nan, and 1/nan... a finite number at the output (e.g. 1/inf = 0).
    for at_node in (math.nan, math.inf, -math.inf):
        nodes = [None] * len(program)
        nodes[truth.node] = at_node
        outcome = EngineOutcome("ok", 0.0, (0.0,), node_values=tuple(nodes))
        assert judge_point(truth, outcome, ("x",)) == []
    # But a finite number made up at the log itself is a warning, naming that node.
    nodes = [None] * len(program)
    nodes[truth.node] = 5.0
    verdicts = judge_point(truth, EngineOutcome("ok", 0.2, (0.0,), node_values=tuple(nodes)), ("x",))
    assert kinds(verdicts) == [("value", "warning", "domain")]
    assert "at the log that leaves its domain" in verdicts[0].message
    # Without recorded node values, a finite output is a warning too.
    assert kinds(judge_point(truth, EngineOutcome("ok", 0.0, (0.0,)), ("x",))) == [("value", "warning", "domain")]


# -- other classes ----------------------------------------------------------------------------------------

def test_gradient_undefined_accepts_backward_exception_only() -> None:
    truth = truth_of("sqrt(x)", 0.0)
    assert truth.status == "gradient-undefined"
    backward = EngineOutcome("exception", 0.0, None, "DomainError: sqrt'(0)", "backward")
    assert judge_point(truth, backward, ("x",)) == []
    assert judge_point(truth, EngineOutcome("ok", 0.0, (math.inf,)), ("x",)) == []  # gradient not judged
    forward = EngineOutcome("exception", None, None, "ValueError: sqrt", "forward", 1)
    assert kinds(judge_point(truth, forward, ("x",))) == [("exception", "error", "engine")]
    # The value itself is still judged.
    assert kinds(judge_point(truth, EngineOutcome("ok", 0.5, (1.0,)), ("x",))) == [("value", "error", "engine")]


@pytest.mark.parametrize(("text", "x"), [("exp(x)", 800.0), ("sqrt(x - 1.5)", 1.5 + 2**-52)])
def test_not_representable_and_ill_conditioned_accept_anything(text: str, x: float) -> None:
    truth = truth_of(text, x)
    assert truth.status in ("not-representable", "ill-conditioned")
    for outcome in (EngineOutcome("ok", 12.0, (1.0,)), EngineOutcome("exception", None, None, "OverflowError", "forward")):
        assert judge_point(truth, outcome, ("x",)) == []


# -- kinks ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kink():
    t = truth_of("relu(x) * y", 0.0, 2.0)
    assert t.status == "kink" and t.gradient_low[0] == 0.0 and t.gradient_high[0] == 2.0
    return t


@pytest.mark.parametrize("g", [0.0, 0.5, 1.0, 2.0])
def test_kink_accepts_anything_between_the_one_sided_values(kink, g: float) -> None:
    assert judge_point(kink, ok(0.0, (g, 0.0)), VARS) == []


@pytest.mark.parametrize("g", [-0.25, 2.5, 4.0])
def test_kink_rejects_gradients_outside(kink, g: float) -> None:
    verdicts = judge_point(kink, ok(0.0, (g, 0.0)), VARS)
    assert kinds(verdicts) == [("gradient", "error", "engine")]
    assert "(kink)" in verdicts[0].message and "between 0 and 2" in verdicts[0].message


# -- helpers ---------------------------------------------------------------------------------------------------

def test_worst_prefers_errors_then_kind() -> None:
    warning = Verdict("gradient", "warning", "precision", "w")
    value = Verdict("value", "error", "engine", "v")
    exception = Verdict("exception", "error", "engine", "e")
    assert worst([]) is None
    assert worst([warning, value]) is value
    assert worst([warning, value, exception]) is exception


def test_verdict_ratio() -> None:
    assert Verdict("value", "error", "engine", "m", error=8.0, floor=2.0).ratio == 4.0
    assert Verdict("value", "error", "engine", "m", error=1.0, floor=0.0).ratio == math.inf


def test_format_point_examples() -> None:
    assert format_point(("x0", "x1"), (1.5, -2.0)) == "x0=1.5, x1=-2"
    assert format_point(("a",), (-0.0,)) == "a=-0.0"
    assert format_point(("a", "b"), (1e300, 5e-324)) == "a=1e+300, b=5e-324"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4))
def test_format_point_parses_back_exactly(values: list[float]) -> None:
    names = tuple(f"x{i}" for i in range(len(values)))
    text = format_point(names, values)
    items = text.split(", ")
    assert len(items) == len(values)
    for name, item, value in zip(names, items, values):
        key, number = item.split("=")
        assert key == name
        back = float(number)
        assert back == value and math.copysign(1.0, back) == math.copysign(1.0, value), (item, value)


def test_a_floor_near_the_largest_float_gives_no_overflow_warning() -> None:
    # Found on a 100,000-example campaign: slack * floor overflowed and numpy
    # printed a RuntimeWarning on the user's terminal. inf is the right answer.
    import warnings

    import numpy as np

    from verifier.evaluate import close_to_sweep
    from verifier.reference import Sweep

    ref = Sweep(value=np.array([1.0]), value_floor=np.array([1e308]), gradient=np.array([[2.0]]),
                gradient_floor=np.array([[1e308]]), clean=np.array([True]), outside=np.array([False]), finite=np.array([True]),
                node_values=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert close_to_sweep(ref, 0, 1e300, [1e300])
        assert not close_to_sweep(ref, 0, 1e300, [None])


@pytest.mark.parametrize(("text", "point", "answer"), [
    # x * 0.1 / 0.1 - x is 4.4e-16 in float64 at 3, not 0: cubed, 8.8e-47. The floor
    # of t**3 needs the third-order term e**3 (found on micrograd, which divides as
    # a * b**-1, in a 50,000-example campaign).
    ("(x * 0.1 / 0.1 - x)**3", (3.0,), (8.758115402030107e-47, (0.0,))),
    # sigmoid(-710) is subnormal: a correct engine (torch) flushes it and its
    # derivative to zero; -710 times that flushed derivative is off by 3e-306.
    ("sigmoid(x) * x", (-710.0,), (-0.0, (0.0,))),
    # sigmoid(-740) has three digits left; its derivative divided by 2e-163 is
    # 2.0998e-159, not 2.0944e-159 (engine.Value, a 100,000-example campaign).
    ("log(sigmoid(x) + y)", (-740.0, 2e-163), (-374.6282229774695, (2.0997789948252981e-159, 5.0000000000000005e+162))),
])
def test_correct_float64_answers_at_the_edges_of_the_noise_model_pass(text, point, answer) -> None:
    truth = truth_of(text, *point)
    value, gradient = answer
    assert judge_point(truth, ok(value, gradient), compile_program(parse(text)).variables) == []


# -- each quantity on its own (the edges of float64) ---------------------------------------------

def test_a_wrong_partial_is_caught_where_an_intermediate_underflows() -> None:
    # exp(-2100) underflows to 0: the point used to be "not representable" and
    # d/dx1 = 2 instead of 3 was accepted.
    t = truth_of("x1*3 + exp(x0*3)", -700.0, 2.0)
    assert judge_point(t, ok(6.0, (0.0, 3.0)), ("x0", "x1")) == []
    [v] = judge_point(t, ok(6.0, (0.0, 2.0)), ("x0", "x1"))
    assert (v.kind, v.severity, v.variable) == ("gradient", "error", 1)


def test_underflow_to_zero_is_an_exact_answer() -> None:
    t = truth_of("exp(x0) * x1", -800.0, 1.0)  # 1e-348: float64 holds it as 0
    assert judge_point(t, ok(0.0, (0.0, 0.0)), ("x0", "x1")) == []
    assert [v.kind for v in judge_point(t, ok(1.0, (0.0, 0.0)), ("x0", "x1"))] == ["value"]


def test_a_partial_independent_of_an_overflow_is_still_judged() -> None:
    t = truth_of("x1*3 + exp(exp(x0))", 10.0, 2.0)
    names = ("x0", "x1")
    assert judge_point(t, ok(math.inf, (math.nan, 3.0)), names) == []
    [v] = judge_point(t, ok(math.inf, (math.nan, 2.0)), names)
    assert (v.kind, v.variable) == ("gradient", 1)
    # Raising where the value overflows (math.exp(22026)) is fine, forward or backward.
    assert judge_point(t, EngineOutcome("exception", None, None, "OverflowError: math range error", "forward"), names) == []
    assert judge_point(t, EngineOutcome("exception", math.inf, None, "OverflowError", "backward"), names) == []


def test_a_backward_exception_is_an_error_where_every_partial_is_judged() -> None:
    t = truth_of("x1/x0", 1e-160, 2.0)  # d/dx0 = -2e320 is beyond float64; d/dx1 is not
    names = ("x0", "x1")
    assert judge_point(t, EngineOutcome("exception", 2e160, None, "OverflowError", "backward"), names) == []
    t = truth_of("x1/x0", 2.0, 3.0)
    [v] = judge_point(t, EngineOutcome("exception", 1.5, None, "OverflowError", "backward"), names)
    assert (v.kind, v.severity) == ("exception", "error")


def test_a_domain_warning_names_the_op_whose_engine_input_left_the_domain() -> None:
    # sqrt(x - 1) at x = 0.5 is outside the domain. An engine whose sub gave sqrt a
    # valid input (0, through its own upstream error) made nothing up at sqrt: no
    # domain warning there (the upstream error is a value finding of its own).
    program = compile_program(parse("sqrt(x - 1)"))
    t = exact(program, (0.5,))
    assert t.status == "outside-domain"
    inside = ok(0.0, (0.0,), node_values=(0.5, 1.0, 0.0, 0.0))
    assert judge_point(t, inside, ("x",), program=program) == []
    outside = ok(0.7, (0.0,), node_values=(0.5, 1.0, -0.5, 0.7))
    [v] = judge_point(t, outside, ("x",), program=program)
    assert (v.kind, v.severity, v.cause, v.node) == ("value", "warning", "domain", 3) and "sqrt of -0.5" in v.message
