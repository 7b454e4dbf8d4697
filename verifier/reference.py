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
  not representable in float64). Its noise floors are computed in mpmath too, so
  they neither underflow nor overflow on the way.

Results in the subnormal range may be flushed to zero (as torch does): every op's
floor includes the smallest normal float.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> program = compile_program(parse("x * tanh(y)"))
    >>> point = exact(program, (2.0, 0.5))
    >>> point.status, round(point.gradient[0], 12)
    ('defined', 0.46211715726)
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
from verifier.ops import OPS, U, Op

__all__ = ["Sweep", "PointReference", "sweep", "exact", "NEAR", "DIGITS"]

DIGITS = 50  # precision of the exact reference
NEAR = 16.0  # within this many noise floors of an edge or a kink is "near" it
PRODUCT_ULPS = 3.0  # rounding of one chain-rule product such as g * (-a / b**2)
TINY = 2.0**-1022  # absolute: a subnormal result may be flushed to zero (= DBL_MIN)
MAX_KINKS = 6  # more kinks at one point than this: too many one-sided combinations
# A monotone op whose value moves more than LINEAR floors over its input's noise is
# not linear there. Only checked above NONLINEAR_NOISE: below it exp, tanh and
# sigmoid are linear to 1e-6, and log and sqrt are kept linear by the edge check.
LINEAR = 2.0
NONLINEAR_NOISE = 1e-3
DBL_MAX = float(np.finfo(float).max)
DBL_MIN = 2.0**-1022  # smallest normal float
UNDERFLOW = mpmath.ldexp(1, -1075)  # exact results below this round to zero (not a float!)


# -- the noise model, for numpy arrays (m = np) and mpmath numbers (m = mpmath) ------

class _FloatMath:
    """The few functions the noise model needs, on Python floats (fast), with the
    names numpy and mpmath use."""

    fabs = staticmethod(math.fabs)
    log = staticmethod(math.log)
    power = staticmethod(math.pow)


FLOATS = _FloatMath()


def _times(factor: Any, error: Any) -> Any:
    """``factor * error``, where an exact input (error 0) stays exact even if the
    factor is infinite (sqrt at an exact 0)."""
    if isinstance(error, np.ndarray):
        return np.where(error == 0, 0.0, factor * error)
    return 0 if error == 0 else factor * error


def _forward_floor(m: Any, spec: Op, argv: list[Any], out: Any, param: Any, derivatives: Sequence[Any], errors: Sequence[Any]) -> Any:
    """Noise floor of one op's value: its own rounding plus its inputs' noise, to
    second order (t * t where t is a rounded 0 is not exactly 0)."""
    n = len(argv)
    own = spec.ulps * U * spec.value_scale(m, argv, out, param) + TINY
    first = sum(_times(m.fabs(derivatives[k]), errors[k]) for k in range(n))
    second = sum(_times(_times(m.fabs(derivatives[n + j * n + k]), errors[j]), errors[k]) for j in range(n) for k in range(n))
    if _beyond_second_order(spec, param):
        return own + _larger(m, first + 0.5 * second, _power_spread(m, argv[0], errors[0], param))
    return own + first + 0.5 * second


def _beyond_second_order(spec: Op, p: Any) -> bool:
    """pow with p > 2: its value and derivative move by more than a second-order
    Taylor expansion says where its input should be 0 (see _power_spread)."""
    return spec.name == "pow" and p > 2


def _power_spread(m: Any, a: Any, error: Any, p: float) -> Any:
    """How far ``x**p`` (p >= 1) may move when ``x`` is ``a`` give or take ``error``:
    ``(|a| + error)**p - |a|**p``. For p > 2 a Taylor expansion to second order
    misses it: ``t**3`` at a ``t`` that should be 0 but is off by e is ``e**3``."""
    return m.power(m.fabs(a) + error, p) - m.power(m.fabs(a), p)


def _monotone_spread(f: Any, a: Any, error: Any, value: Any, param: Any) -> Any:
    """How far a monotone op's value moves when its input ``a`` moves by ``error``."""
    return abs(f(a + error, param) - value) + abs(value - f(a - error, param))


