"""Mutants of ``engine/value.py`` in second-order and forward mode (create_graph, tangent).

Each is one plausible mistake that first-order gradients cannot see, written as a
text patch of the built-in engine: tanh's second derivative with the wrong sign, a
mul whose gradient graph is detached from the other operand, an accumulation into a
Value grad that detaches the earlier contributions, and sin's tangent with the wrong
sign. Their first-order gradients are all right.

Example::

    from tests.engines import second_order
    path = second_order.write(tmp_path, second_order.BY_NAME["mul_detached_in_create_graph"])
    Value = verifier.loader.load_engine(f"{path}:Value")  # d2(x*y)/dxdy comes out 0
"""
from __future__ import annotations

from dataclasses import dataclass

from tests.engines.library import ENGINE_PATH, write  # the same text patch of engine/value.py

__all__ = ["SecondOrderMutant", "MUTANTS", "BY_NAME", "ENGINE_PATH", "write"]


@dataclass(frozen=True)
class SecondOrderMutant:
    """One wrong rule: ``old`` replaced by ``new`` in engine/value.py; ``op`` is the
    op whose rule is wrong; ``kinds`` what is wrong: ``hessian`` (second derivatives
    through backward(create_graph=True)) or ``tangent`` (forward mode)."""

    name: str
    op: str
    old: str
    new: str
    kinds: frozenset[str]


# Accumulating a second gradient graph into a grad that is already a Value (+=) keeps
# the data but drops the graph of what was there: the second derivative through a
# node used twice is lost. (Adding a number, a leaf's kept grad, is left alone.)
_DETACHING_IADD = (
    "    def __iadd__(self, other: Any) -> Value:\n"
    "        if isinstance(other, Value):\n"
    "            return type(self)(self.data) + other\n"
    "        return self + other\n"
    "\n"
)

MUTANTS = (
    SecondOrderMutant("tanh_second_derivative_wrong", "tanh",
                      "lambda: -2 * t * slope())  # tanh''", "lambda: 2 * t * slope())  # tanh''",
                      frozenset({"hessian"})),
    SecondOrderMutant("mul_detached_in_create_graph", "mul",
                      "a, b = self, other\n", "a, b = self, other.data\n", frozenset({"hessian"})),
    SecondOrderMutant("accumulation_detached", "add",
                      "    def __pos__(self) -> Value:", _DETACHING_IADD + "    def __pos__(self) -> Value:",
                      frozenset({"hessian"})),
    SecondOrderMutant("sin_tangent_sign", "sin",
                      '"sin": lambda i, o, x: math.cos(x),', '"sin": lambda i, o, x: -math.cos(x),',
                      frozenset({"tangent"})),
)
BY_NAME = {m.name: m for m in MUTANTS}
