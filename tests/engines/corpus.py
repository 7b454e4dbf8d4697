"""The engine corpus: mutants of ``base.py``, each with ONE realistic bug.

A mutant is a list of ``(old, new)`` text patches of ``base.py`` plus what the
verifier must say about it: the finding kinds it may report, the op to blame,
and a witness expression (with a point) on which the bug shows. Witnesses use
only Python operators and the methods ``exp log tanh relu sigmoid sin cos
sqrt``, so they run on engine Values and on torch float64 tensors alike.

Example::

    from tests.engines import corpus
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    Value = corpus.load_engine(m.name, m.patches)       # a fresh module's Value class
    path = corpus.write_engine(tmp_path, m.name, m.patches)
    # then: verifier check --engine {path}:Value  -> a "gradient" finding blamed on "tanh"
"""
from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ENGINES_DIR = Path(__file__).resolve().parent
BASE_PATH = ENGINES_DIR / "base.py"
TORCH_ENGINE_PATH = ENGINES_DIR / "torch_engine.py"
STUDENT_PATH = ENGINES_DIR / "student.py"
HOSTILE_PATHS = {
    "exit": ENGINES_DIR / "hostile_exit.py",          # sin() -> os._exit(3)
    "segfault": ENGINES_DIR / "hostile_segfault.py",  # cos() -> SIGSEGV
    "hang": ENGINES_DIR / "hostile_hang.py",          # sqrt's backward never returns
    "strings": ENGINES_DIR / "hostile_strings.py",    # HTML/JS in repr, names, log's error
}

OP_NAMES = ("add", "sub", "mul", "div", "neg", "pow", "exp", "log",
            "tanh", "relu", "sigmoid", "sin", "cos", "sqrt")

# The small campaigns behind the report tests (conftest's ``real_reports``):
# name -> (target, check_engine options); None is the tanh_grad_float32 mutant.
REPORT_CAMPAIGNS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "clean": ("engine:Value", {"examples": 60}),
    "float32": (None, {"examples": 60}),
    "hostile": ("tests/engines/hostile_strings.py:Value", {"examples": 60}),
    "student": ("tests/engines/student.py:Value", {"examples": 100, "timeout": 2}),
}
FINDING_KINDS = frozenset({"gradient", "value", "exception", "invalid", "crash", "timeout"})

Patch = tuple[str, str]


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    patches: tuple[Patch, ...]
    kinds: frozenset[str]
    blame: str
    witness: Callable[..., Any]
    witness_point: tuple[float, ...]
    severity: str = "error"  # "warning": a robustness issue outside the domain


def source(patches: tuple[Patch, ...] | list[Patch] = ()) -> str:
    """base.py's text with ``patches`` applied in order.

    Raises:
        ValueError: if some ``old`` does not occur exactly once in the text it patches.
    """
    text = BASE_PATH.read_text(encoding="utf-8")
    for old, new in patches:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"patch old={old!r} occurs {count} times in the engine source "
                             "(must be exactly once); was base.py edited?")
        text = text.replace(old, new)
    return text


def write_engine(directory: Path, name: str, patches: tuple[Patch, ...] | list[Patch] = ()) -> Path:
    """Write base.py with ``patches`` as the standalone engine ``directory/<name>.py``."""
    if not name.isidentifier():
        raise ValueError(f"name={name!r} must be a Python identifier (it becomes a module name)")
    path = Path(directory) / f"{name}.py"
    path.write_text(source(patches), encoding="utf-8")
    return path


_tmp = None
_counter = itertools.count()


