"""A student's engine with two bugs: ``*`` returns None (``return out`` forgotten)
and binary ``-`` recurses forever (``return self - other``). The rest is the
correct base engine (a private copy of base.py, loaded from next to this file).
"""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__ + "._base", Path(__file__).resolve().with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


class Value(_base.Value):
    """A student's Value."""

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward

    def __sub__(self, other):
        return self - other


_base.Value = Value  # the private base's ops now build this class
