"""Hostile engine <img src=x onerror=alert(1)>: correct, except that its repr,
names and docstrings carry HTML/JavaScript, and ``log()`` always raises a
ValueError whose message is HTML. A report must show all of it as inert text.
"""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__ + "._base", Path(__file__).resolve().with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

PAYLOAD = '<img src=x onerror=alert(1)>'
LOG_MESSAGE = '<script>alert("x")</script><img src=x onerror=alert(2)>'


class Value(_base.Value):
    """Value <img src=x onerror=alert(1)> with a hostile docstring."""

    def __repr__(self):
        return f"<script>alert(1)</script>Value(data={self.data}, grad={self.grad})"

    def log(self):
        raise ValueError(LOG_MESSAGE)


Value.__name__ = Value.__qualname__ = 'Value' + PAYLOAD
_base.Value = Value  # the private base's ops now build this class
