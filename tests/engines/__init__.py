"""Engines under test for crossgrad's own tests: a correct base, its mutants
(see ``corpus.py``), a torch-backed engine, a student engine and hostile ones.

Every engine file here is standalone: it can be loaded as
``path/to/file.py:Value`` from any directory.
"""

from pathlib import Path

BASE_PATH = Path(__file__).with_name("base.py")

# Where every op of a correct engine is accurate (inside every domain, away from
# kinks, far from over- and underflow), and each op as a function of Values.
ORDINARY = (-2.3, -0.7, -0.2, 0.35, 0.9, 1.6, 2.4)
UNARY = {
    "exp": lambda x: x.exp(), "log": lambda x: x.log(), "tanh": lambda x: x.tanh(),
    "relu": lambda x: x.relu(), "sigmoid": lambda x: x.sigmoid(), "sin": lambda x: x.sin(),
    "cos": lambda x: x.cos(), "sqrt": lambda x: x.sqrt(), "neg": lambda x: -x,
    "pow": lambda x: x ** 2.5, "rdiv": lambda x: 1.7 / x,
}
BINARY = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}


def subclass_header(*imports: str) -> str:
    """The head of a standalone engine file whose ``Value`` subclasses base.py's
    (loaded by path, so the file works from any folder): ``_base.Value``."""
    lines = "".join(f"import {name}\n" for name in ("importlib.util", *imports))
    return (f"\n{lines}\n_spec = importlib.util.spec_from_file_location(__name__ + \"._base\", {str(BASE_PATH)!r})\n"
            "_base = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_base)\n")
