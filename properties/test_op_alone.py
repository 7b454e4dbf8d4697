"""Each op alone, before anything built from it.

``test_op_alone[tanh]`` checks tanh on its own (a variable, under an incoming
gradient other than 1, with a gradient already accumulated into its argument) at
fixed ordinary and extreme points, with :func:`verifier.assertions.assert_op_alone`.
The plugin runs these tests first; while one fails, every other test that uses
its op is skipped with ``depends on tanh, which fails alone: see
test_op_alone[tanh]``, so a wrong derivative fails once, under its op's name,
instead of in every property built on it.
"""

from __future__ import annotations

import pytest

from properties import compared
from verifier.assertions import assert_op_alone
from verifier.ops import OPS


@pytest.mark.parametrize(
    "op",
    [pytest.param(op, marks=[pytest.mark.requires_ops(op), pytest.mark.checks_op_alone(op)], id=op) for op in OPS],
)
def test_op_alone(verifier_engine, op):
    compared(assert_op_alone(op, engine=verifier_engine))