def _larger(m: Any, a: Any, b: Any) -> Any:
    return np.maximum(a, b) if m is np else max(a, b)


def _reverse(m: Any, program: Program, values: list[Any], locals_: list[tuple[Any, ...]], e: list[Any] | None, overrides: dict[int, tuple[Any, ...]] | None = None) -> tuple[list[Any], list[Any]]:
    """Adjoints ``g`` and (unless ``e`` is None) their noise floors ``E`` for every node."""
    n = len(program)
    zero = np.zeros_like(values[-1], dtype=float) if m is np else (mpmath.mpf(0) if m is mpmath else 0.0)
    g: list[Any] = [zero] * n
    E: list[Any] = [zero] * n
    S: list[Any] = [zero] * n  # sum of |contributions|: their summation rounds too
    g[-1] = zero + 1
    users = program.users()
    for i in range(n - 1, -1, -1):
        if users[i] > 1:
            E[i] = E[i] + (users[i] - 1) * U * S[i]
        args = program.args[i]
        if not args:
            continue
        spec = OPS[program.ops[i]]
        arity = len(args)
        firsts = (overrides or {}).get(i) or locals_[i][:arity]
        seconds = locals_[i][arity:]
        argv = [values[j] for j in args]
        for k, j in enumerate(args):
            d = firsts[k]
            c = g[i] * d
            g[j] = g[j] + c
            if e is None:
                continue
            # How wrong the local derivative itself may be: its own rounding, and
            # its inputs' noise moving it (through the second derivatives).
            # A subnormal derivative may be flushed to zero: TINY, as for values.
            p = program.params[i]
            D = spec.ulps * U * spec.grad_scales[k](m, argv, values[i], p) + TINY
            moved = sum(_times(m.fabs(seconds[k * arity + q]), e[jq]) for q, jq in enumerate(args))
            if _beyond_second_order(spec, p):  # the derivative p * x**(p - 1)
                moved = _larger(m, moved, abs(p) * _power_spread(m, argv[0], e[args[0]], p - 1.0))
            D = D + moved
            S[j] = S[j] + m.fabs(c)
            # (g + dg)(d + dD) - g d: first-order terms, and the product of the two
            # errors, which is all there is where g and d are both exactly 0.
            E[j] = E[j] + E[i] * m.fabs(d) + m.fabs(g[i]) * D + E[i] * D + PRODUCT_ULPS * U * m.fabs(c) + TINY
    return g, E


def _gradient_nodes(program: Program) -> list[int]:
    """The node of each variable (one per variable: nodes are interned)."""
    nodes = [0] * len(program.variables)
    for i, op in enumerate(program.ops):
        if op == "var":
            nodes[program.params[i]] = i
    return nodes


