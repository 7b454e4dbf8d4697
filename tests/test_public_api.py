"""The public API: every docstring example runs as written, and `verifier`'s lazy
exports stay what they say whatever submodules were imported first."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import engine
import reports
import verifier
from verifier.adapters import unavailable_modules

MODULES = sorted(
    info.name
    for package in (engine, verifier, reports)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if info.name != "verifier.__main__"  # running it is running the CLI
    and info.name not in unavailable_modules()  # a framework adapter whose framework is not installed
) + ["engine", "verifier", "reports"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_public_modules_have_examples() -> None:
    for name in ("engine", "engine.value", "engine.nn", "engine.graph", "verifier", "verifier.parsing",
                 "verifier.comparison", "verifier.campaign", "verifier.reference", "verifier.numeric"):
        assert doctest.testmod(importlib.import_module(name)).attempted > 0, name


def test_exports_are_not_shadowed_by_submodules() -> None:
    # Every submodule imported first, then each export looked up in a fresh process.
    code = ("import importlib, pkgutil, types, verifier\n"
            "from verifier.adapters import unavailable_modules\n"
            "for info in pkgutil.walk_packages(verifier.__path__, 'verifier.'):\n"
            "    if info.name != 'verifier.__main__' and info.name not in unavailable_modules():\n"
            "        importlib.import_module(info.name)\n"
            "print(sorted(n for n in verifier._EXPORTS if n != 'strategies'\n"
            "             and isinstance(getattr(verifier, n), types.ModuleType)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
    assert isinstance(verifier.strategies, types.ModuleType)
