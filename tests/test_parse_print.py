"""Printing (verifier/printing.py) and the safe parser (verifier/parsing.py).

What this file proves:

* printing then parsing gives back the very same interned object, for random
  expressions (Hypothesis, ``verifier.strategies.expressions``) and for the
  precedence corner cases (``-x**2``, ``(-x)**2``, ``x - (y - z)``, ``x/(y*z)``,
  ``-(x*y)``, negative constants, ``-0.0``);
* deep chains (20,000 ops) print with ``t1 = ...;`` bindings and parse back to the
  same object without RecursionError; long shared nodes are named, not repeated;
* LaTeX and MathML come out for a few expressions, and the size limit is enforced;
* the parser never evaluates (``9**9**9**9`` fails fast) and rejects everything
  outside its whitelist with a one-line ``ParseError`` naming the bad text and its
  column: unknown functions, ``__import__("os")``, attribute access other than op
  methods, subscripts, lambdas, comprehensions, strings, non-number exponents,
  huge constants and exponents, empty input, reused names, too many nodes;
* its length and nesting limits apply to the text before Python's parser builds an
  AST: 1M characters or 10,000 nested brackets fail fast, in little memory;
* method syntax ``(x*y).tanh()`` parses like ``tanh(x*y)``.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import given, settings

from verifier.expr import apply, const, var
from verifier.parsing import ParseError, ParseLimits, parse
from verifier.printing import format_number, to_latex, to_mathml, to_string, tree_size
from verifier.strategies import expressions

x, y, z = var("x"), var("y"), var("z")


# -- round trips -------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(expressions(max_leaves=12))
def test_print_then_parse_is_the_same_object(e) -> None:
    text = str(e)
    assert parse(text) is e, text


@settings(max_examples=60, deadline=None)
@given(expressions(max_leaves=24, variables=("t1", "t2", "x10")))
def test_round_trip_with_variables_named_like_bindings(e) -> None:
    assert parse(to_string(e)) is e


@pytest.mark.parametrize(("e", "text"), [
    (-x ** 2, "-x**2"),
    ((-x) ** 2, "(-x)**2"),
    (x - (y - z), "x - (y - z)"),
    ((x - y) - z, "x - y - z"),
    (x / (y * z), "x / (y * z)"),
    ((x / y) * z, "x / y * z"),
    (-(x * y), "-(x * y)"),
    (-x * y, "-x * y"),
    (x * const(-2), "x * -2"),
    (const(-2) * x, "-2 * x"),
    (x - const(-3), "x - -3"),
    (const(-2) ** 2, "(-2)**2"),
    (-(const(2) ** 2), "-2**2"),
    (x * const(-0.0), "x * -0.0"),
    (x + const(0.0), "x + 0"),
    (apply("pow", x, param=-1), "x**-1"),
    (apply("pow", x, param=-0.0), "x**-0.0"),
    (x ** (1 / 3), "x**0.3333333333333333"),
    ((x ** 2) ** 3, "(x**2)**3"),
    (-(-x), "-(-x)"),
    ((x + y).tanh() * 0.1, "tanh(x + y) * 0.1"),
    (x * const(1e-300), "x * 1e-300"),
    (x * const(5e-324), "x * 5e-324"),
])
def test_precedence_corner_cases(e, text: str) -> None:
    assert str(e) == text
    assert parse(text) is e


@pytest.mark.parametrize("text", ["-x**2", "(-x)**2", "x - (y - z)", "x/(y*z)", "-(x*y)", "-2*x", "x*-0.0", "--x"])
def test_parsed_text_prints_to_an_equivalent_text(text: str) -> None:
    e = parse(text)
    assert parse(str(e)) is e


def test_negative_constants_are_numbers_not_neg_nodes() -> None:
    assert parse("-2") is const(-2)
    assert parse("-0.0") is const(-0.0) and parse("-0.0") is not const(0.0)
    assert parse("--2") is const(2)
    assert parse("-x").op == "neg"
    assert parse("-(2)") is const(-2)


def test_format_number_is_shortest_and_exact() -> None:
    for value, text in [(2.0, "2"), (-2.0, "-2"), (0.1, "0.1"), (-0.0, "-0.0"), (0.0, "0"),
                        (1e16, "1e+16"), (1 / 3, "0.3333333333333333"), (5e-324, "5e-324")]:
        assert format_number(value) == text
        assert float(text) == value


def test_method_syntax() -> None:
    assert parse("(x*y).tanh()") is (x * y).tanh()
    assert parse("(x*y).tanh()") is parse("tanh(x*y)")
    assert parse("sin(x).cos().tanh()") is x.sin().cos().tanh()
    assert parse("x.exp() + y.relu()") is x.exp() + y.relu()


def test_bindings_and_statements() -> None:
    assert parse("t1 = x * y; t2 = tanh(t1); t2 + t1") is (x * y).tanh() + x * y
    assert parse("t1 = x * y\nt1 * t1") is (x * y) * (x * y)


# -- deep and shared graphs ------------------------------------------------------------------------

def test_deep_chain_prints_with_bindings_and_parses_back() -> None:
    e = x
    for i in range(20_000):
        e = (e * y).tanh() if i % 2 else e + 1
    text = str(e)
    assert text.startswith("t1 = ")
    assert "; t2 = " in text
    assert text.count(" = ") >= 20_000 // 40 - 1  # a binding at least every 40 levels
    assert parse(text) is e  # no RecursionError


def test_long_shared_nodes_are_named_once() -> None:
    w = x * y
    for _ in range(30):
        w = w * w
    assert tree_size(w) == 2**32 - 1
    text = str(w)
    assert len(text) < 2_000  # linear in the DAG, not in the tree
    assert parse(text) is w


def test_short_shared_nodes_are_written_twice() -> None:
    e = (x * y).tanh() + (x * y).tanh()
    assert str(e) == "tanh(x * y) + tanh(x * y)"


# -- LaTeX and MathML ----------------------------------------------------------------------------------

def test_latex() -> None:
    assert to_latex(parse("x0 / (1 + x1)")) == r"\frac{x_{0}}{1 + x_{1}}"
    assert to_latex(parse("sqrt(x)*sigmoid(y) - relu(x)**2")) == \
        r"\sqrt{x} \cdot \sigma\left(y\right) - \operatorname{relu}\left(x\right)^{2}"
    assert to_latex(parse("-(x*y) + 1e-20*z")) == r"-\left(x \cdot y\right) + 1 \cdot 10^{-20} \cdot z"
    assert to_latex(parse("x - (y - z)")) == r"x - \left(y - z\right)"
    assert to_latex(parse("(x + y)**2")) == r"\left(x + y\right)^{2}"
    assert to_latex(parse("tanh(my_var2)")) == r"\tanh\left(\mathit{my\_var}_{2}\right)"


def test_mathml() -> None:
    assert to_mathml(var("x0") ** 2) == (
        '<math xmlns="http://www.w3.org/1998/Math/MathML">'
        "<msup><msub><mi>x</mi><mn>0</mn></msub><mn>2</mn></msup></math>")
    frac = to_mathml(parse("x0 / (1 + x1)"))
    assert frac.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"><mfrac>') and frac.endswith("</mfrac></math>")
    assert "<mo>+</mo>" in frac
    sig = to_mathml(parse("sigmoid(-x) - 3"))
    assert "&#x3C3;" in sig and "<mo>-</mo><mn>3</mn>" in sig
    assert "<msqrt>" in to_mathml(parse("sqrt(x)"))
    assert "<mrow><mo>-</mo><mn>2</mn></mrow>" in to_mathml(parse("x * -2"))


def test_typesetting_size_limit() -> None:
    big = x
    for _ in range(600):
        big = big + y
    with pytest.raises(ValueError, match="1201 nodes.*max_nodes=500"):
        to_latex(big)
    with pytest.raises(ValueError, match="max_nodes=10"):
        to_mathml(big, max_nodes=10)
    assert to_latex(big, max_nodes=2_000).count("+") == 600
    w = x * y
    for _ in range(30):
        w = w * w  # 33 nodes, 4 billion written out: refused, not attempted
    with pytest.raises(ValueError, match="4294967295 nodes"):
        to_mathml(w)


# -- the parser rejects, with a one-line message naming the text and the column ---------------------------

def _error(text: str, limits: ParseLimits = ParseLimits()) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(text, limits=limits)
    message = str(info.value)
    assert "\n" not in message, message
    return info.value


@pytest.mark.parametrize(("text", "named", "column"), [
    ("foo(x)", "'foo'", 1),
    ('__import__("os")', "'__import__'", 1),
    ("x + x.real", "'x.real'", 5),
    ("x.__class__", "'x.__class__'", 1),
    ("x.y.tanh()", "'x.y'", 1),
    ("os.system(x)", "'os.system'", 1),
    ("x[0]", "'x[0]'", 1),
    ("lambda: x", "'lambda: x'", 1),
    ("[x for x in y]", "'[x for x in y]'", 1),
    ("x + 'abc'", "\"'abc'\"", 5),
    ("x + 1j", "'1j'", 5),
    ("True * x", "'True'", 1),
    ("x ** y", "'y'", 6),
    ("x**(y + 1)", "'y + 1'", 5),
    ("1e400 * x", "1e400", 1),
    ("x * 1e16", "1e16", 5),
    ("x**1000", "1000", 4),
    ("x**-65", "-65", 4),
    ("x // y", "'x // y'", 1),
    ("x % y", "'x % y'", 1),
    ("~x", "'~x'", 1),
    ("x < y", "'x < y'", 1),
    ("x if y else z", "'x if y else z'", 1),
    ("tanh(x, y)", "tanh()", 1),
    ("tanh(x=1)", "one plain argument", 1),
    ("x.tanh(y)", ".tanh()", 1),
    ("exp + x", "'exp'", 1),
    ("t = x; t = y; t", "'t'", 8),
    ("y = x; x = 2; x", "'x'", 8),
    ("x; y", "name = expression", 1),
    ("x +", "the expression ends after '+': an operand is missing", 4),
    ("x0^2", "use ** for powers: x0**2", 1),
    ("math.tanh(x0)", "write tanh(x0), without the module", 1),
])
def test_rejected_with_text_and_column(text: str, named: str, column: int) -> None:
    error = _error(text)
    assert named in str(error), str(error)
    assert error.column == column and error.line == 1
    assert str(error).endswith(f"at column {column}")
    assert error.pointer().splitlines()[1] == " " * (column - 1) + "^"


@pytest.mark.parametrize(("text", "message"), [
    # the usual slips, each with its hint (and never Python's "invalid syntax (invalid syntax)")
    ("x0 +", "the expression ends after '+': an operand is missing at column 5"),
    ("tanh(x0) ** ", "the expression ends after '**': an operand is missing at column 12"),
    ("x0^2", "'^' is not a power here: use ** for powers: x0**2 at column 1"),
    ("tanh(x)^2 + 1", "'^' is not a power here: use ** for powers: tanh(x)**2 + 1 at column 1"),  # as meant, not as Python groups it
    ("(x0 + x1)^0.5", "'^' is not a power here: use ** for powers: (x0 + x1)**0.5 at column 1"),
    ("math.tanh(x0)", "write tanh(x0), without the module: 'math.tanh' is not in the syntax at column 1"),
    ("np.exp(x0 * x1) + 1", "write exp(x0 * x1), without the module: 'np.exp' is not in the syntax at column 1"),
    ("torch.nn.functional.relu(x)", "write relu(x), without the module: 'torch.nn.functional.relu' is not in the syntax at column 1"),
    ("2x", "invalid decimal literal: write 2*x for a product, not 2x at column 1"),
    ("(x0 + 1", "invalid syntax: '(' was never closed at column 1"),
])
def test_usual_slips_get_a_one_line_hint(text: str, message: str) -> None:
    assert str(_error(text)) == message
    assert "invalid syntax (invalid syntax)" not in message


def test_a_variable_named_like_a_module_keeps_the_method_message() -> None:
    assert str(_error("x.tanh(y)")) == ".tanh() takes no arguments at column 1"
    assert str(_error("np = x; np.tanh(x)")).startswith(".tanh() takes no arguments")  # np is a bound name here


def test_rejections_on_later_lines_name_the_line() -> None:
    error = _error("t1 = x*y\nt2 = t1.real\nt2")
    assert (error.line, error.column) == (2, 6)
    assert str(error).endswith("at line 2, column 6") and "'t1.real'" in str(error)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_input(text: str) -> None:
    assert "empty expression" in str(_error(text))


def test_not_a_string() -> None:
    with pytest.raises(ParseError, match="got bytes"):
        parse(b"x")


def test_limits() -> None:
    error = _error("x*y + z*x + tanh(x)", ParseLimits(max_nodes=5))
    assert "too large (more than 5 nodes)" in str(error)
    assert "is 6 characters long; at most 5 allowed" in str(_error("x" * 6, ParseLimits(max_length=5)))
    assert "nested 3 levels deep" in str(_error("tanh(((x)))", ParseLimits(max_depth=2)))
    assert "nested 3 levels deep" in str(_error("x - - -y", ParseLimits(max_depth=2)))
    assert "too many variables (at most 2)" in str(_error("x + y + z", ParseLimits(max_variables=2)))
    assert "|c| <= 100" in str(_error("x * 1000", ParseLimits(max_constant=100)))
    assert "|p| <= 3" in str(_error("x ** 4", ParseLimits(max_exponent=3)))
    # At the limits themselves the text is accepted.
    assert parse("x * 1e15 + x**64 + x**-64") is not None
    assert parse("x*y + z*x", limits=ParseLimits(max_nodes=7)) is x * y + z * x
    assert parse("((x))", limits=ParseLimits(max_depth=2, max_length=5)) is x


@pytest.mark.parametrize("text", ["9**9**9**9", "x**9**9**9", "x ** (9**9**9**9)", "(9**9**9**9) * x", "x**(1/0)"])
def test_towers_of_powers_never_evaluate(text: str) -> None:
    start = time.perf_counter()
    _error(text)
    assert time.perf_counter() - start < 0.5


def test_exponent_forms() -> None:
    assert parse("x**(1/3)") is x ** (1 / 3)
    assert parse("x**-2") is apply("pow", x, param=-2.0)
    assert parse("x**(-1/2)") is x ** -0.5
    with pytest.raises(ParseError):
        parse("x**(1/-0.0)")


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    assert "nested 100000 levels deep (brackets or signs); at most 100 allowed" in str(_error("-" * 100_000 + "x"))
    assert "nested 300 levels deep" in str(_error("(" * 300 + "x" + ")" * 300))
    assert "nested too deeply" in str(_error("+".join(["x"] * 20_000)))  # deep without brackets: Python's limit
    assert parse("(" * 100 + "x" + ")" * 100) is x


@pytest.mark.parametrize(("text", "needle"), [
    ("x + " * 250_000, "expression is 1000000 characters long; at most 250000 allowed"),
    ("(" * 10_000 + "x" + ")" * 10_000, "expression is nested 10000 levels deep"),
    ("tanh(" * 10_000 + "x" + ")" * 10_000, "expression is nested 10000 levels deep"),
])
def test_limits_apply_to_the_text_before_python_parses_it(text: str, needle: str) -> None:
    """Python's AST costs ~250 bytes a character (1M characters took ~445 MB): the
    length and the depth are refused on the text, quickly and in little memory."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        error = _error(text)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert needle in str(error)
    assert elapsed < 0.5, elapsed
    assert peak < 20e6, f"{peak / 1e6:.1f} MB"


def test_non_ascii_names_are_parse_errors() -> None:
    error = _error("x + é")
    assert error.column == 5 and "'é'" in str(error)


def test_columns_count_from_the_callers_text() -> None:
    error = _error("  x ** y")
    assert error.column == 8