# -- the float64 sweep ------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """Float64 reference over a batch of points (arrays indexed by point).

    Attributes:
        value, value_floor: the output and its noise floor.
        gradient, gradient_floor: shape (points, variables).
        clean: points where every node is finite and well inside its domain, away
            from kinks: the float64 reference is good to its floor there.
        outside: points clearly outside the domain of some op (value undefined).
        node_values: float64 value of every node, per point.
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
    e: list[Any] = []
    finite = np.ones(count, dtype=bool)
    outside = np.zeros(count, dtype=bool)
    near = np.zeros(count, dtype=bool)
    with np.errstate(all="ignore"):
        for op, args, param in zip(program.ops, program.args, program.params):
            if op in ("var", "const"):
                value = points[:, param].copy() if op == "var" else np.full(count, param)
                values.append(value)
                locals_.append(())
                e.append(U * np.abs(value) if op == "var" else np.zeros(count))  # an input may be off by an ulp
                continue
            spec = OPS[op]
            argv = [values[j] for j in args]
            for rule in spec.domain(param):
                a, noise = argv[rule.arg], e[args[rule.arg]]
                margin = rule.margin(a)
                clear = (np.abs(margin) > NEAR * noise) | (noise == 0)  # an exact input is never "near"
                if rule.gradient_only:  # the value exists (sqrt at 0): not outside, but not clean
                    near |= ~clear | ~rule.holds(a)
                    continue
                outside |= clear & ~rule.holds(a) & ~np.isnan(a)
                near |= ~clear
            for kink in spec.kinks:
                near |= np.abs(argv[0] - kink) <= NEAR * e[args[0]]
            value = np.asarray(spec.numpy(*argv, param), dtype=float)
            derivatives = local_rule(op, param).numpy(*argv)
            values.append(value)
            locals_.append(derivatives)
            e.append(_forward_floor(np, spec, argv, value, param, derivatives, [e[j] for j in args]))
            if spec.monotone and (noisy := e[args[0]] > NONLINEAR_NOISE).any():
                near |= noisy & (_monotone_spread(spec.numpy, argv[0], e[args[0]], value, param) > LINEAR * e[-1])
            for x in (value, *derivatives):
                finite &= np.isfinite(x)
            for x in spec.intermediates(np, argv, param):
                finite &= np.isfinite(x) & ((x == 0) | (np.abs(x) >= DBL_MIN))
        g, E = _reverse(np, program, values, locals_, e)
        for x in (*e, *g, *E):
            finite &= np.isfinite(x)
        slots = _gradient_nodes(program)
        gradient = np.stack([g[s] for s in slots], axis=1)
        gradient_floor = np.stack([E[s] for s in slots], axis=1)
    return Sweep(
        value=values[-1], value_floor=e[-1], gradient=gradient, gradient_floor=gradient_floor,
        clean=finite & ~outside & ~near, outside=outside, node_values=values,
    )


# -- the exact reference at one point ----------------------------------------------------

@dataclass(frozen=True)
class PointReference:
    """The truth at one point.

    Attributes:
        status: ``defined``; ``outside-domain`` (the value is undefined);
            ``gradient-undefined`` (value defined, derivative infinite: sqrt at 0);
            ``kink`` (at or within noise of a kink: any gradient between the one-sided
            ones is right); ``ill-conditioned`` (within float64 noise of a domain edge:
            the float result may land on either side; or an op whose input is so noisy
            that its value is not linear in the noise: sigmoid of 1e39 give or take
            1e89); ``not-representable`` (a
            value overflows or underflows float64); ``gradient-not-representable``
            (the value is fine, but a local derivative or adjoint overflows).
        detail: why, naming the node ("log of -2 (node 3)").
        value, gradient: floats rounded from the exact values (``nan`` if undefined).
        value_floor, gradient_floor: the noise floors of a float64 computation.
        gradient_low, gradient_high: bounds over the one-sided combinations at kinks
            (equal to ``gradient`` elsewhere).
        kink_nodes: the nodes at kinks.
        node_values: exact value of every node, as floats (``nan`` past an undefined one).
        exact_value, exact_gradient: the values at full precision, as text.
        node: the node that makes the point undefined or ill-conditioned.
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
    node: int | None = None

    @property
    def value_judged(self) -> bool:
        """Whether the engine's value must match here."""
        return self.status in ("defined", "kink", "gradient-undefined", "gradient-not-representable")

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


def _unbounded(x: Any) -> bool:
    return not mpmath.isfinite(x) or abs(x) > DBL_MAX


class _Result(Exception):
    """A classification reached before the end of the walk."""

    def __init__(self, reference: PointReference) -> None:
        self.reference = reference


class _Lossy(Exception):
    """A value or derivative does not survive conversion to float: floors in mpmath."""


def exact(program: Program, point: Sequence[float], *, digits: int = DIGITS) -> PointReference:
    """The exact reference at one point (see :class:`PointReference`).

    Values and derivatives are computed in mpmath; the noise floors in plain floats
    (fast) unless some value, derivative or floor under- or overflows as a float, in
    which case they are computed in mpmath too.
    """
    with mpmath.workdps(digits):
        try:
            return _exact(program, point, FLOATS)
        except _Result as result:
            return result.reference
        except (_Lossy, OverflowError, ValueError, ZeroDivisionError):
            pass  # a float under- or overflowed on the way
        try:
            return _exact(program, point, mpmath)
        except _Result as result:
            return result.reference


