"""Hostile engine: correct, except that ``sqrt``'s backward never returns."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__ + "._base", Path(__file__).resolve().with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


class Value(_base.Value):
    def sqrt(self):
        out = super().sqrt()  # the forward value is right

        def _backward():
            while True:
                pass
        out._backward = _backward
        return out


_base.Value = Value  # the private base's ops now build this class
