"""Hostile engine: correct, except that ``sin()`` kills the process (exit code 3)."""
import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__ + "._base", Path(__file__).resolve().with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


class Value(_base.Value):
    def sin(self):
        os._exit(3)


_base.Value = Value  # the private base's ops now build this class
