"""Tests of the engine corpus itself (tests/engines), independent of the verifier.

The reference is torch float64 autograd. The corpus must hold: a base engine that
agrees with torch, mutants that each disagree on their witness in the way their
manifest says, a correct engine with other formulas, and engines that die.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ has no __init__.py; import tests.engines from the repo root
    sys.path.insert(0, str(ROOT))

from tests.engines import BINARY, ORDINARY, UNARY, corpus  # noqa: E402

BASE_TOL = 1e-12    # base (and alternative) engines vs torch, relative
DIFFER_TOL = 1e-10  # a mutant "differs" beyond this relative error
TINY = 1e-300       # absolute slack: subnormal results (torch flushes some to 0)


# ---- running an expression -------------------------------------------------

@dataclass
class Outcome:
    status: str                 # "ok", "raised", "invalid" (the op returned a non-Value)
    value: float = math.nan
    grads: tuple[float, ...] = ()
    error: BaseException | None = None


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@contextlib.contextmanager
def low_recursion_limit(headroom: int = 150):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def run_engine(Value, f, point) -> Outcome:
    """f at point with the engine; RecursionError surfaces fast (low limit)."""
    try:
        with low_recursion_limit():
            xs = [Value(p) for p in point]
            out = f(*xs)
            if not hasattr(out, "backward"):
                return Outcome("invalid", error=None)
            out.backward()
            return Outcome("ok", float(out.data), tuple(float(x.grad) for x in xs))
    except Exception as exc:  # noqa: BLE001 - RecursionError, OverflowError, TypeError, ...
        return Outcome("raised", error=exc)


def run_torch(f, point) -> Outcome:
    xs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    out = f(*xs)
    out.backward()
    return Outcome("ok", out.item(), tuple(0.0 if x.grad is None else x.grad.item() for x in xs))


def close(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b)) + TINY


def agrees(got: Outcome, ref: Outcome, rel: float = BASE_TOL) -> bool:
    """Agreement in the verifier's sense: outside the domain (torch gives nan),
    raising ValueError/ZeroDivisionError is as good as nan."""
    if math.isnan(ref.value):
        return (got.status == "raised" and isinstance(got.error, (ValueError, ZeroDivisionError))) or (
            got.status == "ok" and math.isnan(got.value))
    if got.status != "ok":
        return False
    return close(got.value, ref.value, rel) and all(
        close(g, r, rel) for g, r in zip(got.grads, ref.grads) if math.isfinite(r))


def symptom(got: Outcome, ref: Outcome) -> str | None:
    """The first way the engine differs from torch, as a finding kind (None: agrees)."""
    if got.status == "raised":
        return "exception"
    if got.status == "invalid":
        return "invalid"
    if not close(got.value, ref.value, DIFFER_TOL):
        return "value"
    if not all(close(g, r, DIFFER_TOL) for g, r in zip(got.grads, ref.grads)):
        return "gradient"
    return None


def load_path(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"_test_corpus_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- expressions covering every op, shared nodes and r-operators -------------

def e_arith(x, y):
    return (x * y + 3.0) / (y - 0.25) - (-x) * 2.0 + 1.5 / y - (4.0 - x) + x ** 3 - y ** -1.5


def e_unary(x, y):
    return x.exp() * y.log() + x.tanh() / y.sigmoid() + (x.sin() - y.cos()) * y.sqrt()


def e_shared(x, y):
    c = (x * y).tanh()               # a shared node, reached at two depths
    d = c.exp() + c * x
    return d * d.sigmoid() + (c - d).relu() + (2.0 * d - y).relu() + d.sqrt() ** 2.5


def e_chain(x, y):
    z = x
    for _ in range(5):              # a deep chain with shared subterms
        z = (z * y).sin() + z.cos() * 0.5 + 1.0 / (1.0 + z * z)
    return z.log() - z.sqrt() + 3.0 ** 0.5 * z


EXPRESSIONS = [
    (e_arith, (0.7, 1.9)), (e_arith, (-1.3, 0.6)),
    (e_unary, (0.3, 2.2)), (e_unary, (-1.1, 0.4)),
    (e_shared, (0.9, 1.2)), (e_shared, (-0.4, 2.5)),
    (e_chain, (0.8, 1.1)), (e_chain, (-1.2, 0.9)),
]
EXPR_IDS = [f"{f.__name__}{p}" for f, p in EXPRESSIONS]


@pytest.fixture(scope="module")
def base():
    return corpus.load_engine("base")


@pytest.mark.parametrize(("f", "point"), EXPRESSIONS, ids=EXPR_IDS)
def test_base_matches_torch(base, f, point):
    got, ref = run_engine(base, f, point), run_torch(f, point)
    assert got.status == "ok", got.error
    assert all(math.isfinite(r) for r in (ref.value, *ref.grads))
    assert agrees(got, ref), (got, ref)


def test_base_domain_raises_never_complex(base):
    cases = [(lambda x: x.log(), -1.0, ValueError), (lambda x: x.log(), 0.0, ValueError),
             (lambda x: x.sqrt(), -4.0, ValueError), (lambda x: x ** 0.5, -4.0, ValueError),
             (lambda x: x ** -1, 0.0, ZeroDivisionError), (lambda x: 1.0 / x, 0.0, ZeroDivisionError),
             (lambda x: x / 0.0, 1.0, ZeroDivisionError)]
    for f, p, exc in cases:
        got = run_engine(base, f, (p,))
        assert got.status == "raised" and isinstance(got.error, exc), (p, got)
    assert run_engine(base, lambda x: x ** 3, (-2.0,)).value == -8.0      # integer power of a negative
    assert run_engine(base, lambda x: x ** 0, (0.0,)).grads == (0.0,)    # constant: no 0.0 ** -1
    assert run_engine(base, lambda x: x.relu(), (0.0,)).grads == (0.0,)  # relu'(0) = 0


def test_base_accumulates_and_is_iterative(base):
    x = base(1.0)
    z = x
    for _ in range(5000):  # deeper than the recursion limit
        z = z * 1.0 + 0.0
    z.backward()
    assert x.grad == 1.0
    assert isinstance(x._prev, tuple) and z._op == "+"


# ---- manifest ------------------------------------------------------------------

def test_manifest_is_well_formed():
    names = [m.name for m in corpus.MUTANTS]
    assert len(names) >= 20 and len(set(names)) == len(names)
    required = {"tanh", "exp", "log", "sin", "cos", "sigmoid", "sqrt", "pow", "relu", "div", "neg",
                "sub", "mul", "add", "backward"}
    assert required <= {m.blame for m in corpus.MUTANTS}
    assert set(corpus.MUTANTS_BY_NAME) == set(names)
    for m in corpus.MUTANTS:
        assert m.kinds and m.kinds <= corpus.FINDING_KINDS, m.name
        assert m.blame in corpus.OP_NAMES or m.blame == "backward", m.name
        assert m.description and "\n" not in m.description, m.name
        assert m.name.isidentifier() and m.patches, m.name


def test_every_patch_applies_exactly_once():
    text = corpus.BASE_PATH.read_text()
    assert len(text.splitlines()) <= 220
    for m in corpus.MUTANTS:
        for old, new in m.patches:
            assert text.count(old) == 1, (m.name, old)
            assert old != new
        src = corpus.source(m.patches)
        assert src != text
        compile(src, m.name, "exec")
    for old, _ in corpus.ALT_FORMULAS:
        assert text.count(old) == 1, old


def test_source_rejects_bad_patches(tmp_path):
    with pytest.raises(ValueError, match="0 times"):
        corpus.source([("this text is not in base.py", "x")])
    with pytest.raises(ValueError, match="times"):
        corpus.source([("out._backward = _backward", "x")])  # in every op
    with pytest.raises(ValueError):
        corpus.write_engine(tmp_path, "not an identifier")
    assert corpus.source() == corpus.BASE_PATH.read_text()


def test_write_engine_is_standalone(tmp_path):
    m = corpus.MUTANTS_BY_NAME["tanh_grad_missing_square"]
    path = corpus.write_engine(tmp_path, "tanh_bug", m.patches)
    assert path == tmp_path / "tanh_bug.py"
    Value = load_path(path, "tanh_bug").Value
    assert symptom(run_engine(Value, m.witness, m.witness_point), run_torch(m.witness, m.witness_point)) == "gradient"
    a, b = corpus.load_engine("base"), corpus.load_engine("base")
    assert a is not b and a.__module__ != b.__module__   # fresh modules


# ---- every mutant shows its bug on its witness; the base does not --------------

@pytest.mark.parametrize("mutant", corpus.MUTANTS, ids=lambda m: m.name)
def test_mutant_differs_on_its_witness(base, mutant):
    ref = run_torch(mutant.witness, mutant.witness_point)
    assert agrees(run_engine(base, mutant.witness, mutant.witness_point), ref)
    got = run_engine(corpus.load_engine(mutant.name, mutant.patches), mutant.witness, mutant.witness_point)
    kind = symptom(got, ref)
    assert kind is not None, f"{mutant.name} agrees with torch on its witness"
    assert kind in mutant.kinds, (mutant.name, kind, got)
    if "Recursion" in mutant.description:
        assert isinstance(got.error, RecursionError)
    if "None" in mutant.description:
        assert got.status == "invalid"
    if "Overflow" in mutant.description:
        assert isinstance(got.error, OverflowError)


@pytest.mark.parametrize("mutant", [m for m in corpus.MUTANTS if "float32" in m.name], ids=lambda m: m.name)
def test_single_precision_mutant_is_subtle(mutant):
    ref = run_torch(mutant.witness, mutant.witness_point)
    got = run_engine(corpus.load_engine(mutant.name, mutant.patches), mutant.witness, mutant.witness_point)
    assert got.value == pytest.approx(ref.value, rel=1e-15)
    rel = max(abs(g - r) / abs(r) for g, r in zip(got.grads, ref.grads))
    assert 1e-10 < rel < 1e-6


def test_traversal_mutants_need_shared_interior_nodes():
    # trees (only leaves repeat) are fine; the BFS order also survives a node shared at one depth
    bfs = corpus.MUTANTS_BY_NAME["backward_bfs_order"]
    revisit = corpus.MUTANTS_BY_NAME["backward_revisits_shared_nodes"]
    cases = [(bfs, e_arith, (0.7, 1.9)), (bfs, e_unary, (0.3, 2.2)), (revisit, e_unary, (0.3, 2.2)),
             (bfs, revisit.witness, revisit.witness_point)]
    for m, f, point in cases:
        assert agrees(run_engine(corpus.load_engine(m.name, m.patches), f, point), run_torch(f, point)), m.name


def test_naive_tanh_also_loses_digits_near_zero():
    m = corpus.MUTANTS_BY_NAME["tanh_naive_overflow"]
    got = run_engine(corpus.load_engine(m.name, m.patches), m.witness, (1e-9,))
    assert symptom(got, run_torch(m.witness, (1e-9,))) == "value"


# ---- a correct engine with other formulas ----------------------------------------

def test_alt_formulas_are_correct_but_different(base):
    text = corpus.BASE_PATH.read_text()
    assert corpus.source(corpus.ALT_FORMULAS) != text
    alt = corpus.load_engine("alt", corpus.ALT_FORMULAS)
    bitwise_differences = 0
    for name, f in UNARY.items():
        for p in ORDINARY:
            if name in ("log", "sqrt", "pow") and p <= 0:
                p = -p
            ref, got = run_torch(f, (p,)), run_engine(alt, f, (p,))
            assert agrees(got, ref, rel=1e-13), (name, p, got, ref)
            b = run_engine(base, f, (p,))
            bitwise_differences += (b.value, b.grads) != (got.value, got.grads)
    for name, f in BINARY.items():
        for p, q in zip(ORDINARY, reversed(ORDINARY)):
            ref, got = run_torch(f, (p, q)), run_engine(alt, f, (p, q))
            assert agrees(got, ref, rel=1e-13), (name, p, q, got, ref)
            b = run_engine(base, f, (p, q))
            bitwise_differences += (b.value, b.grads) != (got.value, got.grads)
    assert bitwise_differences >= 5  # it really rounds differently
    for f, point in EXPRESSIONS:
        assert agrees(run_engine(alt, f, point), run_torch(f, point), rel=BASE_TOL)


# ---- the torch engine, the student, the hostile engines ---------------------------

def test_torch_engine_matches_torch():
    Value = load_path(corpus.TORCH_ENGINE_PATH, "torch_engine").Value
    for f, point in EXPRESSIONS:
        assert agrees(run_engine(Value, f, point), run_torch(f, point), rel=1e-15)
    x, y = Value(0.5), Value(1.5)
    mid = x * y
    out = mid.tanh() + 2.0 - x
    assert x.grad == 0.0 and mid.grad == 0.0 and isinstance(out.data, float)
    assert out._prev and out._op and mid._prev == (x, y)
    out.backward()
    first = (x.grad, y.grad, mid.grad)
    assert mid.grad == pytest.approx(1 - math.tanh(0.75) ** 2)
    out.backward()  # accumulates, like torch
    assert (x.grad, y.grad) == pytest.approx((2 * first[0], 2 * first[1]))
    x.grad = 0.0
    mid.grad = 0.0
    assert x.grad == 0.0 and mid.grad == 0.0
    assert math.isnan(Value(-1.0).log().data)  # torch's domain behaviour


def test_hostile_strings_engine_is_correct_except_log():
    module = load_path(corpus.HOSTILE_PATHS["strings"], "hostile_strings")
    Value = module.Value
    for f, point in EXPRESSIONS:
        if f is not e_unary and f is not e_chain:  # both call log
            assert agrees(run_engine(Value, f, point), run_torch(f, point))
    assert "<script>alert(1)</script>Value(" in repr(Value(1.0) * 2.0)
    assert "<img src=x onerror=alert(1)>" in Value.__doc__ and "<img" in Value.__name__
    assert "<img" in type(Value(1.0) + 1.0).__qualname__ and "<img" in module.__doc__
    for p in (2.0, -1.0, 0.0):
        with pytest.raises(ValueError) as info:
            Value(p).log()
        assert str(info.value) == '<script>alert("x")</script><img src=x onerror=alert(2)>'


def test_student_engine():
    Value = load_path(corpus.STUDENT_PATH, "student").Value
    x, y = Value(2.0), Value(3.0)
    assert x * y is None and 3.0 * x is None
    assert run_engine(Value, lambda a, b: a - b, (2.0, 3.0)).error.__class__ is RecursionError
    assert run_engine(Value, lambda a: 1.0 - a, (2.0,)).error.__class__ is RecursionError
    f = lambda a, b: (a + b).tanh() / b.exp() + (-a).sigmoid() + b.sqrt() ** 2.0  # noqa: E731
    assert agrees(run_engine(Value, f, (0.4, 1.2)), run_torch(f, (0.4, 1.2)))


CHILD = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("engine_under_test", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = module.Value(0.25)
    y = (x * x + 1.0).tanh()
    y.backward()
    print("alive", y.data, x.grad, flush=True)
    {action}
    print("survived", flush=True)
""")


def _run_child(path: Path, action: str, cwd: Path, timeout: float):
    return subprocess.run([sys.executable, "-c", CHILD.format(action=action), str(path)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_hostile_exit_kills_the_process(tmp_path):
    proc = _run_child(corpus.HOSTILE_PATHS["exit"], "x.sin()", tmp_path, timeout=10)
    assert proc.returncode == 3 and "alive" in proc.stdout and "survived" not in proc.stdout, proc


def test_hostile_segfault_kills_the_process(tmp_path):
    proc = _run_child(corpus.HOSTILE_PATHS["segfault"], "x.cos()", tmp_path, timeout=10)
    assert proc.returncode < 0 and "alive" in proc.stdout and "survived" not in proc.stdout, proc


def test_hostile_hang_never_returns(tmp_path):
    ok = _run_child(corpus.HOSTILE_PATHS["hang"], "print(x.sqrt().data, flush=True)", tmp_path, timeout=10)
    assert ok.returncode == 0 and "survived" in ok.stdout, ok  # the forward is fine
    with pytest.raises(subprocess.TimeoutExpired):
        _run_child(corpus.HOSTILE_PATHS["hang"], "x.sqrt().backward()", tmp_path, timeout=2)
