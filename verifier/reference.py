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
  against, with the point classified (outside the domain, at a kink, near an edge)
  and each quantity — the value and every partial — judged on its own: it is not
  judged only where its exact value is beyond float64, where its floor is (an
  overflow on its path, or a valid formula's intermediate that overflows), or where
  its derivative is undefined. Floors are computed in mpmath where a float would
  over- or underflow on the way. :func:`truth_at` classifies a point the way the
  judge does (the sweep first), so a point's class never depends on the engine.

Results in the subnormal range may be flushed to zero (as torch does): every op's
floor includes the smallest normal float, so underflow to zero is an exact answer
with a floor, judged like any other.

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

from verifier.expr import Program, Schedule, merge, schedule
from verifier.local import local_rule, one_sided
from verifier.formats import current as current_format
from verifier.ops import OPS, Op

__all__ = ["Sweep", "PointReference", "sweep", "sweep_many", "exact", "truth_at", "adjoints_at", "NEAR", "DIGITS", "JUDGED", "UNJUDGED"]

DIGITS = 50  # precision of the exact reference
NEAR = 16.0  # within this many noise floors of an edge or a kink is "near" it
PRODUCT_ULPS = 3.0  # rounding of one chain-rule product such as g * (-a / b**2)
MAX_KINKS = 6  # more kinks at one point than this: too many one-sided combinations
# A monotone op whose value moves more than LINEAR floors over its input's noise is
# not linear there (a linear op moves exactly 2 floors: the margin keeps neg of 1e20
# give or take 1e6, rounded once more, from being called nonlinear). Only checked
# above NONLINEAR_NOISE: below it exp, tanh and sigmoid are linear to 1e-6, and log
# and sqrt are kept linear by the edge check.
LINEAR = 2.5
NONLINEAR_NOISE = 1e-3
DBL_MAX = float(np.finfo(float).max)
DBL_MIN = 2.0**-1022  # smallest normal float
SUBNORMAL_ULP = 2.0**-1074  # the spacing of subnormal floats


# The engine's number format (verifier.formats): float64 unless a campaign says so.
# Its unit roundoff, smallest normal (a result below it may be flushed to zero),
# largest finite number and subnormal spacing replace float64's in the noise model.
def _u() -> float:
    return current_format().unit_roundoff


def _tiny() -> float:
    return current_format().smallest_normal


def _max() -> float:
    return current_format().largest


def _subnormal() -> float:
    return current_format().subnormal_spacing


# -- the noise model, for numpy arrays (m = np) and mpmath numbers (m = mpmath) ------

class _FloatMath:
    """The few functions the noise model needs, on Python floats (fast), with the
    names numpy and mpmath use."""

    fabs = staticmethod(math.fabs)
    log = staticmethod(math.log)
    power = staticmethod(math.pow)


FLOATS = _FloatMath()


def _times(factor: Any, error: Any) -> Any:
    """``factor * error`` for a noise term: an exact input (error 0) stays exact even
    if the factor is infinite (sqrt at an exact 0), and an infinite error (a value
    float64 cannot hold) stays infinite even if the factor is 0 (``inf * 0`` is nan
    in float64)."""
    if isinstance(error, np.ndarray):
        return np.where(error == 0, 0.0, factor * error)
    if error == 0:
        return _zero_like(error)
    return _bound(factor, error)


def _bound(a: Any, b: Any) -> Any:
    """The product of two non-negative bounds, infinite if either is (or is nan)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a * b
    if not (a < math.inf and b < math.inf):
        return math.inf if isinstance(a, float) and isinstance(b, float) else mpmath.inf
    return a * b


def _moved(second: Any, error: Any) -> Any:
    """How far an input's noise moves a local derivative: nowhere where the
    derivative does not depend on that input (add's 1 at an input float64 holds as
    inf is still 1)."""
    if isinstance(error, np.ndarray):
        return np.where((error == 0) | (second == 0), 0.0, second * error)
    if second == 0 or error == 0:
        return _zero_like(error)
    return _bound(second, error)


def _zero_like(x: Any) -> Any:
    return mpmath.mpf(0) if isinstance(x, mpmath.mpf) else 0.0


def _forward_floor(m: Any, spec: Op, argv: list[Any], out: Any, param: Any, derivatives: Sequence[Any], errors: Sequence[Any]) -> Any:
    """Noise floor of one op's value: its own rounding plus its inputs' noise, to
    second order (t * t where t is a rounded 0 is not exactly 0)."""
    n = len(argv)
    own = spec.ulps * _u() * spec.value_scale(m, argv, out, param) + _tiny()
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


def _reverse(m: Any, program: Program, values: list[Any], locals_: list[tuple[Any, ...]], e: list[Any] | None,
             overrides: dict[int, tuple[Any, ...]] | None = None, *, lossy: dict[int, tuple[tuple[int, ...], bool]] | None = None,
             exact: tuple[list[Any], list[Any]] | None = None) -> tuple[list[Any], list[Any]]:
    """Adjoints ``g`` of the output and (unless ``e`` is None) their noise floors ``E``
    for every node, at one point: in mpmath, or with floors in floats (``m`` is
    :data:`FLOATS`). The float64 sweep has its own vectorised pass, :func:`_reverse_steps`.

    Args:
        lossy: node -> ``(arguments, unbounded)``: the arguments whose local
            derivative a valid float64 formula computes through an intermediate that
            overflows (``unbounded``: an infinite floor) or underflows (the whole
            derivative may be lost).
        exact: the exact values and adjoints (mpmath), to find the adjoints float64
            cannot hold and the backward terms of valid formulas that over- or
            underflow (micrograd's ``a * g`` in ``a / b``).
    """
    n = len(program)
    zero = mpmath.mpf(0) if m is mpmath else 0.0
    inf = mpmath.inf if m is mpmath else math.inf
    g: list[Any] = [zero] * n
    E: list[Any] = [zero] * n
    S: list[Any] = [zero] * n  # sum of |contributions|: their summation rounds too
    g[-1] = zero + 1
    users = program.users()
    for i in range(n - 1, -1, -1):
        if users[i] > 1:
            E[i] = E[i] + (users[i] - 1) * _u() * S[i]
        args = program.args[i]
        if not args:
            continue
        if e is not None and exact is not None and _unbounded(abs(exact[1][i]) + E[i]):
            E[i] = inf  # float64 holds this adjoint as inf, or may (within noise of overflow)
        spec = OPS[program.ops[i]]
        arity = len(args)
        firsts = (overrides or {}).get(i) or locals_[i][:arity]
        seconds = locals_[i][arity:]
        argv = [values[j] for j in args]
        formula_args = spec.intermediate_args or tuple(range(arity))
        for k, j in enumerate(args):
            d = firsts[k]
            c = g[i] * d
            g[j] = g[j] + c
            if e is None:
                continue
            p = program.params[i]
            lost_args, unbounded = (lossy or {}).get(i, ((), False))
            if (k in lost_args and unbounded or not d < inf or (exact is not None and _unbounded(d))
                    or exact is not None and any(_unbounded(exact[0][args[q]]) for q in local_rule(spec.name, p).depends[k])):
                # No float64 formula gives this derivative, float64 holds it as inf, or
                # float64 holds an argument as inf (softsign' at x*x = inf: 0, or nan).
                D = inf
            else:
                D = _derivative_floor(m, spec, k, argv, values[i], p, seconds, [e[a] for a in args])
                if k in lost_args:
                    D = D + m.fabs(d)  # an underflowed intermediate: all of it may be lost
            size = m.fabs(c)
            S[j] = S[j] + size
            E[j] = E[j] + _contribution_floor(m, d, g[i], E[i], D, size)
            if exact is not None and k in formula_args:
                E[j] = E[j] + _lost_term(spec, [exact[0][q] for q in args], exact[1][i], size)
            if _unbounded(c):
                E[j] = inf  # float64 holds this contribution as inf: the sum is inf or nan
    return g, E


def _derivative_floor(m: Any, spec: Op, k: int, argv: list[Any], value: Any, p: Any, seconds: Sequence[Any], errors: Sequence[Any]) -> Any:
    """How wrong an op's local derivative by its argument ``k`` may be: its own
    rounding, and its inputs' noise (``errors``) moving it through the second
    derivatives. A subnormal derivative may be flushed to zero: _tiny(), as for values."""
    arity = len(argv)
    D = spec.ulps * _u() * spec.grad_scales[k](m, argv, value, p) + _tiny()
    D = D + sum(_moved(m.fabs(seconds[k * arity + q]), errors[q]) for q in range(arity))
    if _beyond_second_order(spec, p):  # the derivative p * x**(p - 1)
        D = _larger(m, D, abs(p) * _power_spread(m, argv[0], errors[0], p - 1.0))
    return D


def _contribution_floor(m: Any, d: Any, g: Any, E: Any, D: Any, size: Any) -> Any:
    """The noise of one chain-rule contribution ``g * d`` (of magnitude ``size``) where
    the adjoint ``g`` may be off by ``E`` and the local derivative ``d`` by ``D``:
    (g + dg)(d + dD) - g d, first-order terms and the product of the two errors
    (all there is where g and d are both exactly 0), and the product's rounding."""
    return _times(m.fabs(d), E) + _bound(m.fabs(g), D) + _times(D, E) + PRODUCT_ULPS * _u() * size + _tiny()


def _lost_term(spec: Op, argv: list[Any], adjoint: Any, size: Any) -> Any:
    """What a valid formula's backward term that over- or underflows float64 costs
    one contribution (of magnitude ``size``): an underflowed ``a * g`` loses at most
    the whole contribution; an overflowed one makes it anything."""
    terms = spec.adjoint_intermediates(mpmath, argv, adjoint)
    if any(_unbounded(t) for t in terms):
        return mpmath.inf if isinstance(size, mpmath.mpf) else math.inf
    if any(0 < abs(t) < _tiny() for t in terms):
        return size
    return _zero_like(size)


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
        finite: points where every value, derivative and floor is a finite float64
            (no intermediate lost): elsewhere :func:`exact` needs its floors in mpmath.
    """

    value: np.ndarray
    value_floor: np.ndarray
    gradient: np.ndarray
    gradient_floor: np.ndarray
    clean: np.ndarray
    outside: np.ndarray
    finite: np.ndarray
    node_values: list[np.ndarray] = field(repr=False)


def sweep(program: Program, points: np.ndarray) -> Sweep:
    """Evaluate the reference in float64 at every row of ``points``."""
    return sweep_many([program], [points])[0]


def sweep_many(programs: Sequence[Program], points: Sequence[np.ndarray]) -> list[Sweep]:
    """:func:`sweep` of each program at its own points, in one pass over the programs
    side by side (:func:`verifier.expr.merge`) when they have as many points each,
    one numpy call per step of their :func:`verifier.expr.schedule`: the same numbers
    as one sweep per program, at a fraction of numpy's per-call cost.
    """
    points = [np.asarray(p, dtype=float).reshape(-1, len(program.variables)) for program, p in zip(programs, points)]
    if not points:
        return []
    if len({p.shape[0] for p in points}) > 1:
        return [sweep_many([program], [p])[0] for program, p in zip(programs, points)]
    merged = merge(programs)
    program, plan = merged.program, schedule(merged.program)
    count = points[0].shape[0]
    columns = np.concatenate(points, axis=1)
    # One row per node: its value, its noise floor, and whether it is finite, near a
    # domain edge or a kink, or clearly outside the domain, at each point.
    shape = (len(program), count)
    values, e = np.empty(shape), np.zeros(shape)
    finite, near, outside = np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    values[plan.variables] = columns[:, plan.columns].T
    e[plan.variables] = _u() * np.abs(values[plan.variables])  # an input may be off by an ulp
    values[plan.constants] = plan.values[:, None]
    locals_: list[tuple[np.ndarray, ...]] = []  # per step
    with np.errstate(all="ignore"):
        for step in plan.steps:
            nodes, op, param = step.nodes, step.op, step.param
            spec = OPS[op]
            argv = [values[a] for a in step.args]
            noises = [e[a] for a in step.args]
            rule_of_op = local_rule(op, param)
            bad_domain, close_to = np.zeros(argv[0].shape, dtype=bool), np.zeros(argv[0].shape, dtype=bool)
            for rule in spec.domain(param):
                a, noise = rule.at(np, argv), rule.noise(np, argv, noises)
                clear = (np.abs(rule.margin(a)) > NEAR * noise) | (noise == 0)  # an exact input is never "near"
                if rule.gradient_only:  # the value exists (sqrt at 0): not outside, but not clean
                    close_to |= ~clear | ~rule.holds(a)
                    continue
                bad_domain |= clear & ~rule.holds(a) & ~np.isnan(a)
                close_to |= ~clear
            for kink in rule_of_op.kinks:
                close_to |= np.abs(kink.numpy(*argv)) <= NEAR * sum(np.abs(d) * n for d, n in zip(kink.slopes_numpy(*argv), noises))
            value = np.broadcast_to(np.asarray(spec.numpy(*argv, param), dtype=float), argv[0].shape)
            derivatives = rule_of_op.numpy(*argv)
            floor = _forward_floor(np, spec, argv, value, param, derivatives, noises)
            if spec.monotone and (noisy := noises[0] > NONLINEAR_NOISE).any():
                close_to |= noisy & (_monotone_spread(spec.numpy, argv[0], noises[0], value, param) > LINEAR * floor)
            ok = np.ones(argv[0].shape, dtype=bool)
            for x in (value, *derivatives):
                ok &= np.isfinite(x)
            for x in spec.intermediates(np, argv, param):
                ok &= np.isfinite(x) & ((x == 0) | (np.abs(x) >= _tiny()))
            for x in spec.value_intermediates(np, argv, param):
                ok &= np.isfinite(x)
            values[nodes], e[nodes] = value, floor
            finite[nodes], near[nodes], outside[nodes] = ok, close_to, bad_domain
            locals_.append(derivatives)
        g, E = _reverse_steps(program, plan, values, locals_, e, merged.outputs)
        finite &= (np.isfinite(e) & np.isfinite(g) & np.isfinite(E)
                   & (np.abs(values) + e <= _max()) & (np.abs(g) + E <= _max()))
    # A point is clean for a program where all of its nodes are.
    starts = list(merged.starts[:-1])
    finite = np.logical_and.reduceat(finite, starts)
    near = np.logical_or.reduceat(near, starts)
    outside = np.logical_or.reduceat(outside, starts)
    out = []
    for b, source in enumerate(programs):
        slots = [merged.starts[b] + s for s in _gradient_nodes(source)]
        out.append(Sweep(
            value=values[merged.outputs[b]], value_floor=e[merged.outputs[b]],
            gradient=g[slots].T if slots else np.zeros((count, 0)),
            gradient_floor=E[slots].T if slots else np.zeros((count, 0)),
            clean=finite[b] & ~outside[b] & ~near[b], outside=outside[b],
            node_values=list(values[merged.starts[b]:merged.starts[b + 1]]), finite=finite[b],
        ))
    return out


def _reverse_steps(program: Program, plan: Schedule, values: np.ndarray, locals_: Sequence[tuple[np.ndarray, ...]],
                   e: np.ndarray, outputs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_reverse` in float64 over the steps of a schedule (one row per node),
    last step first: every user of a node is in a later step. Contributions to a node
    add up in the order of its users' steps, which is the same alone and in a batch."""
    users = np.array(program.users())
    g, E = np.zeros_like(values), np.zeros_like(values)
    S = np.zeros_like(values)  # sum of |contributions|: their summation rounds too

    def summed(nodes: np.ndarray) -> None:
        shared = nodes[users[nodes] > 1]
        E[shared] = E[shared] + ((users[shared] - 1) * _u())[:, None] * S[shared]

    g[list(outputs)] = 1.0
    for step, derivatives in zip(reversed(plan.steps), reversed(locals_)):
        summed(step.nodes)
        spec, p, arity = OPS[step.op], step.param, len(step.args)
        argv, errors = [values[a] for a in step.args], [e[a] for a in step.args]
        adjoint, adjoint_floor, value = g[step.nodes], E[step.nodes], values[step.nodes]
        for k, a in enumerate(step.args):
            d = derivatives[k]
            c = adjoint * d
            np.add.at(g, a, c)
            size = np.abs(c)
            np.add.at(S, a, size)
            D = _derivative_floor(np, spec, k, argv, value, p, derivatives[arity:], errors)
            np.add.at(E, a, _contribution_floor(np, d, adjoint, adjoint_floor, D, size))
    summed(np.concatenate([plan.variables, plan.constants]))
    return g, E


# -- the exact reference at one point ----------------------------------------------------

JUDGED = "judged"
# Why a single quantity (the value, or one partial) is not judged; every one is
# counted and shown in the report.
UNJUDGED = (
    "outside-domain",  # the value is undefined here (log of a negative)
    "ill-conditioned",  # within float64 noise of a domain edge, or not linear in its noise
    "undefined",  # an infinite or undefined derivative on its path (sqrt at 0)
    "not-representable",  # the exact quantity is beyond float64 (overflow)
    "noise-beyond-float64",  # its noise floor is: a valid float64 computation may give anything
)
# Past an argument this far beyond float64 (2**1100) every float64 result is inf or
# nan anyway, and a transcendental op in mpmath would pay for its size (sin of
# exp(1e300) needs 1e300 bits): its result is left unknown, and noise-beyond-float64.
ASTRONOMICAL = 1100


@dataclass(frozen=True)
class PointReference:
    """The truth at one point.

    The point has one class (``status``), and each quantity (the value and every
    partial derivative) is judged on its own: ``value_status`` and
    ``gradient_status`` say ``judged``, or why not (see :data:`UNJUDGED`).

    Attributes:
        status: the point's class: ``defined``; ``kink`` (at or within noise of a
            kink: any gradient between the one-sided ones is right);
            ``outside-domain`` (the value is undefined); ``ill-conditioned`` (within
            float64 noise of a domain edge: the float result may land on either side;
            or an op whose input is so noisy that its value is not linear in the
            noise: sigmoid of 1e39 give or take 1e89); and, where some quantity is
            not judged, ``not-representable`` (the value is not),
            ``gradient-undefined`` or ``gradient-not-representable`` (some partial
            is not).
        detail: why, naming the node ("log of -2 (node 3)").
        value, gradient: floats rounded from the exact values (``nan`` if undefined,
            ``inf`` beyond float64).
        value_floor, gradient_floor: the noise floors of a float64 computation
            (``inf`` where no float64 computation can be trusted).
        gradient_low, gradient_high: bounds over the one-sided combinations at kinks
            (equal to ``gradient`` elsewhere).
        kink_nodes: the nodes at kinks.
        node_values: exact value of every node, as floats (``nan`` past an undefined one).
        exact_value, exact_gradient: the values at full precision, as text.
        node: the node that makes the point undefined or ill-conditioned.
        value_status, gradient_status: ``judged`` or the reason it is not.
        gradient_sides: at a single kink, the gradient from either side: a right
            answer is a mix of the two (maximum's (1, 0) and (0, 1) at a tie, not (1, 1)).
        node_grads: the exact adjoint of every node (the first side at kinks;
            empty where the point is undefined).
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
    value_status: str = JUDGED
    gradient_status: tuple[str, ...] = ()
    node_grads: tuple[float, ...] = ()
    gradient_sides: tuple[tuple[float, ...], ...] = ()

    @property
    def value_judged(self) -> bool:
        """Whether the engine's value must match here."""
        return self.value_status == JUDGED

    @property
    def gradient_judged(self) -> bool:
        """Whether every partial derivative must match here."""
        return bool(self.gradient_status) and all(s == JUDGED for s in self.gradient_status)

    def partial_judged(self, k: int) -> bool:
        """Whether the engine's ``k``-th partial derivative must match here."""
        return self.gradient_status[k] == JUDGED


def _to_float(x: Any) -> float:
    try:
        return float(x)
    except (OverflowError, TypeError, ValueError):
        return math.nan


def _floor_float(x: Any) -> float:
    """A noise floor as a float: one beyond float64 (or nan, where the model broke
    down) is infinite."""
    f = _to_float(x)
    return f if f <= _max() else math.inf


def _describe(op: str, args: Sequence[int], values: Sequence[Any], node: int) -> str:
    shown = ", ".join(_text(values[a], 6) for a in args)
    return f"{op} of {shown} (node {node})"


def _unbounded(x: Any) -> bool:
    return not mpmath.isfinite(x) or abs(x) > _max()


def _terms(intermediates: Any, argv: list[Any], param: Any) -> tuple[Any, ...]:
    """A valid formula's intermediates at the exact inputs (1/0 is infinite)."""
    try:
        return tuple(intermediates(mpmath, argv, param))
    except ZeroDivisionError:
        return (mpmath.inf,)


def _astronomical(x: Any) -> bool:
    return x != 0 and mpmath.mag(x) > ASTRONOMICAL


class _Result(Exception):
    """A classification reached before the end of the walk."""

    def __init__(self, reference: PointReference) -> None:
        self.reference = reference


class _Lossy(Exception):
    """A value or derivative does not survive conversion to float: floors in mpmath."""


def exact(program: Program, point: Sequence[float], *, digits: int = DIGITS, classify: bool = True, floats: bool = True) -> PointReference:
    """The exact reference at one point (see :class:`PointReference`).

    Values and derivatives are computed in mpmath; the noise floors in plain floats
    (fast) unless some value, derivative or floor under- or overflows as a float, in
    which case they are computed in mpmath too.

    Args:
        classify: look for kinks, domain edges within noise and ops not linear in
            their noise. The judge passes False at points the float64 sweep found
            clean, so that a point's class never depends on the engine's answer.
        floats: try floors in floats first. The judge passes False where the sweep
            saw something beyond float64 (:attr:`Sweep.finite`): there floats
            nearly always under- or overflow, and the try costs a fifth of the work.
    """
    with mpmath.workdps(digits):
        try:
            if floats:
                return _exact(program, point, FLOATS, classify)
        except _Result as result:
            return result.reference
        except (_Lossy, OverflowError, ValueError, ZeroDivisionError):
            pass  # a float under- or overflowed on the way
        try:
            return _exact(program, point, mpmath, classify)
        except _Result as result:
            return result.reference


def truth_at(program: Program, point: Sequence[float]) -> PointReference:
    """The exact reference at one point, classified as the judge classifies it
    (the float64 sweep first): the same point always gets the same class.

    Example:
        >>> from verifier.parsing import parse
        >>> from verifier.expr import compile_program
        >>> truth_at(compile_program(parse("log(x)")), (-1.0,)).status
        'outside-domain'
    """
    clean = bool(sweep(program, np.asarray([point], dtype=float)).clean[0])
    return exact(program, point, classify=not clean)


def adjoints_at(program: Program, node_values: Sequence[float]) -> list[float]:
    """d output / d node for every node, composed by the reference's chain rule at
    the given node values (the exact ones, or an engine's); ``nan`` where undefined
    or beyond float64.

    Example:
        >>> from verifier.parsing import parse
        >>> from verifier.expr import compile_program
        >>> program = compile_program(parse("3 * tanh(x)"))
        >>> adjoints_at(program, [3.0, 0.5, math.tanh(0.5), 3 * math.tanh(0.5)])[2]
        3.0
    """
    with mpmath.workdps(DIGITS):
        values = [mpmath.mpf(v) for v in node_values]
        try:
            locals_ = [local_rule(op, p).mpmath(*(values[j] for j in args)) if args else ()
                       for op, args, p in zip(program.ops, program.args, program.params)]
        except (ArithmeticError, ValueError, TypeError):
            return [math.nan] * len(program)
        g, _ = _reverse(mpmath, program, values, locals_, None)
        # float() of an mpf beyond float64 is +-inf: not a gradient anyone can check.
        return [f if math.isfinite(f) else math.nan for f in map(_to_float, g)]


def _as(m: Any, x: Any) -> Any:
    """``x`` in the number type of ``m``; raises _Lossy if a float would lose it."""
    if m is mpmath:
        return x
    f = float(x)
    if (f == 0.0 and x != 0) or math.isinf(f) and mpmath.isfinite(x) or math.isnan(f):
        raise _Lossy
    return f


def _exact(program: Program, point: Sequence[float], m: Any, classify: bool) -> PointReference:
    values: list[Any] = []
    locals_: list[tuple[Any, ...]] = []
    e: list[Any] = []  # floors, in the number type of m
    mvalues: list[Any] = []  # values and derivatives in that type too
    mlocals: list[tuple[Any, ...]] = []
    lossy: dict[int, tuple[tuple[int, ...], bool]] = {}  # see _reverse
    undefined: dict[int, str] = {}  # node -> why its derivative is infinite or undefined
    kinks: list[tuple[int, int]] = []  # (node, which of its op's kinks)
    nvars = len(program.variables)
    inf = mpmath.inf if m is mpmath else math.inf

    def stop(kind: str, why: str, node: int) -> _Result:
        shown = [_to_float(v) for v in values] + [math.nan] * (len(program) - len(values))
        nan = (math.nan,) * nvars
        return _Result(PointReference(kind, why, math.nan, nan, math.nan, nan, nan, nan, (), tuple(shown), "undefined",
                                      ("undefined",) * nvars, node, kind, (kind,) * nvars))

    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if op in ("var", "const"):
            value = mpmath.mpf(float(point[param]) if op == "var" else param)
            if not mpmath.isfinite(value):
                # An input the engine's format holds as inf (1e39 in float32): nothing
                # computed from it means anything.
                raise stop("not-representable", f"{program.variables[param]} = {float(value)} in {current_format().name}", i)
            values.append(value)
            locals_.append(())
            mvalues.append(_as(m, value))
            mlocals.append(())
            e.append(_u() * abs(mvalues[-1]) if op == "var" else 0 * mvalues[-1])
            continue
        spec = OPS[op]
        argv = [values[j] for j in args]
        if any(not mpmath.isfinite(a) for a in argv) or spec.transcendental and any(_astronomical(a) for a in argv):
            # Past an astronomically large (or unknown) value: unknown, and no float64
            # computation of it means anything (its floor is infinite). Derivatives
            # that do not depend on it (add's 1) are still known.
            if m is FLOATS:
                raise _Lossy
            known = [a if mpmath.isfinite(a) and not (spec.transcendental and _astronomical(a)) else mpmath.nan for a in argv]
            values.append(mpmath.nan)
            rule = local_rule(op, param)
            unknown = {j for j, a in enumerate(known) if mpmath.isnan(a)}
            # A derivative of an unknown argument is unknown (relu's step at nan is
            # not 1), whatever a formula's branches make of nan.
            locals_.append(tuple(mpmath.nan if rule.depends[k] & unknown else d
                                 for k, d in enumerate(rule.mpmath(*(a if j not in unknown else mpmath.mpf(1) for j, a in enumerate(known))))))
            mvalues.append(mpmath.nan)
            mlocals.append(locals_[-1])
            e.append(mpmath.inf)
            continue
        noises = [e[j] for j in args]
        for rule in spec.domain(param):
            a = rule.at(mpmath, argv)
            noise = rule.noise(m, [mvalues[j] for j in args], noises)
            if classify and 0 < noise < inf and abs(rule.margin(a)) <= NEAR * noise:
                raise stop("ill-conditioned", "within float64 noise of the domain edge: " + _describe(op, args, values, i), i)
            if not rule.holds(a):
                if not rule.gradient_only:
                    raise stop("outside-domain", _describe(op, args, values, i), i)
                undefined.setdefault(i, "infinite derivative: " + _describe(op, args, values, i))
        at_kink = []
        for q, kink in enumerate(local_rule(op, param).kinks):
            distance = abs(kink.mpmath(*argv))
            noise = sum(_times(abs(_as(m, d)) if mpmath.isfinite(d) else inf, n) for d, n in zip(kink.slopes_mpmath(*argv), noises))
            # Within noise of the kink (infinite noise included: minimum(tan(huge), x)
            # may take either branch in float64), any side's derivative is right.
            if (distance == 0 or classify) and distance <= NEAR * noise:
                kinks.append((i, q))
                at_kink.append(q)
        value = spec.mpmath(*argv, param)
        values.append(value)
        derivatives = local_rule(op, param).mpmath(*argv)
        locals_.append(derivatives)
        mvalues.append(_as(m, value))
        # An infinite derivative (sqrt at 0) has no float floor to lose.
        mlocals.append(tuple(_as(m, d) if mpmath.isfinite(d) else math.inf for d in derivatives))
        margv = [mvalues[j] for j in args]
        slopes = mlocals[-1]
        if at_kink:
            # Within noise of a kink the input may land on either side: its noise
            # carries through at the steepest one-sided slope.
            sides = [_sides(len(local_rule(op, param).kinks), at_kink, signs) for signs in itertools.product((1, -1), repeat=len(at_kink))]
            steeper = tuple(max(abs(_as(m, one_sided(op, param, c)(*argv)[k])) for c in sides) for k in range(len(args)))
            slopes = steeper + tuple(slopes[len(args):])
        if abs(value) > _max():
            e.append(inf)  # float64 holds inf (or raised) here: downstream, anything goes
        else:
            e.append(_forward_floor(m, spec, margv, mvalues[-1], param, slopes, [e[j] for j in args]))
        steps = _terms(spec.value_intermediates, argv, param)
        if any(_unbounded(t) for t in steps):
            e[-1] = inf  # micrograd's a * b**-1 at a subnormal b: inf * 0, or it raises
        else:
            # A subnormal intermediate (b**-1 at a huge b) keeps fewer digits: an
            # absolute error of 2**-1075 in it, times the rest of the product.
            for t in steps:
                if 0 < abs(t) < _tiny():
                    e[-1] = e[-1] + _as(m, abs(value) * _subnormal() / abs(t))
        if abs(value) + e[-1] > _max():
            e[-1] = inf  # within noise of overflow: a valid float64 computation may overflow
        if m is FLOATS and not math.isfinite(e[-1]):
            raise _Lossy  # the float floor overflowed (inf, or nan from inf * 0)
        noise = e[args[0]]
        if classify and spec.monotone and NONLINEAR_NOISE < noise < inf and _monotone_spread(spec.mpmath, argv[0], noise, value, param) > LINEAR * e[-1]:
            # sigmoid(u) where float64 knows u only to 1e39: a correct computation
            # may give anything from 0 to 1, far beyond the linearised floor.
            raise stop("ill-conditioned", f"{op} of {_to_float(argv[0]):.6g} give or take {_to_float(noise):.3g} in float64: "
                       "its value is not a linear function of that noise", i)
        steps = _terms(spec.intermediates, argv, param)
        # A valid formula's intermediate (micrograd's b**-2 in a / b) that overflows
        # float64 leaves that formula's derivative anything at all (inf, nan); one
        # that underflows may lose the derivative, but to about 0, not to garbage.
        if any(_unbounded(t) for t in steps):
            lossy[i] = (spec.intermediate_args or tuple(range(len(args))), True)
        elif any(0 < abs(x) < _tiny() for x in steps):
            # A format that flushes it to zero (XLA) then divides by 0: anything at all.
            lossy[i] = (spec.intermediate_args or tuple(range(len(args))), current_format().flushes_subnormals)
    if classify and len(kinks) > MAX_KINKS:
        raise stop("ill-conditioned", f"{len(kinks)} kinks at this point", kinks[0][0])
    slots = _gradient_nodes(program)
    gradients, floors, adjoints = [], [], []
    undefined_paths = _reaching(program, undefined)
    kink_nodes = sorted({node for node, _ in kinks})
    for signs in itertools.product((1, -1), repeat=len(kinks)):
        overrides = {node: _one_sided(program, values, node, [(q, s) for (n, q), s in zip(kinks, signs) if n == node])
                     for node in kink_nodes}
        g, _ = _reverse(mpmath, program, values, locals_, None, overrides)
        _, E = _reverse(m, program, mvalues, mlocals, e, overrides, lossy=lossy, exact=(values, g))
        if m is FLOATS and not all(math.isfinite(E[s]) for s in slots):
            raise _Lossy  # likewise
        gradients.append([g[s] for s in slots])
        floors.append([E[s] for s in slots])
        adjoints.append(g)
    first = gradients[0]
    value_floor = _floor_float(e[-1])
    gradient_floor = tuple(_floor_float(max((f[k] for f in floors), key=_nan_first)) for k in range(nvars))
    value_status = _status(values[-1], value_floor, False)
    gradient_status = tuple(_status(first[k], gradient_floor[k], slots[k] in undefined_paths) for k in range(nvars))
    status, detail, culprit = _summary(program, values, kink_nodes, undefined, value_status, gradient_status)
    return PointReference(
        status=status, detail=detail, value=_to_float(values[-1]),
        gradient=tuple(_to_float(x) for x in first), value_floor=value_floor,
        gradient_floor=gradient_floor,
        gradient_low=tuple(_to_float(min(gs[k] for gs in gradients)) for k in range(nvars)),
        gradient_high=tuple(_to_float(max(gs[k] for gs in gradients)) for k in range(nvars)),
        kink_nodes=tuple(kink_nodes), node_values=tuple(_to_float(v) for v in values),
        exact_value=_text(values[-1]), exact_gradient=tuple(_text(x) for x in first),
        node=culprit, value_status=value_status, gradient_status=gradient_status,
        node_grads=tuple(_to_float(x) for x in adjoints[0]),
        gradient_sides=tuple(tuple(_to_float(x) for x in gs) for gs in gradients) if len(gradients) == 2 else (),
    )


def _text(x: Any, digits: int = 25) -> str:
    """An exact number as text (far beyond float64, only its size:
    printing all of 1e(1e300)'s exponent would take mpmath minutes)."""
    if mpmath.isfinite(x) and x != 0 and abs(mpmath.mag(x)) > 4 * ASTRONOMICAL:
        return f"{'-' if x < 0 else ''}about 10**{int(mpmath.floor(mpmath.log10(abs(x))))}"
    return mpmath.nstr(x, digits)


def _nan_first(x: Any) -> Any:
    """Orders floors so that a nan floor (the model broke down) wins max()."""
    return mpmath.inf if x != x else x


def _status(exact_value: Any, floor: float, undefined: bool) -> str:
    if undefined:
        return "undefined"
    if not mpmath.isfinite(exact_value):
        return "not-representable" if mpmath.isinf(exact_value) else "noise-beyond-float64"
    if abs(exact_value) > _max():
        return "not-representable"
    if not floor < math.inf:
        return "noise-beyond-float64"
    return JUDGED


def _reaching(program: Program, nodes: dict[int, str]) -> set[int]:
    """Every node upstream of an argument of ``nodes`` (whose derivative is
    undefined): the partials of those nodes' variables are undefined too."""
    marked: set[int] = set()
    for i in range(len(program) - 1, -1, -1):
        if i in nodes or i in marked:
            marked.update(program.args[i])
    return marked


def _summary(program: Program, values: list[Any], kinks: list[int], undefined: dict[int, str],
             value_status: str, gradient_status: tuple[str, ...]) -> tuple[str, str, int | None]:
    """The point's class and its detail, from what is judged there."""
    if value_status != JUDGED:
        node = next((i for i, v in enumerate(values) if not mpmath.isfinite(v) or abs(v) > _max()), len(values) - 1)
        name = current_format().name
        why = f"overflows {name}" if abs(values[node]) > _max() else f"is beyond what {name} can compute"
        return "not-representable", f"node {node} ({program.ops[node]}) {why}: the value is not judged", node
    if "undefined" in gradient_status:
        node = min(undefined)
        return "gradient-undefined", undefined[node], node
    if any(s != JUDGED for s in gradient_status):
        unjudged = ", ".join(f"d/d{program.variables[k]}" for k, s in enumerate(gradient_status) if s != JUDGED)
        return "gradient-not-representable", f"{unjudged}: beyond float64, or a float64 formula's terms over- or underflow", None
    if kinks:
        return "kink", "; ".join(_describe(program.ops[k], program.args[k], values, k) for k in kinks) + " at its kink", None
    return "defined", "", None


def _sides(count: int, active: Sequence[int], signs: Sequence[int]) -> tuple[int, ...]:
    """One entry per kink of an op: the sign chosen for the active ones, else 0."""
    chosen = dict(zip(active, signs))
    return tuple(chosen.get(q, 0) for q in range(count))


def _one_sided(program: Program, values: list[Any], node: int, signs: list[tuple[int, int]]) -> tuple[Any, ...]:
    """The node's local derivatives with each of its active kinks on one side."""
    op, param = program.ops[node], program.params[node]
    count = len(local_rule(op, param).kinks)
    sides = _sides(count, [q for q, _ in signs], [s for _, s in signs])
    return one_sided(op, param, sides)(*(values[j] for j in program.args[node]))
