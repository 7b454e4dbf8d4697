"""crossgrad's scalar autograd engine: a micrograd-compatible `Value`, `nn`, graph export.

Example:
    >>> from engine import Value
    >>> a, b, c = Value(2.0), Value(3.0), Value(4.0)
    >>> f = -a**3 + (3 * b).sin() - 1.0 / c + b**2.5 - a**0.5
    >>> f.backward()
    >>> round(f.data, 6), round(c.grad, 6)
    (6.336362, 0.0625)
"""

from engine import nn
from engine.graph import draw_dot, to_dot
from engine.value import DomainError, Value, topological_order, zero_grad

__all__ = ["DomainError", "Value", "draw_dot", "nn", "to_dot", "topological_order", "zero_grad"]
