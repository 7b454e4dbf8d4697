"""Engines judged in their own number format (float32, bfloat16, ...): what the
format holds, its noise floors, and the float32 bugs that must still be caught."""

from __future__ import annotations

import numpy as np
import pytest

from verifier.campaign import check_engine
from verifier.expr import compile_program
from verifier.formats import FORMATS, current, format_named, using
from verifier.parsing import parse
from verifier.reference import truth_at
from verifier.run_engine import EngineOutcome
from verifier.judge import judge_point

F32 = "tests/engines/float32.py"


def test_rounding_to_each_format() -> None:
    x = np.array([0.1, 1e-40, 1e-46, 1e39, -2.5, 1.0 + 2.0**-9])
    assert FORMATS["float32"].round(x).tolist() == [float(np.float32(0.1)), float(np.float32(1e-40)), 0.0, np.inf, -2.5, 1.0 + 2.0**-9]
    assert FORMATS["float32-ftz"].round(x)[1] == 0.0  # XLA on CPU flushes subnormals
    assert FORMATS["bfloat16"].round(np.array([1.0 + 2.0**-9, 1.0 + 3 * 2.0**-9, 3.0e38]))[:2].tolist() == [1.0, 1.0 + 2.0**-7]
    assert FORMATS["float16"].round(np.array([70000.0]))[0] == np.inf
    with pytest.raises(ValueError, match="expected one of float64"):
        format_named("float33")


def test_the_floor_and_the_threshold_are_the_formats() -> None:
    program = compile_program(parse("exp(x0)"))
    single = float(np.float32(np.exp(np.float32(1.0))))
    with using("float32"):
        truth = truth_at(program, (1.0,))
        assert not [v for v in judge_point(truth, EngineOutcome("ok", single, (single,)), ("x0",)) if v.severity == "error"]
        off = single * (1 + 1e-4)  # a float32 derivative off by 1e-4 relative is an error
        assert [v.kind for v in judge_point(truth, EngineOutcome("ok", single, (off,)), ("x0",)) if v.severity == "error"] == ["gradient"]
    truth = truth_at(program, (1.0,))  # float64 again outside the block
    assert current().name == "float64"
    assert [v.kind for v in judge_point(truth, EngineOutcome("ok", single, (single,)), ("x0",))] == ["value", "gradient"]


def test_an_input_the_format_cannot_hold_is_not_judged() -> None:
    program = compile_program(parse("relu(x0) * 2"))
    with using("float32"):
        [point] = current().round(np.array([[-1e39]]))
        truth = truth_at(program, tuple(point))
    assert truth.value_status != "judged" and truth.gradient_status != ("judged",)


def test_a_correct_float32_engine_is_clean_as_float32() -> None:
    result = check_engine(f"{F32}:Float32", examples=300, seed=0)
    assert result.settings["dtype"] == "float32"  # its crossgrad_format, read in its sandbox
    assert [(f.kind, f.expression, f.message) for f in result.findings] == []


@pytest.mark.parametrize(("engine", "op", "kind"), [("TanhGradOff", "tanh", "gradient"), ("SigmoidOverflows", "sigmoid", "value")])
def test_float32_bugs_are_still_caught(engine: str, op: str, kind: str) -> None:
    result = check_engine(f"{F32}:{engine}", examples=300, seed=0)
    assert [(f.kind, f.blame.op) for f in result.findings] == [(kind, op)], [f.message for f in result.findings]


def test_an_engine_narrower_than_it_says_is_one_finding() -> None:
    result = check_engine(f"{F32}:Undeclared", examples=300, seed=0)
    assert result.settings["dtype"] == "float64"
    [finding] = result.findings
    assert finding.extra["narrower_format"] == "float32" and "computes in float32, not float64" in finding.message
    assert len(finding.extra["same_cause"]) >= 5
    # Told its format, the same engine is clean.
    assert check_engine(f"{F32}:Undeclared", examples=300, seed=0, dtype="float32").findings == ()


def test_a_real_bug_in_a_narrow_engine_is_not_explained_away_by_the_format() -> None:
    result = check_engine(f"{F32}:TanhGradOff", examples=300, seed=0, dtype="float64")
    assert not any("narrower_format" in f.extra for f in result.findings)
    assert any(f.blame.op == "tanh" for f in result.findings)


# -- where float64 (or the format) itself cannot be trusted: nothing is judged -----------------

def _truth(text: str, point: tuple[float, ...]):
    return truth_at(compile_program(parse(text)), point)


def test_a_kink_within_infinite_noise_admits_either_side() -> None:
    # tan(expm1(740)): float64 holds expm1(740) as inf, so minimum may take either branch.
    from verifier.define import define_op

    for name in ("minimum", "expm1", "tan"):
        define_op(name)
    truth = _truth("minimum(tan(expm1(x1)), x0)", (0.0, 740.0))
    assert (truth.gradient_low[0], truth.gradient_high[0]) == (0.0, 1.0)


def test_a_derivative_taken_where_float64_holds_the_argument_as_inf_is_not_judged() -> None:
    from verifier.define import define_op

    define_op("softsign")
    assert _truth("softsign(x0 * x0)", (1.7976931348623157e308,)).gradient_status != ("judged",)
    # add's derivative does not depend on the overflowed argument: still judged.
    assert _truth("x1 * 3 + exp(exp(x0))", (800.0, 1.0)).gradient_status[1] == "judged"


def test_an_underflowing_intermediate_is_a_division_by_zero_where_the_format_flushes() -> None:
    with using("float32-ftz"):
        assert _truth("x0 / x0", (1e-19,)).gradient_status != ("judged",)
    with using("float32"):
        assert _truth("x0 / x0", (1e-19,)).gradient_status == ("judged",)


def test_a_defined_op_is_exact_where_its_formula_cancels_at_50_digits() -> None:
    from verifier.define import define_op

    define_op("gelu")
    define_op("log1p")
    assert _truth("gelu(x0)", (-30.0,)).value == pytest.approx(-1.472014178144456e-196, rel=1e-12)
    assert _truth("log1p(x0)", (1e-60,)).value == 1e-60