def load_engine(name: str, patches: tuple[Patch, ...] | list[Patch] = ()) -> type:
    """Import base.py with ``patches`` as a fresh module and return its ``Value`` class."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.TemporaryDirectory(prefix="crossgrad_corpus_")  # removed at exit
    module_name = f"_crossgrad_corpus_{name}_{next(_counter)}"
    path = write_engine(Path(_tmp.name), module_name, patches)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.Value


def _method(name: str) -> str:
    """The full text of method ``name`` in base.py (to replace a whole method)."""
    text = BASE_PATH.read_text(encoding="utf-8")
    match = re.search(rf"    def {re.escape(name)}\(.*?(?=\n\n    \S|\Z)", text, re.S)
    if match is None:
        raise ValueError(f"method {name!r} not found in {BASE_PATH}")
    return match.group(0).rstrip("\n") + "\n"


# ---- witnesses that need a shared node ---------------------------------------

def _shared_in_two_branches(x, y):
    c = x * y                      # c feeds two parents
    return c.exp() + c.sin()


def _shared_at_two_depths(x, y):
    c = x * y                      # reached from the output at depth 1 and depth 2
    return c + c.exp()


def _accumulate_into_mul_input(x, y):
    return (x * y) * x             # x gets gradient from both multiplications


def _accumulate_into_add_input(x, y):
    return (x + y) * x             # x gets gradient from the mul before the add's backward


_IMPORT_STRUCT = ("import math\n", "import math\nimport struct\n")
_SIGMOID_BRANCHES = """\
        if x >= 0:
            s = 1 / (1 + math.exp(-x))
        else:  # the same value, written so that exp cannot overflow
            e = math.exp(x)
            s = e / (1 + e)
"""
_BFS_BACKWARD = """\
    def backward(self):
        # visit the graph breadth-first from the output, then apply the chain rule
        order, seen, queue = [], {self}, [self]
        while queue:
            v = queue.pop(0)
            order.append(v)
            for child in v._prev:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        self.grad = 1.0
        for v in order:
            v._backward()
