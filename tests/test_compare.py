"""``verifier.compare``: one expression, one point, every oracle side by side.

What this file proves:

* on the exercise -a**3 + sin(3*b) - 1/c + b**2.5 - a**0.5 at a=2, b=3, c=4 every
  oracle is within its expected error of the exact gradient (engine, sympy and
  torch within a few noise floors; numeric within its own estimate, which brackets
  its true error) and the verdict is "agree";
* ``text(width=None)`` is a table naming every oracle, ``str()`` the same within 80
  columns (a block per quantity when the table is wider), ``_repr_markdown_`` a
  markdown table, and all of them, ``_repr_html_`` too, keep the blame line;
  ``repr()`` is one line;
* a traced Python function and an ``Expr`` are accepted like a string;
* bad points (missing variable, extra variable, nan, inf, a string, a bool) raise
  ValueError naming the variable;
* a mutant engine (tanh' written as 1 - t) gives "disagree" with a finding blamed
  on tanh; at relu's kink the convention ``relu'(0) = 0`` of engine.Value is shown.
"""

from __future__ import annotations

import math

import pytest
from micrograd.engine import Value as MicrogradValue

from tests.engines import corpus
from verifier.comparison import Comparison, compare
from verifier.expr import var
from verifier.judge import PASS
from verifier.parsing import parse

EXERCISE = "-a**3 + sin(3*b) - 1/c + b**2.5 - a**0.5"
POINT = {"a": 2, "b": 3, "c": 4}
F_VALUE = 6.336362190988558
F_GRAD = (-12.353553390593273, 10.25699027111255, 0.0625)
ORACLES = ("reference", "engine", "sympy", "torch", "numeric")


@pytest.fixture(scope="module")
def exercise() -> Comparison:
    return compare(EXERCISE, POINT)


def test_exercise_every_oracle_within_its_error(exercise: Comparison) -> None:
    c = exercise
    assert c.verdict == "agree" and c.verdicts == () and c.findings == ()
    assert c.status == "defined" and c.variables == ("a", "b", "c") and c.point == (2.0, 3.0, 4.0)
    assert [o.name for o in c.oracles] == list(ORACLES)
    floors = c.reference.gradient_floor
    assert list(c.gradient("reference")) == pytest.approx(F_GRAD, abs=1e-13)
    for name in ("engine", "sympy", "torch"):
        report = c.oracle(name)
        assert report.status == "ok", name
        assert report.value == pytest.approx(F_VALUE, abs=PASS * c.reference.value_floor), name
        for k, (g, want) in enumerate(zip(report.gradient, F_GRAD)):
            assert abs(g - want) <= PASS * floors[k] + 1e-15, f"{name} d/d{c.variables[k]}: {g!r}"
        assert all(e is not None and e <= PASS * f for e, f in zip(report.gradient_error, floors)), name
    numeric = c.oracle("numeric")
    for k, (g, want) in enumerate(zip(numeric.gradient, F_GRAD)):
        error = abs(g - want)
        assert error <= numeric.estimate[k], f"numeric d/d{c.variables[k]}: error {error:.3g} > estimate"
        assert numeric.estimate[k] < 1e-6
        assert numeric.gradient_error[k] == pytest.approx(error, abs=1e-15)


def test_exercise_convenience_accessors(exercise: Comparison) -> None:
    assert [round(g, 12) for g in exercise.gradient("engine")] == [-12.353553390593, 10.256990271113, 0.0625]
    assert exercise.gradient() == exercise.gradient("reference")
    with pytest.raises(KeyError, match="no oracle 'jax'"):
        exercise.oracle("jax")
    data = exercise.to_dict()
    assert data["verdict"] == "agree" and data["point"] == {"a": 2.0, "b": 3.0, "c": 4.0}
    assert set(data["oracles"]) == set(ORACLES)


def test_text_is_a_table_naming_every_oracle(exercise: Comparison) -> None:
    text = exercise.text(width=None)
    lines = text.splitlines()
    assert lines[0].startswith("-a**3 + sin(3 * b) - 1 / c + b**2.5 - a**0.5   at a=2, b=3, c=4")
    header = lines[1].split()
    assert header == ["oracle", "value", "d/da", "d/db", "d/dc"]
    starts = [line.split()[0] for line in lines[2:7]]
    assert starts == list(ORACLES)
    assert any(line.startswith("noise floor") for line in lines)
    assert "verdict: agree" in text
    # Columns line up: every row's d/da column starts at the same offset as the header's.
    column = lines[1].index("d/da")
    for line in lines[2:7]:
        assert line[column - 2:column] == "  " and line[column] != " "


def test_str_fits_80_columns_in_a_block_per_quantity(exercise: Comparison) -> None:
    text = str(exercise)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    assert len(exercise.text(width=None).splitlines()[1]) > 80  # the table would not have fitted
    blocks = [line.split()[0] for line in lines if line and not line.startswith(" ")]
    assert blocks[:5] == ["-a**3", "value", "d/da", "d/db", "d/dc"]
    # Each block names every oracle, in order, and its noise floor.
    start = lines.index(next(line for line in lines if line.startswith("d/da")))
    assert "noise floor" in lines[start]
    assert [line.split()[0] for line in lines[start + 1:start + 6]] == list(ORACLES)
    assert "-12.353553390593273" in text and "verdict: agree" in text


