"""Blame names the op whose local rule is wrong, replaying what the engine saw.

Each mutant below is right alone at an incoming gradient of 1, so blame that only
checks ops alone at unit upstream gradients would call it "backward". Blame must
name it by replaying the op at the engine's own inputs, under the engine's own
incoming gradient and non-unit ones, and by checking each node's recorded value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from tests.engines import corpus
from verifier.blame import UPSTREAM, alone_expression, blame_engine
from verifier.evaluate import judge_case
from verifier.expr import compile_program
from verifier.findings import Blame
from verifier.hosts import Sandbox
from verifier.parsing import parse
from verifier.reference import adjoints_at, exact

MUL_DROPS_UPSTREAM = [(
    "            self.grad += other.data * out.grad\n            other.grad += self.data * out.grad",
    "            self.grad += other.data\n            other.grad += self.data",
)]
# d(a/b)/db = -(g*a)/(b*b), written with g*g on top and g below: right for every g
# up to ~1e154, where g*g overflows to inf and the partial becomes -inf.
DIV_OVERFLOWS_UNDER_LARGE_GRADIENT = [(
    "other.grad -= out.data / other.data * out.grad",
    "other.grad -= out.grad * (out.grad * self.data) / (out.grad * other.data * other.data)",
)]
# sigmoid's backward uses the size of its incoming gradient, not the gradient: right
# under 1 and 3, wrong under any negative one.
SIGMOID_USES_ABS_UPSTREAM = [("s * (1 - s) * out.grad", "s * (1 - s) * abs(out.grad)")]
EXP_VALUE_OFF = [("Value(math.exp(self.data), (self,), 'exp')", "Value(math.exp(self.data) * (1 + 1e-6), (self,), 'exp')")]
# tanh's value is wrong only when its argument is computed (not a leaf): alone, at
# a fresh variable, it is right; only the recorded node values show it.
TANH_VALUE_OFF_INSIDE_GRAPHS = [("t = math.tanh(self.data)", "t = math.tanh(self.data) + (1e-3 if self._prev else 0.0)")]


def blame_at(tmp_path: Path, name: str, patches: Sequence[tuple[str, str]], text: str, point: tuple[float, ...], *, fails: bool = True) -> Blame:
    """Blame the engine ``base.py + patches`` for ``text`` at ``point``, as the
    campaign does: with the outcome recorded (node values and grads)."""
    path = corpus.write_engine(tmp_path, name, list(patches))
    program = compile_program(parse(text))
    with Sandbox(f"{path}:Value", timeout=10) as host:
        report = judge_case(host, program, [point], oracles=False)
        assert (report.error is not None) == fails, report  # the witness really fails (or not)
        [outcome] = host.run(program, [point], record=True)
        return blame_engine(host, program, point, outcome, exact(program, point).node_values)


def test_a_mul_that_ignores_its_upstream_gradient_is_blamed_not_backward(tmp_path: Path) -> None:
    blame = blame_at(tmp_path, "mul_drops_upstream", MUL_DROPS_UPSTREAM, "tanh(x0 * x1)", (0.5, 2.0))
    assert blame.op == "mul", blame
    assert "incoming gradient" in blame.reason
    # The form's variables are a, b, c in the order of its point, as reports name them.
    assert blame.form == "a * b * c" and len(blame.form_point) == 3 and blame.form_point[2] not in (0.0, 1.0)


def test_mul_is_checked_first_so_another_op_is_not_blamed_through_it(tmp_path: Path) -> None:
    # Both mul and tanh sit under a non-unit gradient here; mul is the one at fault.
    blame = blame_at(tmp_path, "mul_drops_upstream_2", MUL_DROPS_UPSTREAM, "3 * tanh(x0 * x1) * x0", (0.5, 2.0))
    assert blame.op == "mul", blame


def test_a_division_that_overflows_only_under_a_large_incoming_gradient_is_named(tmp_path: Path) -> None:
    path = corpus.write_engine(tmp_path, "div_big_g_probe", DIV_OVERFLOWS_UNDER_LARGE_GRADIENT)
    with Sandbox(f"{path}:Value", timeout=10) as host:  # right at ordinary gradients
        assert judge_case(host, compile_program(parse("x0 * (x1 / x2)")), [(5.0, 3.0, 2.0)], oracles=False).error is None
    # exp(460) ~ 1e199 flows into the division: only its own incoming gradient shows it.
    blame = blame_at(tmp_path, "div_big_g", DIV_OVERFLOWS_UNDER_LARGE_GRADIENT, "exp(x0) * (x1 / x2)", (460.0, 3.0, 2.0))
    assert blame.op == "div", blame
    assert "own incoming gradient" in blame.reason or "exact incoming gradient" in blame.reason, blame.reason


def test_an_op_wrong_only_under_a_negative_incoming_gradient_is_named(tmp_path: Path) -> None:
    blame = blame_at(tmp_path, "sigmoid_abs_g", SIGMOID_USES_ABS_UPSTREAM, "x1 - sigmoid(x0)", (0.3, 1.0))
    assert blame.op == "sigmoid", blame


def test_a_value_bug_is_blamed_on_its_op_never_on_backward(tmp_path: Path) -> None:
    blame = blame_at(tmp_path, "exp_value_off", EXP_VALUE_OFF, "sin(exp(x0)) * x1", (0.5, 2.0))
    assert blame.op == "exp", blame


def test_a_value_bug_seen_only_inside_a_graph_is_found_from_the_recorded_node_values(tmp_path: Path) -> None:
    blame = blame_at(tmp_path, "tanh_value_in_graph", TANH_VALUE_OFF_INSIDE_GRAPHS, "tanh(x0 * x1) + x1", (0.5, 0.7))
    assert blame.op == "tanh", blame
    assert "inside this graph" in blame.reason


def test_a_wrong_value_is_never_blamed_on_the_backward_pass(tmp_path: Path) -> None:
    # The same recorded outcome, but without node values: no op can be named, and
    # still the backward pass is not blamed for a forward failure.
    path = corpus.write_engine(tmp_path, "tanh_value_in_graph_2", TANH_VALUE_OFF_INSIDE_GRAPHS)
    program = compile_program(parse("tanh(x0 * x1) + x1"))
    point = (0.5, 0.7)
    with Sandbox(f"{path}:Value", timeout=10) as host:
        [outcome] = host.run(program, [point])
        blame = blame_engine(host, program, point, outcome, exact(program, point).node_values)
    assert blame.op != "backward", blame
    assert "backward pass cannot" in blame.reason


def test_a_traversal_order_bug_is_still_blamed_on_backward(tmp_path: Path) -> None:
    mutant = corpus.MUTANTS_BY_NAME["backward_bfs_order"]
    blame = blame_at(tmp_path, "bfs", mutant.patches, "x0 * x1 + exp(x0 * x1)", (0.6, 1.3))
    assert blame.op == "backward", blame


@pytest.mark.parametrize(("name", "text", "point", "op"), [
    ("tanh_grad_missing_square", "tanh(x0) * x1", (0.7, 2.0), "tanh"),   # wrong alone
    ("mul_grad_assign", "(x0 * x1) * x0", (1.5, 2.0), "mul"),            # = instead of +=
    ("rsub_operands_swapped", "2 - x0", (0.5,), "sub"),                  # a number on the left
])
def test_existing_blame_is_kept(tmp_path: Path, name: str, text: str, point: tuple[float, ...], op: str) -> None:
    mutant = corpus.MUTANTS_BY_NAME[name]
    assert blame_at(tmp_path, name, mutant.patches, text, point).op == op


def test_exact_adjoints_are_the_incoming_gradients_of_the_chain_rule() -> None:
    program = compile_program(parse("exp(x0) * (x1 / x2)"))
    adjoints = adjoints_at(program, exact(program, (2.0, 3.0, 4.0)).node_values)
    div = program.ops.index("div")
    assert adjoints[div] == pytest.approx(7.38905609893065)  # exp(2): what reaches x1 / x2
    assert adjoints[-1] == 1.0


def test_alone_forms_keep_constants_and_shared_arguments() -> None:
    program = compile_program(parse("x0 * x0 - 2"))
    forms = {program.ops[i]: alone_expression(program, i, [1.5, 2.25, 2.0, 0.25]) for i in program.op_nodes()}
    assert (str(forms["mul"][0]), forms["mul"][1]) == ("a * a", (1.5,))
    assert str(forms["sub"][0]) == "a - 2"
    assert UPSTREAM[0] != 1.0 and UPSTREAM[1] < 0  # a scale and a sign flip


def test_a_finding_built_for_a_precision_warning_blames_its_op(tmp_path: Path) -> None:
    # A warning is blamed with warnings counted as failures: with errors only, every
    # op would pass and the backward pass would be blamed for tanh's rounding.
    from verifier.evidence import build_finding

    path = corpus.write_engine(tmp_path, "tanh_slightly_off", [("(1 - t**2) * out.grad", "(1 - t**2) * (1 + 1e-14) * out.grad")])
    program = compile_program(parse("tanh(x0) * x1"))
    with Sandbox(f"{path}:Value", timeout=10) as host:
        found = build_finding(host, program, (0.5, 2.0))
    assert found is not None and found.severity == "warning" and found.cause == "precision", found
    assert found.blame.op == "tanh", found.blame


def test_a_finding_built_outside_the_domain_blames_the_op_that_left_it() -> None:
    from verifier.evidence import build_finding

    program = compile_program(parse("x0**0.5 + x1"))
    with Sandbox("micrograd.engine:Value", timeout=10) as host:  # a silent complex number
        found = build_finding(host, program, (-2.0, 1.0))
    assert found is not None and found.cause == "domain" and found.blame.op == "pow", found and found.blame