"""


def _m(name, description, patches, kinds, blame, witness, point, severity="error"):
    return Mutant(name, description, tuple(patches), frozenset(kinds), blame, witness, tuple(point), severity)


G, V, E, I = "gradient", "value", "exception", "invalid"

MUTANTS: tuple[Mutant, ...] = (
    # -- wrong local derivatives ------------------------------------------------
    _m("tanh_grad_missing_square", "tanh' written as 1 - t instead of 1 - t**2",
       [("(1 - t**2) * out.grad", "(1 - t) * out.grad")],
       {G}, "tanh", lambda x: x.tanh(), (0.7,)),
    _m("exp_grad_uses_input", "exp' written as x instead of exp(x)",
       [("self.grad += out.data * out.grad", "self.grad += self.data * out.grad")],
       {G}, "exp", lambda x: x.exp(), (0.5,)),
    _m("log_grad_divides_by_output", "log' written as 1/log(x) instead of 1/x",
       [("self.grad += out.grad / x", "self.grad += out.grad / out.data")],
       {G, E}, "log", lambda x: x.log(), (2.0,)),     # ZeroDivisionError at x = 1
    _m("sin_grad_negated", "sin' written as -cos(x)",
       [("self.grad += math.cos(x) * out.grad", "self.grad += -math.cos(x) * out.grad")],
       {G}, "sin", lambda x: x.sin(), (0.4,)),
    _m("cos_grad_missing_minus", "cos' written as sin(x), the minus sign forgotten",
       [("self.grad += -math.sin(x) * out.grad", "self.grad += math.sin(x) * out.grad")],
       {G}, "cos", lambda x: x.cos(), (0.4,)),
    _m("sigmoid_grad_uses_input", "sigmoid' written as x*(1-x) with the input instead of s*(1-s)",
       [("s * (1 - s) * out.grad", "x * (1 - x) * out.grad")],
       {G}, "sigmoid", lambda x: x.sigmoid(), (0.8,)),
    _m("sqrt_grad_missing_half", "sqrt' written as 1/sqrt(x), the 1/2 forgotten",
       [("0.5 / s * out.grad", "1 / s * out.grad")],
       {G}, "sqrt", lambda x: x.sqrt(), (2.0,)),
    _m("pow_grad_exponent_not_lowered", "d/dx x**k written as k*x**k instead of k*x**(k-1)",
       [("k * x ** (k - 1) * out.grad", "k * x ** k * out.grad")],
       {G}, "pow", lambda x: x ** 3, (1.5,)),
    _m("relu_grad_passes_negatives", "relu' tested with out >= 0, always true, so negatives pass the gradient",
       [("(out.data > 0) * out.grad", "(out.data >= 0) * out.grad")],
       {G}, "relu", lambda x: x.relu(), (-0.5,)),
    _m("div_grad_denominator_missing_numerator", "d(a/b)/db written as -1/b**2, the numerator a forgotten",
       [("other.grad -= out.data / other.data * out.grad", "other.grad -= 1 / other.data ** 2 * out.grad")],
       {G}, "div", lambda x, y: x / y, (3.0, 2.0)),
    _m("div_grad_numerator_multiplies", "d(a/b)/da written as b instead of 1/b",
       [("self.grad += out.grad / other.data", "self.grad += out.grad * other.data")],
       {G}, "div", lambda x, y: x / y, (3.0, 2.0)),
    _m("mul_grad_uses_own_data", "d(a*b)/da written as a instead of b",
       [("self.grad += other.data * out.grad", "self.grad += self.data * out.grad")],
       {G}, "mul", lambda x, y: x * y, (1.5, 2.0)),
    _m("neg_grad_sign", "neg passes the gradient through unchanged (+= instead of -=)",
       [("self.grad -= out.grad", "self.grad += out.grad")],
       {G}, "neg", lambda x: -x, (0.5,)),
    _m("sub_grad_sign_second_arg", "sub's backward forgets the minus sign on the second argument",
       [("other.grad -= out.grad", "other.grad += out.grad")],
       {G}, "sub", lambda x, y: x - y, (0.5, 2.0)),
    # -- accumulation and traversal ----------------------------------------------
    _m("mul_grad_assign", "mul's backward assigns (=) instead of accumulating (+=)",
       [("self.grad += other.data * out.grad", "self.grad = other.data * out.grad")],
       {G}, "mul", _accumulate_into_mul_input, (1.5, 2.0)),
    _m("add_grad_assign", "add's backward assigns (=) instead of accumulating (+=)",
       [("            self.grad += out.grad\n            other.grad += out.grad",
         "            self.grad = out.grad\n            other.grad += out.grad")],
       {G}, "add", _accumulate_into_add_input, (1.5, 2.0)),
    _m("backward_revisits_shared_nodes", "topological sort without a visited check: shared nodes backpropagate twice",
       [("elif v not in visited:", "else:")],
       {G, "timeout"}, "backward", _shared_in_two_branches, (0.6, 1.3)),
    _m("backward_bfs_order", "backward visits nodes breadth-first from the output, not in reverse topological order",
       [(_method("backward"), _BFS_BACKWARD)],
       {G}, "backward", _shared_at_two_depths, (0.6, 1.3)),
    # -- numbers on the left --------------------------------------------------------
    _m("rsub_operands_swapped", "__rsub__ computes x - c instead of c - x",
       [("return Value(other) - self", "return self - other")],
       # A wrong value may first show as a later op raising (log of it, say).
       {V, E}, "sub", lambda x: 2.0 - x, (0.5,)),
    _m("rtruediv_operands_swapped", "__rtruediv__ computes x / c instead of c / x",
       [("return Value(other) / self", "return self / other")],
       {V, E}, "div", lambda x: 2.0 / x, (0.5,)),
    # -- numerically unsafe forwards, single precision ----------------------------
    _m("tanh_naive_overflow", "tanh as (exp(2x)-1)/(exp(2x)+1): OverflowError past x ~ 355, cancellation near 0",
       [("t = math.tanh(self.data)", "e = math.exp(2 * self.data)\n        t = (e - 1) / (e + 1)")],
       {E, V}, "tanh", lambda x: x.tanh(), (400.0,)),
    _m("sigmoid_naive_overflow", "sigmoid as 1/(1+exp(-x)) for all x: OverflowError below x ~ -709.8",
       [(_SIGMOID_BRANCHES, "        s = 1 / (1 + math.exp(-x))\n")],
       {E, V}, "sigmoid", lambda x: x.sigmoid(), (-720.0,)),
    _m("sigmoid_naive_overflow_positive", "sigmoid as exp(x)/(1+exp(x)) for all x: OverflowError above x ~ 709.8",
       [(_SIGMOID_BRANCHES, "        e = math.exp(x)\n        s = e / (1 + e)\n")],
       {E, V}, "sigmoid", lambda x: x.sigmoid(), (720.0,)),
    _m("tanh_grad_float32", "tanh' rounded to single precision (struct 'f'), wrong by ~1e-8 relative",
       [_IMPORT_STRUCT, ("(1 - t**2) * out.grad", "struct.unpack('f', struct.pack('f', 1 - t**2))[0] * out.grad")],
       {G}, "tanh", lambda x: x.tanh(), (0.5,)),
    _m("sin_grad_float32", "sin' rounded to single precision (struct 'f'), wrong by ~1e-8 relative",
       [_IMPORT_STRUCT, ("self.grad += math.cos(x) * out.grad",
                         "self.grad += struct.unpack('f', struct.pack('f', math.cos(x)))[0] * out.grad")],
       {G}, "sin", lambda x: x.sin(), (0.3,)),
    # -- domain, protocol, recursion ---------------------------------------------
    _m("log_of_abs", "log takes abs(x) to dodge the domain error: a finite wrong number for x < 0",
       [("Value(math.log(x), (self,), 'log')", "Value(math.log(abs(x)), (self,), 'log')")],
       {V, I}, "log", lambda x: x.log(), (-2.0,), severity="warning"),
    _m("exp_returns_none", "exp forgets `return out` and returns None",
       [("            self.grad += out.data * out.grad\n        out._backward = _backward\n        return out\n",
         "            self.grad += out.data * out.grad\n        out._backward = _backward\n")],
       {I, E}, "exp", lambda x: x.exp(), (0.5,)),
    _m("neg_infinite_recursion", "__neg__ written as `return -self`: RecursionError",
       [(_method("__neg__"), "    def __neg__(self):\n        return -self\n")],
       {E}, "neg", lambda x: -x, (0.5,)),
    _m("sub_infinite_recursion", "__sub__ written as `return self - other`: RecursionError",
       [(_method("__sub__"), "    def __sub__(self, other):\n        return self - other\n")],
       {E}, "sub", lambda x, y: x - y, (0.5, 2.0)),
)

MUTANTS_BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}

# A CORRECT engine written with other valid formulas, which round differently.
# Each stays within a few ulps of the scale of its op's terms; two caveats for a
# judge: cos(x + pi/2) carries an absolute error ~1e-16 (the rounding of pi/2),
# which is huge relative to sin(x) for tiny x, and a * (1/b) overflows to inf
# when b is subnormal (1/b > max float) although a/b may be finite.
ALT_FORMULAS: tuple[Patch, ...] = (
    ("(1 - t**2) * out.grad", "(1 - t) * (1 + t) * out.grad"),
    ("Value(math.exp(self.data), (self,), 'exp')", "Value(math.e ** self.data, (self,), 'exp')"),
    ("s = math.sqrt(x)", "s = x ** 0.5"),
    ("self.grad += -math.sin(x) * out.grad", "self.grad += math.cos(x + math.pi / 2) * out.grad"),
    ("s * (1 - s) * out.grad", "(s - s * s) * out.grad"),
    ("Value(self.data / other.data, (self, other), '/')", "Value(self.data * (1 / other.data), (self, other), '/')"),
)
