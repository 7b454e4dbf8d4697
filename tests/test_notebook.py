"""A Value class defined in a notebook cell is checked in a sandbox process, exactly
as a file engine is (verifier/hosts.py: shipped by value).

A real notebook is executed with nbclient and an IPython kernel. Its cell defines
tests/engines/base.py's Value with three bugs and a debug print:

* cos's ``_backward`` is a ``while True`` (a hang: ``timeout=5`` must hold, and the
  kernel must not be the process that hangs);
* sin calls itself (a recursion: an exception in the sandbox, fast);
* tanh' = 1 - t (a wrong derivative);
* mul's ``_backward`` prints (thousands of lines that must not reach the notebook).

The run must end well within a bound, report all three, and show the result as HTML
(the verdict and the blame) in the stored outputs.

Without a kernel: a class defined inside a function is sandboxed (its timeout holds,
its prints stay there; ``isolate=False`` is the explicit way to run it in process),
also in worker processes; a cell's class that cloudpickle cannot pickle is shipped
as source; one that cannot be shipped, or rebuilt in the sandbox, is a one-line
error that says how to fix it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engines.base import Value as Base
from verifier.campaign import check_engine
from verifier.hosts import InProcess, Sandbox, open_host, ship
from verifier.loader import EngineLoadError

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests" / "engines" / "base.py"

BUGS = [
    ("        out = Value(math.sin(x), (self,), 'sin')\n",
     "        return self.sin()  # meant math.sin: calls itself\n"),
    ("            self.grad += -math.sin(x) * out.grad\n",
     "            while True:  # hangs\n                pass\n"),
    ("            self.grad += (1 - t**2) * out.grad\n",
     "            self.grad += (1 - t) * out.grad  # wrong: 1 - t**2\n"),
    ("            self.grad += other.data * out.grad\n",
     "            print('debug: mul backward', out.grad)\n            self.grad += other.data * out.grad\n"),
]

CHECK = "result = verifier.check_engine(Value, examples=300, seed=0, timeout=5)\nresult"
FACTS = ("import json\n"
         "print(json.dumps({'ok': result.ok, 'examples': result.examples, 'engine': result.engine,\n"
         "                  'findings': [[f.kind, f.blame.op] for f in result.findings]}))")

BOUND = 100.0  # seconds for the whole notebook, kernel start-up included (about 20 s)


def _cell_source() -> str:
    source = BASE.read_text()
    for old, new in BUGS:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def _kernel(tmp_path: Path) -> str:
    """A kernel spec that runs this Python (whatever other kernels the machine has)."""
    spec = tmp_path / "jupyter" / "kernels" / "crossgrad-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "crossgrad test", "language": "python",
    }))
    return str(tmp_path / "jupyter")


def _require(name: str) -> Any:
    """The module, or a skip (a failure in CI, which installs the dev extra)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")


