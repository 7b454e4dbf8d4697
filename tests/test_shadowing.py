"""The user's files never stand in for crossgrad's own packages (verifier/loader.py,
verifier/hosts.py, verifier/__main__.py).

A student's folder often holds an ``engine.py`` (their Value), a project its own
``reports/`` package or a ``properties.py``. Standing there:

* ``verifier check`` (documented as checking the built-in engine) checks crossgrad's
  ``engine:Value`` and writes its report with crossgrad's ``reports``, both as the
  ``verifier`` command and as ``python -m verifier`` (which puts the current folder
  first on sys.path);
* ``verifier check --engine engine.py:Value`` checks the user's file;
* the sandbox imports crossgrad's ``verifier``, ``engine`` and ``reports`` even from a
  folder with packages of those names, and a user's file still imports its own
  neighbours (an ``engine.py`` beside it included) without leaving them in the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.hosts import Sandbox
from verifier.loader import load_engine

ROOT = Path(__file__).resolve().parent.parent

# A different engine: only +, and its gradient is wrong (d(a+b)/da = 2).
USER_ENGINE = '''
class Value:
    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += 2 * out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    __radd__ = __add__

    def backward(self):
        topo, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    visit(child)
                topo.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()
'''

BROKEN = 'raise ImportError("the user\'s own {name}, imported by crossgrad")\n'


@pytest.fixture
def student_folder(tmp_path: Path) -> Path:
    """A folder with the student's engine.py, a reports/ package and a properties.py."""
    (tmp_path / "engine.py").write_text(USER_ENGINE)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "__init__.py").write_text(BROKEN.format(name="reports"))
    (tmp_path / "properties.py").write_text(BROKEN.format(name="properties"))
    return tmp_path


def _command(how: str = "python -m verifier") -> list[str]:
    if how == "python -m verifier":  # puts the current folder first on sys.path
        return [sys.executable, "-m", "verifier"]
    script = Path(sys.executable).parent / "verifier"
    if not script.is_file():
        pytest.skip("no installed `verifier` command beside this Python")
    return [str(script)]


def _run(command: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.mark.parametrize("how", ["python -m verifier", "verifier"])
def test_a_plain_check_checks_the_built_in_engine_and_writes_its_report(student_folder: Path, how: str) -> None:
    done = _run(_command(how), "check", "--examples", "50", "--report", "report.html", cwd=student_folder)
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = json.loads((student_folder / "report.json").read_text())
    assert report["engine"] == "engine:Value" and report["examples"] == 50
    assert report["discrepancies"] == []
    assert {"tanh", "sin", "sqrt"} <= set(report["ops"])  # crossgrad's engine, not the student's (add only)
    assert (student_folder / "report.html").stat().st_size > 1000


def test_a_file_target_in_the_folder_checks_the_users_file(student_folder: Path) -> None:
    done = _run(_command(), "check", "--engine", "engine.py:Value", "--examples", "50",
                "--json", "found.json", cwd=student_folder)
    assert done.returncode == 1, (done.stdout, done.stderr)
    report = json.loads((student_folder / "found.json").read_text())
    assert report["ops"] == ["add"]
    assert [(d["kind"], d["blame"]["op"]) for d in report["discrepancies"]] == [("gradient", "add")]


def test_the_sandbox_imports_crossgrads_packages_from_any_folder(student_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder with a package called verifier too, and the current folder first on
    # sys.path, as in a notebook.
    (student_folder / "verifier").mkdir()
    (student_folder / "verifier" / "__init__.py").write_text(BROKEN.format(name="verifier"))
    (student_folder / "verifier" / "hosts.py").write_text(BROKEN.format(name="verifier.hosts"))
    monkeypatch.chdir(student_folder)
    monkeypatch.syspath_prepend(str(student_folder))
    with Sandbox("engine:Value", timeout=10) as host:
        assert {"tanh", "sin", "sqrt"} <= set(host.supported)
    with Sandbox("engine.py:Value", timeout=10) as host:
        assert host.supported == ("add",)


def test_a_users_file_imports_its_own_neighbours_then_gives_the_names_back(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "engine.py").write_text(USER_ENGINE)
    (folder / "value.py").write_text("from engine import Value as Base\n\n\nclass Value(Base):\n    pass\n")
    import engine as crossgrads_engine

    user_class = load_engine(f"{folder / 'value.py'}:Value")
    assert user_class.__mro__[1].__module__ == "engine"
    assert user_class.__mro__[1] is not crossgrads_engine.Value  # the neighbour, not crossgrad's
    import engine

    assert engine is crossgrads_engine and Path(engine.__file__).resolve().is_relative_to(ROOT)
    assert sys.path[-1] == str(folder)  # still found by name later, behind everything else
    sys.path.remove(str(folder))
    with Sandbox(f"{folder / 'value.py'}:Value", timeout=10) as host:
        assert host.supported == ("add",)


def test_no_command_needs_the_current_folder_on_its_path(student_folder: Path) -> None:
    # A module target next to the user is still found (the folder comes last).
    shutil.copy(student_folder / "engine.py", student_folder / "my_value.py")
    done = _run(_command(), "check", "--engine", "my_value:Value", "--examples", "20", cwd=student_folder)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "add" in done.stdout


def test_in_the_users_own_process_a_shadowed_package_is_named_not_taken(student_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A notebook or a pytest run keeps Python's rules (crossgrad does not take the
    # name `reports` from the user there), but says in one line what hides its own.
    from verifier.loader import own_package

    assert own_package("reports").__name__ == "reports"  # crossgrad's, already imported
    monkeypatch.delitem(sys.modules, "reports")
    monkeypatch.syspath_prepend(str(student_folder))
    (student_folder / "reports" / "__init__.py").write_text("")
    with pytest.raises(ImportError, match=r"crossgrad's 'reports' package is hidden by .*reports/__init__.py"):
        own_package("reports")
    monkeypatch.delitem(sys.modules, "reports")
