"""Expression DAGs (verifier/expr.py): interning, sharing, immutability, programs.

What this file proves:

* nodes are interned: building the same expression twice gives the same object
  (``var("x") * var("y") is var("x") * var("y")``), and equal-looking constants that
  differ (0.0 and -0.0) stay different;
* a subexpression written twice is one shared node (``nodes()`` counts it once,
  ``Program.users()`` counts its readers), and ``nodes()`` is iterative (any depth);
* the negation of a constant folds into the constant (keeping -0.0);
* nodes are immutable, survive copy/pickle as the very same object, and
  ``compile_program``/``from_program`` round-trip;
* tracing a plain Python function through ``verifier.comparison.as_expression`` builds
  the DAG, and a function that calls ``math.exp`` fails with a clear TypeError;
* variables are kept in natural order (x2 before x10);
* invalid names, ops, arities, parameters and exponents fail with clear errors.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from verifier.comparison import as_expression
from verifier.expr import Expr, Program, apply, compile_program, const, from_program, natural_key, var
from verifier.ops import OPS
from verifier.parsing import parse

x, y, z = var("x"), var("y"), var("z")


# -- interning and sharing -------------------------------------------------------------

def test_interning_gives_the_same_object() -> None:
    assert var("x") * var("y") is var("x") * var("y")
    assert (x * y).tanh() is (var("x") * var("y")).tanh()
    assert apply("pow", x, param=2) is x ** 2.0
    assert const(2) is const(2.0)
    assert x * y is not y * x  # no algebra: operand order matters
    assert x ** 2 is not x ** 3
    assert x - 1 is not x + -1


def test_signed_zero_constants_are_different_nodes() -> None:
    assert const(0.0) is not const(-0.0)
    assert math.copysign(1.0, const(-0.0).param) == -1.0
    assert x * const(0.0) is not x * const(-0.0)
    assert apply("pow", x, param=-0.0) is not apply("pow", x, param=0.0)


def test_shared_subexpression_is_one_node() -> None:
    shared = (x * y).tanh()
    e = shared + shared
    assert [n.op for n in e.nodes()] == ["var", "var", "mul", "tanh", "add"]
    assert e.args[0] is e.args[1]
    # Written out twice in the source, still one node.
    e2 = (x * y).tanh() + (x * y).tanh()
    assert e2 is e
    assert len(e2.nodes()) == 5
    program = compile_program(e)
    assert program.users() == [1, 1, 1, 2, 0]


def test_nodes_lists_arguments_before_users() -> None:
    e = ((x + y) * (x + y)).exp() - z / (x + y)
    order = e.nodes()
    position = {id(n): i for i, n in enumerate(order)}
    assert len(position) == len(order)  # every node once
    for node in order:
        for arg in node.args:
            assert position[id(arg)] < position[id(node)]
    assert order[-1] is e
    assert len(order) == 8  # x, y, x+y, mul, exp, z, div, sub


def test_nodes_of_a_deep_chain_needs_no_recursion() -> None:
    e = x
    for _ in range(30_000):
        e = e + 1.0
    assert len(e.nodes()) == 30_002  # x, the one constant 1, 30000 adds
    assert e.variables == ("x",)


# -- neg folding -------------------------------------------------------------------------

def test_neg_of_a_constant_folds() -> None:
    assert -const(2) is const(-2)
    assert apply("neg", const(2.5)) is const(-2.5)
    minus_zero = apply("neg", const(0.0))
    assert minus_zero.op == "const" and math.copysign(1.0, minus_zero.param) == -1.0
    assert -(-const(3)) is const(3)
    # Only constants fold: neg of an expression is a node.
    assert (-x).op == "neg" and (-x).args == (x,)
    assert -(-x) is not x


# -- immutability, copies, pickling ---------------------------------------------------------

def test_nodes_cannot_be_modified() -> None:
    e = var("immutable_a") * 2
    for attr, value in (("op", "add"), ("param", 3.0), ("args", ()), ("variables", ()), ("new", 1)):
        with pytest.raises(AttributeError):
            setattr(e, attr, value)
    assert e.op == "mul" and e.args[1] is const(2)


def test_attributes_cannot_be_deleted() -> None:
    e = var("immutable_probe") * 7.25  # private to this test: a corrupted node harms nothing else
    with pytest.raises(AttributeError):
        del e.op
    assert (var("immutable_probe") * 7.25).op == "mul"


def test_copy_and_deepcopy_return_the_same_node() -> None:
    e = (x * y).tanh() + x ** 0.5
    assert copy.copy(e) is e
    assert copy.deepcopy(e) is e


@pytest.mark.parametrize("text", [
    "tanh(x0 * x1) - 3 / x1 + x0**2.5",
    "x * -0.0",
    "t1 * t2 + tanh(t1 * t2)",  # variables named like the printer's bindings
    "(x + y)**-1 / sqrt(exp(z))",
    "1e-300 * x - 1000000000000000",
])
def test_pickle_round_trip_gives_the_same_object(text: str) -> None:
    e = parse(text)
    assert pickle.loads(pickle.dumps(e)) is e


def test_pickle_round_trip_of_a_deep_shared_graph() -> None:
    e = x * y
    for i in range(3_000):
        e = (e + e).tanh() if i % 3 == 0 else e * x - 1
    back = pickle.loads(pickle.dumps(e))
    assert back is e


@pytest.mark.parametrize("make", [lambda: const(1e16) * var("x"), lambda: var("x") ** 100])
def test_pickle_round_trip_beyond_parse_limits(make) -> None:
    e = make()
    assert pickle.loads(pickle.dumps(e)) is e


# -- programs --------------------------------------------------------------------------------

def test_compile_program_layout() -> None:
    e = (x * 2).tanh() + y
    program = compile_program(e)
    assert program.variables == ("x", "y")
    assert program.ops == ("var", "const", "mul", "tanh", "var", "add")
    assert program.args == ((), (), (0, 1), (2,), (), (3, 4))
    assert program.params == (0, 2.0, None, None, 1, None)
    assert len(program) == 6 and program.output == 5
    assert list(program.op_nodes()) == [2, 3, 5]
    assert program.users() == [1, 1, 1, 1, 1, 0]
    assert compile_program(e) is program  # cached


def test_program_round_trip() -> None:
    for text in ("tanh(x0*x1) - 3/x1 + x0**2.5", "x * x", "relu(sigmoid(a) - b) / sqrt(c)", "-2 * x10 + x2"):
        e = parse(text)
        program = compile_program(e)
        assert from_program(program) is e
        again = pickle.loads(pickle.dumps(program))
        assert again == program and from_program(again) is e


def test_program_counts_repeated_arguments() -> None:
    program = compile_program(x * x)
    assert program.ops == ("var", "mul") and program.args[1] == (0, 0)
    assert program.users() == [2, 0]


def test_program_of_a_leaf() -> None:
    program = compile_program(x)
    assert program.ops == ("var",) and program.output == 0 and list(program.op_nodes()) == []
    assert from_program(Program(("x",), ("var",), ((),), (0,))) is x


# -- tracing Python functions ----------------------------------------------------------------

def test_tracing_a_python_function() -> None:
    def f(a, b, c):
        return -a**3 + (3 * b).sin() - 1 / c + b**2.5 - a**0.5

    e = as_expression(f)
    assert e is parse("-a**3 + sin(3*b) - 1/c + b**2.5 - a**0.5")
    assert e.variables == ("a", "b", "c")


def test_tracing_uses_the_reflected_operators() -> None:
    e = as_expression(lambda t: 3 - t + 2 * t + 1 / t)
    assert e is parse("3 - t + 2 * t + 1 / t")
    assert e.args[0].args[0].args[0] is const(3)  # a constant on the left: __rsub__


def test_tracing_a_function_using_math_exp_is_a_clear_type_error() -> None:
    def uses_math(a, b):
        return math.exp(a) * b

    with pytest.raises(TypeError) as info:
        as_expression(uses_math)
    message = str(info.value)
    assert "uses_math" in message and "tracing" in message
    assert "exp" in message  # names the methods to use instead


def test_tracing_rejects_functions_without_arguments_or_expression() -> None:
    with pytest.raises(ValueError, match="no arguments"):
        as_expression(lambda: 1.0)
    with pytest.raises(TypeError, match="returned int"):
        as_expression(lambda a: 3)
    with pytest.raises(TypeError, match="expected an expression string"):
        as_expression(42)


def test_as_expression_passes_expressions_and_parses_strings() -> None:
    e = x * y
    assert as_expression(e) is e
    assert as_expression("x * y") is e


# -- variable order -----------------------------------------------------------------------------

def test_natural_variable_order() -> None:
    assert natural_key("x2") < natural_key("x10")
    assert sorted(["x10", "x2", "x1", "y"], key=natural_key) == ["x1", "x2", "x10", "y"]
    e = var("x10") * var("x2") + var("x1")
    assert e.variables == ("x1", "x2", "x10")
    assert compile_program(e).variables == ("x1", "x2", "x10")
    assert as_expression(lambda x10, x2: x10 - x2).variables == ("x2", "x10")
    assert (const(1) + var("b") + var("a")).variables == ("a", "b")
    assert const(3).variables == ()


# -- invalid input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["1x", "", "x-y", "x y", "é", None, 3])
def test_invalid_variable_names(name) -> None:
    with pytest.raises(ValueError, match="not an identifier"):
        var(name)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_names_are_not_variable_names(name: str) -> None:
    with pytest.raises(ValueError, match="op name"):
        var(name)


def test_invalid_ops_and_arities() -> None:
    with pytest.raises(ValueError, match="unknown op 'foo'"):
        apply("foo", x)
    with pytest.raises(TypeError, match="tanh takes 1 argument"):
        apply("tanh", x, y)
    with pytest.raises(TypeError, match="add takes 2 argument"):
        apply("add", x)
    with pytest.raises(TypeError, match="must be expressions"):
        apply("mul", x, 2.0)
    with pytest.raises(TypeError, match="takes no parameter"):
        apply("exp", x, param=2.0)


def test_invalid_constants() -> None:
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            const(bad)
    for bad in ("1", True, None, 1j):
        with pytest.raises(TypeError, match="real number"):
            const(bad)
    with pytest.raises(TypeError, match="str"):
        x + "1"
    with pytest.raises(TypeError):
        x * True


def test_invalid_exponents() -> None:
    with pytest.raises(TypeError, match="exponent must be a number.*Expr"):
        x ** y
    with pytest.raises(TypeError, match="number \\*\\* expression"):
        2 ** x
    with pytest.raises(TypeError, match="bool"):
        x ** True
    for bad in (math.inf, math.nan, None):
        with pytest.raises(ValueError, match="finite"):
            apply("pow", x, param=bad)
    assert (x ** 2).param == 2.0 and isinstance((x ** 2).param, float)


def test_repr_is_short_and_str_is_parseable() -> None:
    e = x
    for _ in range(200):
        e = e * y + 1
    assert len(repr(e)) <= len("Expr('')") + 200
    assert repr(x * 2) == "Expr('x * 2')"
    assert parse(str(e)) is e
    assert isinstance(e, Expr) and bool(const(0.0)) is True