def test_repr_is_one_line(exercise: Comparison) -> None:
    assert repr(exercise) == "<Comparison agree: -a**3 + sin(3 * b) - 1 / c + b**2.5 - a**0.5 at a=2, b=3, c=4 (defined)>"


def test_markdown_is_a_table(exercise: Comparison) -> None:
    md = exercise._repr_markdown_()
    lines = md.splitlines()
    assert "**agree**" in lines[0] and "`a=2, b=3, c=4`" in lines[0]
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| oracle | value | d/da | d/db | d/dc |"
    assert table[1] == "|---|---|---|---|---|"
    assert [row.split("|")[1].strip() for row in table[2:]] == [*ORACLES, "noise floor"]
    assert all(row.count("|") == 6 for row in table)


def test_traced_function_and_expr_are_accepted() -> None:
    def f(a, b, c):
        return -a**3 + (3 * b).sin() - 1 / c + b**2.5 - a**0.5

    traced = compare(f, POINT)
    assert traced.verdict == "agree"
    assert traced.expression == str(parse(EXERCISE))
    assert traced.gradient("engine") == pytest.approx(F_GRAD, abs=1e-12)
    x = var("x")
    c = compare(x * x, {"x": 3})
    assert c.verdict == "agree" and c.gradient("engine") == (6.0,)


def test_a_correct_engine_agrees_where_float64_has_no_accuracy_left() -> None:
    # Found by a 20,000-example campaign on a correct engine (see test_reference).
    c = compare("relu(sin(exp(-x0)))", {"x0": -372.0})
    assert c.verdict == "agree", c


def test_engine_can_be_left_out_or_given() -> None:
    c = compare("x * y - 3 / y", {"x": 1.5, "y": 2.0}, engine=False)
    assert "engine" not in [o.name for o in c.oracles] and c.verdict == "agree"
    m = compare("x * y - 3 / y", {"x": 1.5, "y": 2.0}, engine=MicrogradValue)
    assert m.verdict == "agree" and m.oracle("engine").status == "ok"


@pytest.mark.parametrize(("point", "needle"), [
    ({"x": 1.0}, "no value for y"),
    ({"x": 1.0, "y": 2.0, "z": 3.0}, "gives z"),
    ({"x": math.nan, "y": 1.0}, "point['x']=nan"),
    ({"x": 1.0, "y": math.inf}, "point['y']=inf"),
    ({"x": "a", "y": 1.0}, "point['x']='a'"),
    ({"x": True, "y": 1.0}, "point['x']=True"),
])
def test_bad_points_name_the_problem(point: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        compare("x * y", point)
    assert needle in str(info.value)


def test_point_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        compare("x * y", [1.0, 2.0])


def test_mutant_engine_disagrees_and_is_blamed_on_tanh() -> None:
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    Value = corpus.load_engine(m.name, m.patches)
    c = compare("tanh(x * y) + x", {"x": 0.7, "y": 1.3}, engine=Value)
    assert c.verdict == "disagree"
    errors = [v for v in c.verdicts if v.severity == "error"]
    assert errors and all(v.kind == "gradient" and v.cause == "engine" for v in errors)
    [finding] = c.findings
    assert finding.blame.op == "tanh" and finding.blame.backend == "engine"
    assert finding.kind == "gradient"
    assert "blame: tanh" in str(c)
    # Every view keeps the blame line: text, markdown, HTML, repr.
    assert any(line.startswith("- blame: tanh (tanh is wrong alone") for line in c._repr_markdown_().splitlines())
    assert "blame: tanh (tanh is wrong alone" in c._repr_html_()
    assert repr(c).endswith("; blame: tanh>") and "\n" not in repr(c)
    assert max(map(len, str(c).splitlines())) <= 80
    # The correct oracles still agree with the reference.
    assert c.oracle("torch").gradient == pytest.approx(c.gradient("reference"), rel=1e-14)


def test_mutant_witness_from_the_corpus() -> None:
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    Value = corpus.load_engine(m.name, m.patches)
    c = compare(m.witness, {"x": m.witness_point[0]}, engine=Value)
    assert c.verdict == "disagree" and c.findings[0].blame.op == m.blame


def test_relu_kink_shows_the_convention() -> None:
    c = compare("relu(x) * y", {"x": 0.0, "y": 2.0})
    assert c.status == "kink" and c.verdict == "agree"
    assert c.convention == "relu'(0) = 0"
    assert "convention: relu'(0) = 0" in str(c)
    assert c.reference.gradient_low[0] == 0.0 and c.reference.gradient_high[0] == 2.0


def test_outside_domain_is_undefined() -> None:
    c = compare("log(x)", {"x": -1.0})
    assert c.status == "outside-domain" and c.verdict == "undefined"
    assert "log of -1" in c.detail


def test_micrograd_is_not_blamed_for_underflow_in_its_division() -> None:
    c = compare("x / x", {"x": 1e169}, engine=MicrogradValue)
    assert c.verdict != "disagree"
