"""Judging a case (verifier/evaluate.py): point classes and judged quantities.

What this file proves:

* a point's class never depends on the engine's answer: the same cases judged for a
  correct engine and for engines that are wrong in different ways give the same
  counts of points by class and of quantities judged;
* every value and every partial derivative is counted once, as judged or not judged
  with a reason, and an engine that is wrong only where some other quantity
  overflows is still caught there.
"""

from __future__ import annotations

from hypothesis import given, settings

from engine import Value
from verifier.evaluate import judge_case
from verifier.expr import compile_program
from verifier.hosts import InProcess
from verifier.parsing import parse
from verifier.reference import JUDGED, UNJUDGED
from verifier.strategies import cases


class NoisyTanh(Value):
    """tanh off by 1e-9 relative: close to the sweep nowhere, so every point with a
    tanh goes to the exact path."""

    def tanh(self):
        out = super().tanh()
        out.data *= 1 + 1e-9
        return out


class WrongMulGradient(Value):
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += 0.5 * other.data * out.grad  # wrong for the left operand
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    __rmul__ = __mul__


HOSTS = [InProcess(Value), InProcess(NoisyTanh), InProcess(WrongMulGradient)]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(cases(count=8, max_leaves=6, ops=("add", "mul", "div", "exp", "log", "tanh", "sqrt", "relu", "sin")))
def test_point_classes_do_not_depend_on_the_engine(case) -> None:
    program = compile_program(case.expr)
    reports = [judge_case(host, program, case.points, oracles=False) for host in HOSTS]
    first = reports[0]
    for report in reports[1:]:
        assert report.counts == first.counts, str(case.expr)
        assert report.judged == first.judged, str(case.expr)
    points, nvars = len(case.points), len(program.variables)
    assert sum(first.counts.values()) == points
    assert sum(v for (kind, _), v in first.judged.items() if kind == "value") == points
    assert sum(v for (kind, _), v in first.judged.items() if kind == "partial") == points * nvars
    assert {reason for _, reason in first.judged} <= {JUDGED, *UNJUDGED}


def test_a_wrong_gradient_is_caught_where_an_intermediate_underflows() -> None:
    # exp(-2100) underflows to 0: this point used to be "not representable" as a
    # whole, and the wrong d/dx1 (1.5 instead of 3) was accepted.
    program = compile_program(parse("x1*3 + exp(x0*3)"))
    report = judge_case(InProcess(WrongMulGradient), program, [[-700.0, 2.0]], oracles=False)
    [verdict] = report.error.verdicts
    assert (verdict.kind, verdict.variable) == ("gradient", 1)
    assert report.judged["value", JUDGED] == 1 and report.judged["partial", JUDGED] == 2
    correct = judge_case(InProcess(Value), program, [[-700.0, 2.0]], oracles=False)
    assert correct.error is None and correct.warning is None


def test_an_underflowed_value_is_judged() -> None:
    program = compile_program(parse("exp(x0) * x1"))
    report = judge_case(InProcess(Value), program, [[-800.0, 1.0]], oracles=False)
    assert report.error is None and report.judged["value", JUDGED] == 1
    assert report.judged["partial", JUDGED] == 2