def test_a_notebook_class_is_sandboxed_and_its_bugs_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat, nbclient = _require("nbformat"), _require("nbclient")
    _require("ipykernel")
    monkeypatch.setenv("JUPYTER_PATH", _kernel(tmp_path))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import verifier"),
        nbformat.v4.new_code_cell(_cell_source()),
        nbformat.v4.new_code_cell(CHECK),
        nbformat.v4.new_code_cell(FACTS),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    client = nbclient.NotebookClient(notebook, timeout=BOUND, kernel_name="crossgrad-test",
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.monotonic()
    client.execute(env=env)
    took = time.monotonic() - started
    nbformat.write(notebook, tmp_path / "checked.ipynb")  # kept for a look when this fails
    assert took < BOUND, f"the notebook took {took:.0f} s"

    check, facts = notebook.cells[2], notebook.cells[3]
    printed = "".join(o.get("text", "") for o in check.outputs if o.output_type == "stream")
    assert "debug" not in printed and len(printed) < 2000, printed[:500]  # the engine's prints stay in the sandbox
    [answer] = [o for o in facts.outputs if o.output_type == "stream"]
    result = json.loads(answer.text)
    assert result["engine"] == "__main__:Value" and result["examples"] == 300 and not result["ok"]
    findings = {tuple(f) for f in result["findings"]}
    assert ("timeout", "cos") in findings
    assert findings & {("exception", "sin"), ("crash", "sin")}
    assert ("gradient", "tanh") in findings

    [shown] = [o for o in check.outputs if o.output_type == "execute_result"]
    assert "at fault: cos, sin, tanh" in shown.data["text/plain"]
    html = shown.data["text/html"]
    for op in ("cos", "sin", "tanh"):
        assert op in html
    assert "hangs" in html and "RecursionError" in html  # the blame: "cos hangs alone on ordinary inputs"


# -- the same containment without a kernel (classes the sandbox cannot import) ---------------


def test_a_class_defined_in_a_function_runs_in_a_sandbox_where_timeout_holds(capsys: pytest.CaptureFixture) -> None:
    class Local(Base):
        def cos(self):
            out = super().cos()

            def _backward():
                while True:
                    pass
            out._backward = _backward
            return out

        def __add__(self, other):
            print("debug: add")
            return super().__add__(other)

    assert isinstance(open_host(Local, isolate=False), InProcess)  # the explicit way in
    started = time.monotonic()
    result = check_engine(Local, ops="add,mul,cos", examples=30, seed=0, timeout=2)
    assert time.monotonic() - started < 60
    assert result.engine.endswith(":test_a_class_defined_in_a_function_runs_in_a_sandbox_where_timeout_holds.<locals>.Local")
    assert [(f.kind, f.blame.op) for f in result.findings] == [("timeout", "cos")]
    assert result.examples == 30
    assert "debug" not in capsys.readouterr().out


CELL = '''
import math
import threading

SCALE = 1.0


class V(Base):
    _lock = threading.Lock()  # cloudpickle cannot pickle a lock: the source is shipped

    def tanh(self):
        t = math.tanh(self.data)
        out = V(t, (self,), 'tanh')

        def _backward():
            self.grad += SCALE * (1 - t) * out.grad  # wrong: 1 - t**2
        out._backward = _backward
        return out
'''


def _run_cell(source: str, name: str) -> dict:
    """Run ``source`` as IPython runs a cell: compiled under a pseudo file name kept in
    linecache, in a namespace called ``__main__``."""
    import linecache

    filename = f"<ipython-input-{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    scope = {"__name__": "__main__", "Base": Base}
    exec(compile(source, filename, "exec"), scope)  # noqa: S102
    return scope


def test_a_cell_class_that_cloudpickle_cannot_pickle_is_shipped_as_source() -> None:
    cell = _run_cell(CELL, "7-lock")
    shipped = ship(cell["V"])
    assert shipped.kind == "source" and shipped.name == "__main__:V"
    result = check_engine(cell["V"], ops="add,tanh", examples=30, seed=0)
    assert [(f.kind, f.blame.op) for f in result.findings] == [("gradient", "tanh")]


def test_a_class_that_cannot_be_shipped_says_how_to_fix_it() -> None:
    import threading

    class Locked(Base):
        lock = threading.Lock()

    with pytest.raises(EngineLoadError) as raised:
        check_engine(Locked, examples=5)
    message = str(raised.value)
    assert "\n" not in message and "cannot be shipped to a sandbox" in message
    assert "'file.py:Locked'" in message and "isolate=False" in message
    assert check_engine(Locked, examples=5, isolate=False, ops="add").ok  # run unprotected, as asked


def test_a_class_the_sandbox_cannot_rebuild_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    ghost = types.ModuleType("ghost_of_a_notebook")  # importable here, nowhere else
    exec("class Base:\n    pass\n", vars(ghost))  # noqa: S102
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)

    class Haunted(ghost.Base):
        pass

    with pytest.raises(EngineLoadError, match=r"could not be rebuilt in a sandbox process .*ModuleNotFoundError.*'file.py:Haunted'"):
        Sandbox(Haunted, timeout=5)


def test_a_shipped_class_runs_in_worker_processes_too() -> None:
    class Local(Base):
        def tanh(self):
            out = super().tanh()
            out._backward = lambda: None  # drops the gradient
            return out

    result = check_engine(Local, ops="add,mul,tanh", examples=40, seed=0, workers=2)
    assert [(f.kind, f.blame.op) for f in result.findings] == [("gradient", "tanh")]
    assert result.workers == 2 and result.examples == 40
