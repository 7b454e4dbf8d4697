"""The op table (verifier/ops.py) is complete and consistent across every oracle.

What this file proves:

* every op of ``OPS`` can be built by every backend (the engine protocol with
  ``engine.Value``, SymPy, torch float64, mpmath and vectorised numpy), and all five
  agree to ~1e-14 relative at a benign point (pow with several exponents, including
  2, 0.5, -1, 1/3 and 0);
* each entry is well formed: arity, dunders that ``engine.Value`` really has,
  domain constraints on existing arguments, one ``grad_scales`` per argument;
* ``op_names`` parses "mul, tanh" and rejects an unknown op with a message naming it;
* the local derivatives SymPy derives (``verifier.local.local_rule``), first and
  second, in float64 and in mpmath, match torch autograd for every op at several
  points inside its domain;
* relu's one-sided derivatives at its kink 0 are (0, 1).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy
import torch

from engine import Value
from verifier.expr import Expr, var
from verifier.local import local_rule
from verifier.ops import DEFAULT_OPS, OPS, Constraint, op_names

A, B = 0.75, 1.25
POW_EXPONENTS = (2.0, 0.5, -1.0, 1.0 / 3.0, 0.0, 3.0, -0.5, 2.5)
F64 = torch.float64


def _variants() -> list[tuple[str, float | None]]:
    """(op, exponent) pairs: every op once, pow with each exponent."""
    out: list[tuple[str, float | None]] = []
    for name in OPS:
        if name == "pow":
            out += [(name, p) for p in POW_EXPONENTS]
        else:
            out.append((name, None))
    return out


VARIANTS = _variants()
IDS = [f"{n}" if p is None else f"{n}[{p:g}]" for n, p in VARIANTS]


def _close(got: float, want: float, rel: float = 1e-14) -> bool:
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-300)


# -- every backend builds every op and they agree ------------------------------------

def _by_engine(name: str, p: float | None, args: tuple[float, ...]) -> float:
    return float(OPS[name].engine(*(Value(x) for x in args), p).data)


def _by_sympy(name: str, p: float | None, args: tuple[float, ...]) -> float:
    built = OPS[name].sympy(*(sympy.Float(x, 40) for x in args), p)
    return float(sympy.N(built, 40))


def _by_torch(name: str, p: float | None, args: tuple[float, ...]) -> float:
    return float(OPS[name].torch(*(torch.tensor(x, dtype=F64) for x in args), p))


def _by_mpmath(name: str, p: float | None, args: tuple[float, ...]) -> float:
    with mpmath.workdps(40):
        return float(OPS[name].mpmath(*(mpmath.mpf(x) for x in args), p))


def _by_numpy(name: str, p: float | None, args: tuple[float, ...]) -> float:
    out = OPS[name].numpy(*(np.array([x, x]) for x in args), p)
    out = np.asarray(out, dtype=float)
    assert out.shape == (2,), f"{name}: numpy builder must be elementwise, got shape {out.shape}"
    return float(out[0])


BACKENDS = {"engine": _by_engine, "sympy": _by_sympy, "torch": _by_torch, "mpmath": _by_mpmath, "numpy": _by_numpy}


@pytest.mark.parametrize(("name", "p"), VARIANTS, ids=IDS)
def test_every_backend_builds_the_op_and_agrees(name: str, p: float | None) -> None:
    args = (A, B)[: OPS[name].arity]
    # The truth, independent of the table's own builders.
    truth = {
        "add": A + B, "sub": A - B, "mul": A * B, "div": A / B, "neg": -A,
        "exp": math.exp(A), "log": math.log(A), "tanh": math.tanh(A), "relu": A,
        "sigmoid": 1 / (1 + math.exp(-A)), "sin": math.sin(A), "cos": math.cos(A),
        "sqrt": math.sqrt(A), "pow": A ** p if p is not None else None,
    }[name]
    results = {backend: build(name, p, args) for backend, build in BACKENDS.items()}
    for backend, got in results.items():
        assert _close(got, truth), f"{name} (p={p}) via {backend}: {got!r}, expected {truth!r}"


def test_the_table_covers_the_documented_ops() -> None:
    assert set(OPS) == {"add", "sub", "mul", "div", "neg", "pow", "exp", "log",
                        "tanh", "relu", "sigmoid", "sin", "cos", "sqrt"}
    assert DEFAULT_OPS == tuple(OPS)


@pytest.mark.parametrize("name", list(OPS))
def test_entry_is_well_formed(name: str) -> None:
    op = OPS[name]
    assert op.name == name
    assert op.arity in (1, 2)
    assert len(op.grad_scales) == op.arity, f"{name}: one grad_scale per argument"
    assert all(callable(s) for s in op.grad_scales)
    assert op.dunders, f"{name}: no dunders to probe"
    for attr in op.dunders:
        assert callable(getattr(Value, attr, None)), f"engine.Value lacks {attr} for {name}"
    # Exactly one of an operator symbol or a method name.
    assert bool(op.symbol) != bool(op.method), name
    if op.method:
        assert op.dunders == (op.method,)
        assert callable(getattr(Expr, op.method)), f"Expr lacks .{op.method}() for tracing"
    p = 0.5 if name == "pow" else None
    for constraint in op.domain(p):
        assert isinstance(constraint, Constraint)
        assert 0 <= constraint.arg < op.arity
        assert constraint.kind in ("positive", "nonnegative", "nonzero")
    for kink in local_rule(name, p).kinks:
        assert kink.point is not None and all(math.isfinite(x) for x in kink.point)
    assert op.ulps >= 1.0


@pytest.mark.parametrize(("name", "p"), VARIANTS, ids=IDS)
def test_noise_scales_are_finite_and_nonnegative_at_a_benign_point(name: str, p: float | None) -> None:
    op = OPS[name]
    args = [np.array([A]), np.array([B])][: op.arity]
    out = np.asarray(op.numpy(*args, p), dtype=float)
    for scale in (op.value_scale, *op.grad_scales):
        s = np.asarray(scale(np, args, out, p), dtype=float)
        assert np.all(np.isfinite(s)) and np.all(s >= 0), f"{name}: scale {s}"


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op.arity == 1 and op.name != "pow"])
def test_monotone_means_monotone(name: str) -> None:
    # The reference bounds a monotone op by f(a - e) and f(a + e): the flag must be true.
    op = OPS[name]
    low = 1e-3 if op.domain(None) else -30.0
    xs = np.linspace(low, 30.0, 2001)
    steps = np.diff(np.asarray(op.numpy(xs, None), dtype=float))
    assert op.monotone == (bool((steps >= 0).all()) or bool((steps <= 0).all()))


def test_domains() -> None:
    assert OPS["log"].domain(None) == (Constraint(0, "positive"),)
    assert OPS["div"].domain(None) == (Constraint(1, "nonzero"),)
    assert Constraint(0, "nonnegative") in OPS["sqrt"].domain(None)
    assert Constraint(0, "positive", gradient_only=True) in OPS["sqrt"].domain(None)
    assert OPS["pow"].domain(2.0) == ()
    assert OPS["pow"].domain(0.0) == (Constraint(0, "nonzero", gradient_only=True),)  # 0 * inf at 0
    assert OPS["pow"].domain(-1.0) == (Constraint(0, "nonzero"),)
    assert OPS["pow"].domain(-0.5) == (Constraint(0, "positive"),)
    assert Constraint(0, "positive", gradient_only=True) in OPS["pow"].domain(1.0 / 3.0)
    assert OPS["pow"].domain(2.5) == (Constraint(0, "nonnegative"),)
    for name in ("add", "sub", "mul", "neg", "exp", "tanh", "relu", "sigmoid", "sin", "cos"):
        assert OPS[name].domain(None) == (), name
    assert [k.text for k in local_rule("relu").kinks] == ["a"]
    assert all(not local_rule(n, 2.5 if n == "pow" else None).kinks for n in OPS if n != "relu")


def test_constraint_holds() -> None:
    assert Constraint(0, "positive").holds(1e-300) and not Constraint(0, "positive").holds(0.0)
    assert Constraint(0, "nonnegative").holds(0.0) and not Constraint(0, "nonnegative").holds(-1e-300)
    assert Constraint(0, "nonzero").holds(-2.0) and not Constraint(0, "nonzero").holds(-0.0)
    assert list(Constraint(0, "positive").holds(np.array([-1.0, 0.0, 2.0]))) == [False, False, True]


# -- op_names -------------------------------------------------------------------------

def test_op_names_parses_a_list() -> None:
    assert op_names("mul, tanh") == ("mul", "tanh")
    assert op_names("tanh,mul,tanh") == ("tanh", "mul")
    assert op_names(None) == DEFAULT_OPS
    assert op_names("  ") == DEFAULT_OPS


def test_op_names_rejects_unknown_op_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'foo'") as info:
        op_names("mul, foo")
    message = str(info.value)
    assert "\n" not in message
    assert "tanh" in message  # lists the known ones


# -- local derivatives from SymPy against torch autograd ------------------------------

CANDIDATES = (-1.7, -0.6, 0.3, 0.75, 2.5)
SECOND = (1.25, -0.9, 2.0)


def _points(name: str, p: float | None) -> list[tuple[float, ...]]:
    op = OPS[name]
    out = []
    for a in CANDIDATES:
        for b in SECOND[: 3 if op.arity == 2 else 1]:
            args = (a, b)[: op.arity]
            if all(c.holds(c.at(math, args)) for c in op.domain(p)) and all(k.mpmath(*args) != 0 for k in local_rule(name, p).kinks):
                out.append(args)
    return out


def _torch_derivatives(name: str, p: float | None, args: tuple[float, ...]) -> tuple[list[float], list[float]]:
    """First derivatives, then each first derivative differentiated again (row-major)."""
    ts = [torch.tensor(x, dtype=F64, requires_grad=True) for x in args]
    out = OPS[name].torch(*ts, p)
    firsts = torch.autograd.grad(out, ts, create_graph=True, allow_unused=True)
    firsts = [f if f is not None else torch.zeros((), dtype=F64) for f in firsts]
    seconds = []
    for f in firsts:
        if f.requires_grad:
            grads = torch.autograd.grad(f, ts, retain_graph=True, allow_unused=True)
            seconds += [0.0 if g is None else float(g) for g in grads]
        else:
            seconds += [0.0] * len(ts)
    return [float(f.detach()) for f in firsts], seconds


@pytest.mark.parametrize(("name", "p"), VARIANTS, ids=IDS)
def test_local_rule_matches_torch_autograd(name: str, p: float | None) -> None:
    rule = local_rule(name, p)
    arity = OPS[name].arity
    assert len(rule.formulas) == arity
    points = _points(name, p)
    assert len(points) >= 2, f"too few points inside the domain of {name}"
    for args in points:
        firsts, seconds = _torch_derivatives(name, p, args)
        got = [float(np.asarray(x).reshape(-1)[0]) for x in rule.numpy(*(np.array([x]) for x in args))]
        assert len(got) == arity + arity * arity
        with mpmath.workdps(30):
            got_mp = [float(x) for x in rule.mpmath(*(mpmath.mpf(x) for x in args))]
        for k, (want, g, gm) in enumerate(zip(firsts + seconds, got, got_mp)):
            label = f"{name}(p={p}) at {args}: derivative #{k}"
            assert _close(g, want, 1e-13), f"{label}: sympy/numpy {g!r}, torch {want!r}"
            assert _close(gm, want, 1e-13), f"{label}: sympy/mpmath {gm!r}, torch {want!r}"


def test_local_rule_formulas_are_textual_derivatives() -> None:
    assert local_rule("tanh").formulas == ("1 - tanh(a)**2",)
    assert local_rule("div").formulas == ("1/b", "-a/b**2")
    assert local_rule("mul").formulas == ("b", "a")
    assert local_rule("pow", 0.0).formulas == ("0",)


def test_relu_one_sided_derivatives_at_zero() -> None:
    from verifier.local import one_sided

    zero = mpmath.mpf(0)
    assert [float(d) for d in one_sided("relu", None, (-1,))(zero)] == [0.0]
    assert [float(d) for d in one_sided("relu", None, (1,))(zero)] == [1.0]
    # Away from the kink the rule is the ordinary step.
    assert list(local_rule("relu").numpy(np.array([-2.0, 3.0]))[0]) == [0.0, 1.0]


def test_every_method_op_is_traceable_through_expr() -> None:
    x = var("x")
    for name, op in OPS.items():
        if op.method:
            built = op.engine(x, None)  # the engine builder works on expressions too
            assert isinstance(built, Expr) and built.op == name
