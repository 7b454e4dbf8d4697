"""Ops from a formula: what define_op derives, and mutants of defined ops caught and
blamed on the op within 300 examples (a correct engine is clean)."""

from __future__ import annotations

import math

import mpmath
import pytest

from tests.engines import library
from verifier.campaign import check_engine
from verifier.define import define_op, forget_ops, restore
from verifier.formula import FormulaError
from verifier.local import local_rule, one_sided
from verifier.ops import OPS, op_names


def test_derived_facts_of_library_ops() -> None:
    d = define_op("log1p")
    assert d.domain == ("x + 1 > 0",) and d.kinks == () and d.monotone is False  # unproved, with a domain edge
    assert define_op("softplus").derivatives == ("exp(x)/(exp(x) + 1)",)
    assert define_op("clamp").kinks == ("Max(-1, x) - 1 = 0", "x + 1 = 0")
    assert define_op("tan").domain == ("cos(x) != 0",)
    assert define_op("maximum").arguments == ("x", "y")
    assert "monotone (declared)" in define_op("softsign").assumed


def test_one_sided_derivatives_of_a_piecewise_op() -> None:
    define_op("leaky_relu")
    zero = mpmath.mpf(0)
    assert float(one_sided("leaky_relu", None, (1,))(zero)[0]) == 1.0
    assert float(one_sided("leaky_relu", None, (-1,))(zero)[0]) == 0.01
    define_op("maximum")
    a = mpmath.mpf(2)
    assert [float(d) for d in one_sided("maximum", None, (1,))(a, a)] == [1.0, 0.0]
    assert [float(d) for d in one_sided("maximum", None, (-1,))(a, a)] == [0.0, 1.0]


def test_formula_is_a_whitelist() -> None:
    for bad in ("__import__('os').system('true')", "x.__class__", "lambda: x", "[x]", "x if x else 1", "f(x)", "'x'"):
        with pytest.raises(FormulaError):
            define_op("bad", bad)
    with pytest.raises(FormulaError, match="1 or 2 distinct arguments"):
        define_op("bad", "x + y + z")
    with pytest.raises(ValueError, match="built-in op"):
        define_op("tanh", "tanh(x)")
    assert "bad" not in OPS


def test_declared_domain_and_restore_round_trip() -> None:
    d = define_op("mylog", "log(x)", method="my_log", domain=["x > 0.5"], monotone=False)
    assert "domain: x > 0.5" in d.assumed and d.method == "my_log"
    record = d.to_json()
    forget_ops()
    assert "mylog" not in OPS
    [again] = restore([record])
    assert again == d and OPS["mylog"].method == "my_log"


def test_library_names_resolve_and_plus_adds_to_defaults() -> None:
    assert op_names("+gelu")[-1] == "gelu" and "tanh" in op_names("+gelu")
    assert set(op_names("all")) >= {"gelu", "maximum", "tanh"}
    with pytest.raises(ValueError, match="unknown op 'gelux'"):
        op_names("gelux")


def test_a_defined_op_is_traced_parsed_and_printed() -> None:
    from verifier.expr import var
    from verifier.parsing import parse

    define_op("maximum")
    expr = var("x0").maximum(var("x1") * 2)
    assert str(expr) == "maximum(x0, x1 * 2)"
    assert str(parse("maximum(x0, x1 * 2)")) == str(expr)
    assert str(parse("x0.maximum(x1 * 2)")) == str(expr)


def test_local_rule_of_a_defined_op_matches_mpmath() -> None:
    define_op("gelu")
    x = mpmath.mpf("0.7")
    want = (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2 + x * mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)
    assert math.isclose(float(local_rule("gelu").mpmath(x)[0]), float(want), rel_tol=1e-15)


def test_correct_engine_with_the_library_is_clean() -> None:
    result = check_engine("engine:Value", ops="all", examples=300, seed=0)
    assert [f for f in result.findings if f.severity == "error"] == []
    assert "maximum'(0.75, 0.75) = (0.5, 0.5)" in result.conventions


@pytest.mark.parametrize("mutant", library.MUTANTS, ids=[m.name for m in library.MUTANTS])
def test_mutant_of_a_defined_op_is_caught_and_blamed(mutant: library.LibraryMutant, tmp_path) -> None:
    path = library.write(tmp_path, mutant)
    result = check_engine(f"{path}:Value", ops=f"+{mutant.op}", examples=300, seed=0)
    errors = [f for f in result.findings if f.severity == "error"]
    assert errors, f"{mutant.name} was not caught"
    assert any(f.kind in mutant.kinds and f.blame.op == mutant.op for f in errors), \
        [(f.kind, f.blame.op, f.expression, f.message) for f in errors]


@pytest.mark.parametrize("formula", ["2**64**64", "(2*x)**(x - x + 10**15)", "((((2**64)**64)**64)**64)**64",
                                     "sqrt(-1)*x", "x/0", "1e400*x"])
def test_formulas_that_would_hang_or_are_not_real_are_refused(formula: str) -> None:
    with pytest.raises(FormulaError):
        define_op("bad", formula)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 32])
def test_correct_engine_with_the_library_is_clean_over_20000_examples(seed: int) -> None:
    result = check_engine("engine:Value", ops="all", examples=20_000, seed=seed, workers=2)
    assert result.examples == 20_000
    assert [(f.kind, f.blame.op, f.expression, f.message) for f in result.findings] == []
