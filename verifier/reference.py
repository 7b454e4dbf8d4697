"""The reference: exact derivatives along the DAG, and how much float64 noise a
correct computation of them may carry.

Each op's local derivatives come from SymPy (:mod:`verifier.local`); the chain rule
composes them along the graph in reverse order, sharing included, which is what
``sympy.diff`` followed by common-subexpression elimination would give, without its
blow-up on shared or deep graphs. Two evaluations:

* :func:`sweep` — float64, vectorised over a batch of points: values, gradients and,
  for every point, the *noise floor*: a running bound, with absolute values, on the
  error of any valid float64 computation (each input off by an ulp, each op off by a
  few ulps of the scale of its own terms, propagated through the chain rule);
  points near a domain edge or a kink are flagged for the exact path.
* :func:`exact` — one point in mpmath at 50 digits: the truth the judge compares
  against, with the point classified (outside the domain, at a kink, near an edge,
  not representable in float64).

Example:
    >>> from verifier.parse import parse
    >>> from verifier.expr import compile_program
    >>> program = compile_program(parse("x * tanh(y)"))
    >>> point = exact(program, (2.0, 0.5))
    >>> point.status, round(point.gradient[0], 12)
    ('defined', 0.462117157278)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import mpmath
import numpy as np

from verifier.expr import Program
from verifier.local import local_rule
from verifier.ops import OPS, U

__all__ = ["Sweep", "PointReference", "sweep", "exact", "NEAR", "DIGITS"]

DIGITS = 50  # precision of the exact reference
NEAR = 16.0  # within this many noise floors of an edge or a kink is "near" it
PRODUCT_ULPS = 3.0  # rounding of one chain-rule product such as g * (-a / b**2)
TINY = 2.0**-1072  # absolute rounding of a few operations in the subnormal range
MAX_KINKS = 6  # more kinks at one point than this: too many one-sided combinations
DBL_MAX = np.finfo(float).max
UNDERFLOW = 2.0**-1075  # exact results below this round to zero


# -- shared bookkeeping ------------------------------------------------------

def _times(factor: Any, error: Any) -> Any:
    """``factor * error`` where an exact input (error 0) stays exact even if the
    factor is infinite (sqrt at an exact 0)."""
    return np.where(error == 0, 0.0, factor * error)


def _noise(program: Program, values: list[Any], locals_: list[tuple[Any, ...]], overrides: dict[int, tuple[Any, ...]] | None = None):
    """Forward floors ``e``, adjoints ``g`` and gradient floors ``E`` per node.

    Works on float64 arrays (one entry per point). ``overrides`` replaces the first
    derivatives of some nodes (one-sided derivatives at kinks).
    """
    with np.errstate(all="ignore"):
        return _noise_unchecked(program, values, locals_, overrides)


def _noise_unchecked(program: Program, values: list[Any], locals_: list[tuple[Any, ...]], overrides: dict[int, tuple[Any, ...]] | None):
    n = len(program)
    shape = np.shape(values[-1])
    e: list[Any] = [None] * n
    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if op == "var":
            e[i] = U * np.abs(values[i])  # the input itself may be off by an ulp
        elif op == "const":
            e[i] = np.zeros(shape)
        else:
            spec = OPS[op]
            arity = len(args)
            firsts = locals_[i][:arity]
            argv = [values[j] for j in args]
            own = spec.ulps * U * spec.value_scale(argv, values[i], param) + TINY
            e[i] = own + sum(_times(np.abs(firsts[k]), e[j]) for k, j in enumerate(args))
    g: list[Any] = [np.zeros(shape) for _ in range(n)]
    E: list[Any] = [np.zeros(shape) for _ in range(n)]
    S: list[Any] = [np.zeros(shape) for _ in range(n)]
    users = program.users()
    g[-1] = np.ones(shape)
    for i in range(n - 1, -1, -1):
        op, args = program.ops[i], program.args[i]
        if users[i] > 1:
            E[i] = E[i] + (users[i] - 1) * U * S[i]  # summing the contributions
        if not args:
            continue
        spec = OPS[op]
        arity = len(args)
        firsts = (overrides or {}).get(i) or locals_[i][:arity]
        seconds = locals_[i][arity:]
        argv = [values[j] for j in args]
        for k, j in enumerate(args):
            d = firsts[k]
            D = spec.ulps * U * spec.grad_scales[k](argv, values[i], program.params[i])
            D = D + sum(_times(np.abs(seconds[k * arity + m]), e[jm]) for m, jm in enumerate(args))
            c = g[i] * d
            g[j] = g[j] + c
            S[j] = S[j] + np.abs(c)
            E[j] = E[j] + E[i] * np.abs(d) + np.abs(g[i]) * D + PRODUCT_ULPS * U * np.abs(c) + TINY
    return e, g, E


def _gradient_slots(program: Program) -> list[list[int]]:
    """The node of each variable (one per variable: nodes are interned)."""
    slots: list[list[int]] = [[] for _ in program.variables]
    for i, op in enumerate(program.ops):
        if op == "var":
            slots[program.params[i]].append(i)
    return slots


# -- the float64 sweep ---------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """Float64 reference over a batch of points (arrays indexed by point).

    Attributes:
        value, value_floor: the output and its noise floor.
        gradient, gradient_floor: shape (points, variables).
        clean: points where every node is finite and well inside its domain, away
            from kinks: the float64 reference is good to its floor there.
        outside: points clearly outside the domain of some op (value undefined).
        node_values: float64 value of every node, per point (for blame and plots).
    """

    value: np.ndarray
    value_floor: np.ndarray
    gradient: np.ndarray
    gradient_floor: np.ndarray
    clean: np.ndarray
    outside: np.ndarray
    node_values: list[np.ndarray] = field(repr=False)


def sweep(program: Program, points: np.ndarray) -> Sweep:
    """Evaluate the reference in float64 at every row of ``points``."""
    points = np.asarray(points, dtype=float).reshape(-1, len(program.variables))
    count = points.shape[0]
    values: list[Any] = []
    locals_: list[tuple[Any, ...]] = []
    with np.errstate(all="ignore"):
        for op, args, param in zip(program.ops, program.args, program.params):
            if op == "var":
                values.append(points[:, param].copy())
                locals_.append(())
            elif op == "const":
                values.append(np.full(count, param))
                locals_.append(())
            else:
                argv = [values[j] for j in args]
                values.append(np.asarray(OPS[op].numpy(*argv, param), dtype=float))
                locals_.append(local_rule(op, param).numpy(*argv))
        e, g, E = _noise(program, values, locals_)
        finite = np.ones(count, dtype=bool)
        outside = np.zeros(count, dtype=bool)
        near = np.zeros(count, dtype=bool)
        for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
            finite &= np.isfinite(values[i]) & np.isfinite(e[i]) & np.isfinite(g[i]) & np.isfinite(E[i])
            for d in locals_[i]:
                finite &= np.isfinite(d)
            if not args:
                continue
            spec = OPS[op]
            for rule in spec.domain(param):
                a, err = values[args[rule.arg]], e[args[rule.arg]]
                margin = np.abs(a) if rule.kind == "nonzero" else a
                clear = np.abs(margin) > NEAR * err
                outside |= clear & ~rule.holds(a) & ~np.isnan(a)
                near |= ~clear
            for kink in spec.kinks:
                near |= np.abs(values[args[0]] - kink) <= NEAR * e[args[0]]
        slots = _gradient_slots(program)
        gradient = np.stack([g[s[0]] for s in slots], axis=1)
        gradient_floor = np.stack([E[s[0]] for s in slots], axis=1)
    return Sweep(
        value=values[-1], value_floor=e[-1], gradient=gradient, gradient_floor=gradient_floor,
        clean=finite & ~outside & ~near, outside=outside, node_values=values,
    )


# -- the exact reference at one point ----------------------------------------------

@dataclass(frozen=True)
class PointReference:
    """The truth at one point.

    Attributes:
        status: ``defined``; ``outside-domain`` (the value is undefined);
            ``gradient-undefined`` (value defined, derivative infinite: sqrt at 0);
            ``kink`` (at or within noise of a kink: any gradient between the one-sided
            ones is right); ``ill-conditioned`` (within float64 noise of a domain edge:
            the float result may land on either side); ``not-representable`` (an
            intermediate overflows or underflows float64).
        detail: why, naming the node ("log of -2 (node 3)").
        value, gradient: floats rounded from the exact values (``nan`` if undefined).
        value_floor, gradient_floor: the noise floors of a float64 computation.
        gradient_low, gradient_high: bounds over the one-sided combinations at kinks
            (equal to ``gradient`` elsewhere).
        kink_nodes: the nodes at kinks.
        node_values: exact value of every node, as floats (``nan`` past an undefined one).
        exact_value, exact_gradient: the values at full precision, as text.
    """

    status: str
    detail: str
    value: float
    gradient: tuple[float, ...]
    value_floor: float
    gradient_floor: tuple[float, ...]
    gradient_low: tuple[float, ...]
    gradient_high: tuple[float, ...]
    kink_nodes: tuple[int, ...]
    node_values: tuple[float, ...]
    exact_value: str
    exact_gradient: tuple[str, ...]
    node: int | None = None  # the node that makes the point undefined or ill-conditioned

    @property
    def value_judged(self) -> bool:
        """Whether the engine's value must match here."""
        return self.status in ("defined", "kink", "gradient-undefined")

    @property
    def gradient_judged(self) -> bool:
        """Whether the engine's gradient must match here."""
        return self.status in ("defined", "kink")