def _as(m: Any, x: Any) -> Any:
    """``x`` in the number type of ``m``; raises _Lossy if a float would lose it."""
    if m is mpmath:
        return x
    f = float(x)
    if (f == 0.0 and x != 0) or math.isinf(f) and mpmath.isfinite(x):
        raise _Lossy
    return f


def _exact(program: Program, point: Sequence[float], m: Any) -> PointReference:
    values: list[Any] = []
    locals_: list[tuple[Any, ...]] = []
    e: list[Any] = []  # floors, in the number type of m
    mvalues: list[Any] = []  # values and derivatives in that type too
    mlocals: list[tuple[Any, ...]] = []
    status, detail, culprit = "defined", "", None
    kinks: list[int] = []
    nvars = len(program.variables)

    def stop(kind: str, why: str, node: int, value_known: bool) -> _Result:
        floor = _to_float(e[-1]) if value_known and len(e) == len(program) else math.nan
        value = _to_float(values[-1]) if value_known and len(values) == len(program) else math.nan
        shown = [_to_float(v) for v in values] + [math.nan] * (len(program) - len(values))
        nan = (math.nan,) * nvars
        text = mpmath.nstr(values[-1], 25) if value_known else "undefined"
        return _Result(PointReference(kind, why, value, nan, floor, nan, nan, nan, (), tuple(shown), text, ("undefined",) * nvars, node))

    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if op in ("var", "const"):
            value = mpmath.mpf(float(point[param]) if op == "var" else param)
            values.append(value)
            locals_.append(())
            mvalues.append(_as(m, value))
            mlocals.append(())
            e.append(U * abs(mvalues[-1]) if op == "var" else 0 * mvalues[-1])
            continue
        spec = OPS[op]
        argv = [values[j] for j in args]
        for rule in spec.domain(param):
            a, noise = argv[rule.arg], e[args[rule.arg]]
            margin = rule.margin(a)
            if noise > 0 and abs(margin) <= NEAR * noise:
                raise stop("ill-conditioned", "within float64 noise of the domain edge: " + _describe(op, args, values, i), i, False)
            if not rule.holds(a):
                if not rule.gradient_only:
                    raise stop("outside-domain", _describe(op, args, values, i), i, False)
                if status == "defined":
                    status, detail, culprit = "gradient-undefined", "infinite derivative: " + _describe(op, args, values, i), i
        at_kink = False
        for kink in spec.kinks:
            if abs(argv[0] - kink) <= NEAR * e[args[0]]:
                kinks.append(i)
                at_kink = True
        value = spec.mpmath(*argv, param)
        values.append(value)
        # Stop at the first value float64 cannot hold: besides being the answer, this
        # keeps mpmath from reducing sin(exp(1e300)) by pi to 1e300 digits.
        if abs(value) > DBL_MAX or 0 < abs(value) < UNDERFLOW:
            kind = "overflows" if abs(value) > DBL_MAX else "underflows to zero in"
            raise stop("not-representable", f"node {i} ({op}) {kind} float64", i, False)
        derivatives = local_rule(op, param).mpmath(*argv)
        locals_.append(derivatives)
        mvalues.append(_as(m, value))
        # An infinite derivative (sqrt at 0) has no float floor to lose.
        mlocals.append(tuple(_as(m, d) if mpmath.isfinite(d) else math.inf for d in derivatives))
        margv = [mvalues[j] for j in args]
        slopes = mlocals[-1]
        if at_kink:
            # Within noise of a kink the input may land on either side: its noise
            # carries through at the steeper one-sided slope.
            _, left, right = local_rule(op, param).one_sided[0]
            steeper = tuple(max(abs(a), abs(b)) for a, b in zip(left, right))
            slopes = steeper + tuple(slopes[len(args):])
        e.append(_forward_floor(m, spec, margv, mvalues[-1], param, slopes, [e[j] for j in args]))
        if m is FLOATS and not math.isfinite(e[-1]):
            raise _Lossy  # the float floor overflowed (inf, or nan from inf * 0)
        if spec.monotone and e[args[0]] > NONLINEAR_NOISE and _monotone_spread(spec.mpmath, argv[0], e[args[0]], value, param) > LINEAR * e[-1]:
            # sigmoid(u) where float64 knows u only to 1e39: a correct computation
            # may give anything from 0 to 1, far beyond the linearised floor.
            raise stop("ill-conditioned", f"{op} of {_to_float(argv[0]):.6g} give or take {_to_float(e[args[0]]):.3g} in float64: "
                       "its value is not a linear function of that noise", i, False)
        if status == "defined":
            try:
                steps = spec.intermediates(mpmath, argv, param)
            except ZeroDivisionError:
                steps = (mpmath.inf,)
            # A valid formula's intermediate (micrograd's b**-2 in a / b) that over-
            # or underflows float64 makes the gradient unrepresentable for it.
            lost = any(_unbounded(x) or 0 < abs(x) < DBL_MIN for x in steps)
            if lost or any(_unbounded(d) for d in derivatives[: len(args)]):
                status, detail, culprit = "gradient-not-representable", f"a derivative term of node {i} ({op}) over- or underflows float64", i
    if status != "defined":
        raise stop(status, detail, culprit, True)
    if len(kinks) > MAX_KINKS:
        raise stop("ill-conditioned", f"{len(kinks)} kinks at this point", kinks[0], True)
    slots = _gradient_nodes(program)
    gradients, floors = [], []
    for sides in itertools.product((0, 1), repeat=len(kinks)):
        overrides = {node: _one_sided(program, node, side) for node, side in zip(kinks, sides)}
        g, _ = _reverse(mpmath, program, values, locals_, None, overrides)
        if any(_unbounded(x) for x in g):
            raise stop("gradient-not-representable", "an adjoint of the chain rule overflows float64", None, True)
        lost = _lost_adjoint_term(program, values, g)
        if lost is not None:
            raise stop("gradient-not-representable", f"a term of the chain rule at node {lost} ({program.ops[lost]}) underflows float64", lost, True)
        _, E = _reverse(m, program, mvalues, mlocals, e, overrides)
        if m is FLOATS and not all(math.isfinite(E[s]) for s in slots):
            raise _Lossy  # likewise
        gradients.append([g[s] for s in slots])
        floors.append([E[s] for s in slots])
    if kinks:
        status = "kink"
        detail = "; ".join(_describe(program.ops[k], program.args[k], values, k) for k in kinks) + " at its kink"
    first = gradients[0]
    return PointReference(
        status=status, detail=detail, value=_to_float(values[-1]),
        gradient=tuple(_to_float(x) for x in first), value_floor=_to_float(e[-1]),
        gradient_floor=tuple(_to_float(max(f[k] for f in floors)) for k in range(nvars)),
        gradient_low=tuple(_to_float(min(gs[k] for gs in gradients)) for k in range(nvars)),
        gradient_high=tuple(_to_float(max(gs[k] for gs in gradients)) for k in range(nvars)),
        kink_nodes=tuple(kinks), node_values=tuple(_to_float(v) for v in values),
        exact_value=mpmath.nstr(values[-1], 25), exact_gradient=tuple(mpmath.nstr(x, 25) for x in first),
    )


def _lost_adjoint_term(program: Program, values: list[Any], g: list[Any]) -> int | None:
    """The first node where a valid formula's backward term (micrograd's a * g for
    the b**-1 of a / b) under- or overflows float64, if any."""
    for i, (op, args) in enumerate(zip(program.ops, program.args)):
        if not args:
            continue
        terms = OPS[op].adjoint_intermediates(mpmath, [values[j] for j in args], g[i])
        if any(_unbounded(t) or 0 < abs(t) < DBL_MIN for t in terms):
            return i
    return None


def _one_sided(program: Program, node: int, side: int) -> tuple[float, ...]:
    _, left, right = local_rule(program.ops[node], program.params[node]).one_sided[0]
    return right if side else left
