"""Hostile engine: correct, except that ``cos()`` segfaults (reads address 0)."""
import ctypes
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__ + "._base", Path(__file__).resolve().with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


class Value(_base.Value):
    def cos(self):
        ctypes.string_at(0)


_base.Value = Value  # the private base's ops now build this class