def _to_float(x: Any) -> float:
    try:
        return float(x)
    except (OverflowError, TypeError, ValueError):
        return math.nan


def _describe(op: str, args: Sequence[int], values: Sequence[Any], node: int) -> str:
    shown = ", ".join(mpmath.nstr(values[a], 6) for a in args)
    return f"{op} of {shown} (node {node})"


def _safe(f: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return f(*args)
    except ZeroDivisionError:  # a derivative that is infinite at this point
        return tuple(mpmath.inf for _ in range(8))


def exact(program: Program, point: Sequence[float], *, digits: int = DIGITS) -> PointReference:
    """The exact reference at one point (see :class:`PointReference`)."""
    with mpmath.workdps(digits):
        values: list[Any] = []
        locals_: list[tuple[Any, ...]] = []
        status, detail, node = "defined", "", None
        for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
            if op in ("var", "const"):
                values.append(mpmath.mpf(float(point[param]) if op == "var" else param))
                locals_.append(())
                continue
            spec = OPS[op]
            argv = [values[j] for j in args]
            for rule in spec.domain(param):
                if not rule.holds(argv[rule.arg]):
                    if not rule.gradient_only:
                        return _undefined(program, "outside-domain", _describe(op, args, values, i), values, i)
                    if status == "defined":
                        status, detail, node = "gradient-undefined", "infinite derivative: " + _describe(op, args, values, i), i
            value = spec.mpmath(*argv, param)
            values.append(value)
            # Stop at the first value float64 cannot hold: besides being the answer,
            # this keeps mpmath from reducing sin(exp(1e300)) by pi to 1e300 digits.
            if abs(value) > DBL_MAX or 0 < abs(value) < UNDERFLOW:
                kind = "overflows" if abs(value) > DBL_MAX else "underflows to zero in"
                return _undefined(program, "not-representable", f"node {i} ({op}) {kind} float64", values, i)
            locals_.append(_safe(local_rule(op, param).mpmath, *argv)[: len(args) + len(args) ** 2])
        float_values = [np.array([_to_float(v)]) for v in values]
        float_locals = [tuple(np.array([_to_float(d)]) for d in loc) for loc in locals_]
        e, _, _ = _noise(program, float_values, float_locals)
        value_floor = float(e[-1][0])
        kinks: list[int] = []
        for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
            if not args:
                continue
            spec = OPS[op]
            for rule in spec.domain(param):
                a, noise = values[args[rule.arg]], e[args[rule.arg]][0]
                margin = abs(a) if rule.kind == "nonzero" else a
                if noise > 0 and abs(margin) <= NEAR * noise:
                    reason = "within float64 noise of the domain edge: " + _describe(op, args, values, i)
                    return _partial(program, "ill-conditioned", reason, values, value_floor, i)
            for kink in spec.kinks:
                if abs(values[args[0]] - kink) <= NEAR * e[args[0]][0]:
                    kinks.append(i)
        if status != "defined":
            return _partial(program, status, detail, values, value_floor, node)
        if len(kinks) > MAX_KINKS:
            return _partial(program, "ill-conditioned", f"{len(kinks)} kinks at this point", values, value_floor)
        gradients, floors = [], []
        for sides in itertools.product((0, 1), repeat=len(kinks)):
            overrides = {node: _one_sided(program, node, side) for node, side in zip(kinks, sides)}
            grad = _exact_reverse(program, values, locals_, overrides)
            if grad is None:
                return _partial(program, "not-representable", "a gradient term overflows float64", values, value_floor)
            gradients.append(grad)
            float_overrides = {k: tuple(np.array([float(d)]) for d in v) for k, v in overrides.items()}
            _, _, E = _noise(program, float_values, float_locals, float_overrides)
            floors.append([E[s[0]][0] for s in _gradient_slots(program)])
        if kinks:
            status = "kink"
            detail = "; ".join(_describe(program.ops[k], program.args[k], values, k) for k in kinks) + " at its kink"
        nvars = len(program.variables)
        first = gradients[0]
        return PointReference(
            status=status, detail=detail, value=_to_float(values[-1]),
            gradient=tuple(_to_float(x) for x in first), value_floor=value_floor,
            gradient_floor=tuple(float(max(f[k] for f in floors)) for k in range(nvars)),
            gradient_low=tuple(_to_float(min(gs[k] for gs in gradients)) for k in range(nvars)),
            gradient_high=tuple(_to_float(max(gs[k] for gs in gradients)) for k in range(nvars)),
            kink_nodes=tuple(kinks), node_values=tuple(_to_float(v) for v in values),
            exact_value=mpmath.nstr(values[-1], 25), exact_gradient=tuple(mpmath.nstr(x, 25) for x in first),
        )


def _one_sided(program: Program, node: int, side: int) -> tuple[float, ...]:
    _, left, right = local_rule(program.ops[node], program.params[node]).one_sided[0]
    return right if side else left


def _exact_reverse(program: Program, values: list[Any], locals_: list[tuple[Any, ...]], overrides: dict[int, tuple[Any, ...]]) -> list[Any] | None:
    g: list[Any] = [mpmath.mpf(0)] * len(program)
    g[-1] = mpmath.mpf(1)
    for i in range(len(program) - 1, -1, -1):
        args = program.args[i]
        if not args:
            continue
        firsts = overrides.get(i) or locals_[i][: len(args)]
        for k, j in enumerate(args):
            c = g[i] * firsts[k]
            if abs(c) > DBL_MAX:
                return None
            g[j] = g[j] + c
    return [g[s[0]] for s in _gradient_slots(program)]


def _undefined(program: Program, status: str, detail: str, values: list[Any], node: int) -> PointReference:
    nan = (math.nan,) * len(program.variables)
    shown = [_to_float(v) for v in values] + [math.nan] * (len(program) - len(values))
    return PointReference(status, detail, math.nan, nan, math.nan, nan, nan, nan, (), tuple(shown), "undefined", ("undefined",) * len(nan), node)


def _partial(program: Program, status: str, detail: str, values: list[Any], value_floor: float, node: int | None = None) -> PointReference:
    """A point whose value is known but whose gradient is not judged."""
    nan = (math.nan,) * len(program.variables)
    return PointReference(
        status, detail, _to_float(values[-1]), nan, value_floor, nan, nan, nan, (),
        tuple(_to_float(v) for v in values), mpmath.nstr(values[-1], 25), ("undefined",) * len(nan), node,
    )
