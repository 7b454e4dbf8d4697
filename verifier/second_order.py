"""Second order and forward mode: the exact Hessian along the DAG, and the judge of
an engine's Hessians (``backward(create_graph=True)``) and tangents (forward mode).

The Hessian is composed node by node from each op's exact first and second local
derivatives (SymPy, :mod:`verifier.local`), in mpmath at 50 digits: a node
``v = f(a, b)`` has the gradient ``sum_q f_q grad(a_q)`` and the Hessian
``sum_q f_q H(a_q) + sum_ql f_ql grad(a_q) grad(a_l)^T``. Its noise floor is the
same running bound as the first order's (:mod:`verifier.reference`), one order up:
each local derivative is off by its own rounding (in units of the scale of its
terms: ``tanh''`` computed from ``1 - t*t`` is off by about an ulp of 1, not of
``tanh''``) and by its inputs' noise (the spread of the derivative over the box
of its arguments give or take their noise, evaluated exactly: no third
derivative, and right also where the noise is large), and every product and sum
rounds. An entry is judged only where the point is an ordinary one at first order
(class ``defined``: no kink, no domain edge, every partial judged) and the entry is
finite, within float64, and its floor too.

Forward mode needs no new reference: with the tangent of variable ``k`` set to 1,
the output's tangent is the partial ``d/dx_k``, judged against the first order's
exact gradient and floor.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> ref = hessian_at(compile_program(parse("x * x * y")), (3.0, 2.0))
    >>> ref.hessian
    ((4.0, 6.0), (6.0, 0.0))
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import mpmath

from verifier.expr import Program
from verifier.judge import Verdict, compare_quantity
from verifier.local import local_rule
from verifier.ops import OPS
from verifier.reference import (DIGITS, JUDGED, PRODUCT_ULPS, PointReference, _floor_float, _forward_floor, _max, _text,
                                _tiny, _to_float, _u, truth_at)
from verifier.run_engine import EngineOutcome

__all__ = ["Checks", "FIRST_ORDER", "current_checks", "set_checks", "checking", "parse_modes", "HessianReference",
           "hessian_at", "judge_hessian", "judge_tangents", "entry_label", "cannot", "HIGHER_KINDS"]

HIGHER_KINDS = ("hessian", "jvp")


# -- what a campaign checks beyond first-order reverse mode -------------------------------

@dataclass(frozen=True)
class Checks:
    """The derivatives a campaign checks: ``order`` 1 or 2 (the Hessian), and
    whether forward mode (``.tangent``) is checked besides reverse mode.

    Example:
        >>> Checks(2, True).modes
        ('fwd', 'rev')
    """

    order: int = 1
    forward: bool = False

    @property
    def modes(self) -> tuple[str, ...]:
        return ("fwd", "rev") if self.forward else ("rev",)

    @property
    def higher(self) -> bool:
        """Whether anything beyond first-order reverse mode is asked for."""
        return self.order >= 2 or self.forward


FIRST_ORDER = Checks()
_current = FIRST_ORDER


def current_checks() -> Checks:
    """What this process checks now (a campaign sets it, as it sets the number format)."""
    return _current


def set_checks(checks: Checks) -> None:
    global _current
    _current = checks


@contextmanager
def checking(checks: Checks) -> Iterator[Checks]:
    """Check ``checks`` inside the block, what was checked before after it."""
    before = _current
    set_checks(checks)
    try:
        yield checks
    finally:
        set_checks(before)


def parse_modes(text: str | Sequence[str]) -> bool:
    """Whether a ``--modes`` value asks for forward mode (reverse mode is always checked).

    Example:
        >>> parse_modes("fwd,rev"), parse_modes("rev")
        (True, False)
        >>> parse_modes("sideways")
        Traceback (most recent call last):
        ...
        ValueError: unknown mode 'sideways': expected fwd, rev or both (fwd,rev)
    """
    modes = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"unknown mode {mode!r}: expected fwd, rev or both (fwd,rev)")
    if not modes:
        raise ValueError("no mode given: expected fwd, rev or both (fwd,rev)")
    return "fwd" in modes


# -- the exact Hessian ---------------------------------------------------------------------

@dataclass(frozen=True)
class HessianReference:
    """The exact Hessian at one point and the noise floor of each entry.

    Attributes:
        status: ``defined`` where entries are judged, else the first order's class
            of the point (``kink``, ``outside-domain``, ...): nothing is judged there.
        detail: why, where nothing is judged.
        hessian, floor: entry ``[i][j]`` is d2f/dx_i dx_j (rounded to float64) and
            its floor.
        entry_status: ``judged`` or why that entry is not (see
            :data:`verifier.reference.UNJUDGED`).
        exact_text: each entry at 25 digits.
    """

    variables: tuple[str, ...]
    status: str
    detail: str
    hessian: tuple[tuple[float, ...], ...]
    floor: tuple[tuple[float, ...], ...]
    entry_status: tuple[tuple[str, ...], ...]
    exact_text: tuple[tuple[str, ...], ...]

    def judged(self, i: int, j: int) -> bool:
        return self.entry_status[i][j] == JUDGED

    @property
    def any_judged(self) -> bool:
        return any(s == JUDGED for row in self.entry_status for s in row)

    @property
    def all_judged(self) -> bool:
        return all(s == JUDGED for row in self.entry_status for s in row)

    def to_dict(self) -> dict[str, Any]:
        return {"variables": list(self.variables), "status": self.status, "detail": self.detail,
                "exact": [list(r) for r in self.hessian], "exact_text": [list(r) for r in self.exact_text],
                "floor": [list(r) for r in self.floor], "entry_status": [list(r) for r in self.entry_status]}


# Why no entry is judged, from the point's first-order class: at a kink the gradient
# jumps (no second derivative); the others as at first order.
_REASONS = {"gradient-undefined": "undefined", "gradient-not-representable": "not-representable"}


def _nothing(variables: tuple[str, ...], status: str, detail: str) -> HessianReference:
    n = len(variables)
    nan = tuple((math.nan,) * n for _ in range(n))
    reason = _REASONS.get(status, status)
    return HessianReference(variables, status, detail, nan, nan, tuple((reason,) * n for _ in range(n)),
                            tuple(("undefined",) * n for _ in range(n)))


def hessian_at(program: Program, point: Sequence[float], truth: PointReference | None = None) -> HessianReference:
    """The exact Hessian of ``program`` at ``point``, with noise floors.

    ``truth`` is the first-order reference there (computed if not given): only at
    a point it calls ``defined`` are entries judged.
    """
    truth = truth if truth is not None else truth_at(program, point)
    if truth.status != "defined":
        return _nothing(program.variables, truth.status, truth.detail or "not an ordinary point at first order")
    with mpmath.workdps(DIGITS):
        H, EH = _compose(program, point)
        n = len(program.variables)
        rows, floors, statuses, texts = [], [], [], []
        for i in range(n):
            rows.append(tuple(_to_float(H[i][j]) for j in range(n)))
            floors.append(tuple(_floor_float(EH[i][j]) for j in range(n)))
            statuses.append(tuple(_entry_status(H[i][j], floors[-1][j]) for j in range(n)))
            texts.append(tuple(_text(H[i][j]) if mpmath.isfinite(H[i][j]) else "undefined" for j in range(n)))
    return HessianReference(program.variables, "defined", "", tuple(rows), tuple(floors), tuple(statuses), tuple(texts))


def _entry_status(exact: Any, floor: float) -> str:
    if not mpmath.isfinite(exact):
        return "undefined"  # an infinite second derivative on its path (x**1.5 at 0)
    if abs(exact) > _max():
        return "not-representable"
    return JUDGED if floor < math.inf else "noise-beyond-float64"


def _prod(*xs: Any) -> Any:
    """A product that is 0 where any factor is (no path carries an infinite local
    derivative where the gradient that meets it is exactly 0)."""
    if any(x == 0 for x in xs):
        return mpmath.mpf(0)
    result = mpmath.mpf(1)
    for x in xs:
        result *= x
    return result


def _held(x: Any, floor: Any) -> Any:
    """A floor, infinite where a valid float64 computation may overflow."""
    return mpmath.inf if abs(x) + floor > _max() or not mpmath.isfinite(floor) else floor


def _spread(op: str, param: Any, argv: list[Any], noises: list[Any], center: tuple[Any, ...]) -> list[Any]:
    """How far each local derivative moves over the box of its arguments give or
    take their noise (its corners, evaluated exactly)."""
    if all(e == 0 for e in noises):
        return [mpmath.mpf(0)] * len(center)
    if not all(mpmath.isfinite(e) for e in noises):
        return [mpmath.inf] * len(center)
    rule = local_rule(op, param)
    worst = [mpmath.mpf(0)] * len(center)
    for signs in itertools.product((-1, 1), repeat=len(argv)):
        try:
            moved = rule.mpmath(*(a + s * e for a, s, e in zip(argv, signs, noises)))
        except (ValueError, ZeroDivisionError, OverflowError):
            return [mpmath.inf] * len(center)
        for q, (d, c) in enumerate(zip(moved, center)):
            gap = abs(d - c) if mpmath.isfinite(d) and mpmath.isfinite(c) else (0 if d == c else mpmath.inf)
            worst[q] = max(worst[q], gap)
    return worst


def _lost(d: Any, floor: Any) -> Any:
    """A local derivative's floor where float64 cannot hold it: infinite beyond the
    largest float (its product with a tiny gradient may be an ordinary number that
    no float64 formula reaches: x / exp(x) at -300 has d2/db2 = 2a/b**3 = 4e393);
    all of it below the smallest normal (it may be flushed to 0)."""
    if abs(d) > _max():
        return mpmath.inf
    if 0 < abs(d) < _tiny():
        return floor + abs(d)
    return floor


def _scale_slope(spec: Any, param: Any, argv: list[Any], q: int, w: int) -> Any:
    """How fast the scale of the terms of ``f_q`` moves with argument ``w``: a
    one-sided difference away from 0 (never across a domain edge there: log, sqrt),
    with a step no finer than 2**-60 (sigmoid's scale 0.5 at -1e-39 moves by 1e-51
    over a step relative to x: lost at 50 digits)."""
    a = argv[w]
    step = mpmath.mpf(2) ** -40 * max(abs(a), mpmath.mpf(2) ** -20)
    ends = []
    with mpmath.workdps(DIGITS + 20):
        for shift in (0, step if a >= 0 else -step):
            moved = list(argv)
            moved[w] = a + shift
            try:
                ends.append(abs(spec.grad_scales[q](mpmath, moved, spec.mpmath(*moved, param), param)))
            except (ValueError, ZeroDivisionError, OverflowError):
                return mpmath.inf
        slope = abs(ends[1] - ends[0]) / step
    return slope if mpmath.isfinite(slope) else mpmath.inf


def _in_range(x: Any) -> bool:
    """Whether ``x`` is a float64 number with all its digits (not subnormal, not beyond)."""
    return x == 0 or _tiny() * 2.0**53 <= abs(x) <= _max()


# The intermediates a valid formula for an op's second derivatives may form (torch's
# div double backward: 2 * a, then / b three times; pow's p (p-1) x**(p-2)).
_SECOND_INTERMEDIATES = {
    "div": lambda a, b, p: (2 * a, a / b, a / b**2, 2 * a / b**3, b**2, b**3, b**4, 1 / b**2, 1 / b**3),
    "pow": lambda x, p: () if x == 0 or p in (0.0, 1.0, 2.0) else (abs(x) ** (p - 1), abs(x) ** (p - 2), p * (p - 1) * abs(x) ** (p - 2)),
    "log": lambda x, p: (x * x, 1 / (x * x)),
    "sqrt": lambda x, p: () if x <= 0 else (x * mpmath.sqrt(x), 1 / (x * mpmath.sqrt(x))),
}


def _lossy_second(op: str, param: Any, argv: list[Any]) -> bool:
    """Whether a valid formula for the op's second derivatives goes through an
    intermediate that over- or underflows (``2 * a`` at a = 1.8e308, ``(b*b)**2`` at
    b = 5e-131): each of its entries may then be anything, inf, or nan."""
    intermediates = _SECOND_INTERMEDIATES.get(op)
    return intermediates is not None and not all(_in_range(t) for t in intermediates(*argv, param))


def _local_noise(op: str, param: Any, argv: list[Any], value: Any, d: tuple[Any, ...], noises: list[Any]) -> tuple[list[Any], list[Any]]:
    """How far a float64 engine's first (``Df``) and second (``Dff``, row-major)
    local derivatives of one node may be off: infinite where a valid formula's
    intermediate may overflow."""
    spec = OPS[op]
    u, tiny = _u(), _tiny()
    k = len(argv)
    firsts, seconds = d[:k], d[k:]
    spread = _spread(op, param, argv, noises, d)
    scales = [abs(spec.grad_scales[q](mpmath, argv, value, param)) for q in range(k)]
    # A first derivative is off by its rounding and its inputs' noise.
    Df = [_lost(firsts[q], spec.ulps * u * scales[q] + tiny + spread[q]) for q in range(k)]
    if _lossy_second(op, param, argv):
        return Df, [mpmath.inf] * (k * k)
    # A second derivative is what differentiating the first's formula gives: the
    # first's rounding (an ulp of its terms' scale) moves it by f_ql / f_q of that.
    Dff = []
    for q in range(k):
        for w in range(k):
            s = seconds[q * k + w]
            condition = scales[q] * abs(s) / abs(firsts[q]) if firsts[q] != 0 else scales[q]
            # The terms of f_qw are the derivatives of f_q's terms: their scale moves
            # as f_q's does (sigmoid'' = s'(1 - 2s) from s - s*s: terms of size s', not s'').
            terms = abs(s) + condition + 2 * _scale_slope(spec, param, argv, q, w)
            floor = spec.ulps * u * terms + tiny + spread[k + q * k + w] if mpmath.isfinite(s) else mpmath.inf
            Dff.append(_lost(s, floor))
    return Df, Dff


@dataclass
class _Trace:
    """What the forward composition keeps of each node for the second pass's floors
    (see :func:`_second_pass`)."""

    firsts: list[tuple[Any, ...]] = field(default_factory=list)  # first local derivatives
    curvature: list[list[list[Any]]] = field(default_factory=list)  # |sum_ql f_ql grad(a_q) grad(a_l)^T|
    reach: list[list[Any]] = field(default_factory=list)  # sum_ql |f_ql| |grad(a_l)|, per variable
    factors: dict[int, list[tuple[int, int, Any, Any, Any]]] = field(default_factory=dict)  # (a, b, |f_ql|, |grad_q[a]|, |grad_l[b]|)
    poisoned: set[int] = field(default_factory=set)  # variables whose rows and columns may be anything


def _compose(program: Program, point: Sequence[float]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The exact Hessian of the output and its noise floor (mpmath, at the current
    precision), composed forward along the graph (see the module docstring)."""
    n = len(program.variables)
    u, tiny = _u(), _tiny()
    rounding = 2 * PRODUCT_ULPS * u  # each product and sum of the composition rounds
    zero = mpmath.mpf(0)

    def matrix() -> list[list[Any]]:
        return [[zero] * n for _ in range(n)]

    trace = _Trace()
    values: list[Any] = []
    noise: list[Any] = []  # the value's floor
    G: list[list[Any]] = []  # gradient of each node with respect to the variables
    EG: list[list[Any]] = []
    H: list[list[list[Any]]] = []
    EH: list[list[list[Any]]] = []
    for op, args, param in zip(program.ops, program.args, program.params):
        if op in ("var", "const"):
            x = mpmath.mpf(float(point[param]) if op == "var" else param)
            values.append(x)
            noise.append(u * abs(x) if op == "var" else zero)
            G.append([mpmath.mpf(1) if op == "var" and k == param else zero for k in range(n)])
            EG.append([zero] * n)
            H.append(matrix())
            EH.append(matrix())
            trace.firsts.append(())
            trace.curvature.append(matrix())
            trace.reach.append([zero] * n)
            continue
        k = len(args)
        argv = [values[j] for j in args]
        value = OPS[op].mpmath(*argv, param)
        d = local_rule(op, param).mpmath(*argv)
        firsts, seconds = d[:k], d[k:]
        noises = [noise[j] for j in args]
        Df, Dff = _local_noise(op, param, argv, value, d, noises)
        if not all(mpmath.isfinite(x) for x in (*Df, *Dff)):
            # An intermediate a valid formula may hold as inf (2a/b**3 in d2(a/b)/db2 at
            # a = 1.8e308): times a 0 somewhere in the second pass it is nan, in any
            # entry of a variable this node depends on (torch: tanh(x0/x1) there).
            trace.poisoned.update(a for a in range(n) for j in args if G[j][a] != 0)
        node = len(values)
        values.append(value)
        noise.append(_held(value, _forward_floor(mpmath, OPS[op], argv, value, param, d, noises)) if mpmath.isfinite(value) else mpmath.inf)
        trace.firsts.append(firsts)
        trace.curvature.append(matrix())
        trace.reach.append([sum((_prod(abs(seconds[q * k + w]), abs(G[jw][b])) for q in range(k) for w, jw in enumerate(args)), zero)
                            for b in range(n)])
        g, eg, h, eh = [zero] * n, [zero] * n, matrix(), matrix()
        for a in range(n):
            for q, j in enumerate(args):
                g[a] += _prod(firsts[q], G[j][a])
                eg[a] += _prod(abs(firsts[q]), EG[j][a]) + _prod(Df[q], abs(G[j][a]) + EG[j][a]) \
                    + rounding * _prod(abs(firsts[q]), abs(G[j][a]))
            # The smallest normal only where there is a derivative: a variable this node
            # does not depend on has an exact 0 here (no inf * tiny downstream).
            eg[a] = _held(g[a], eg[a] + tiny) if eg[a] or g[a] else eg[a]
        for a in range(n):
            for b in range(n):
                total, bound, size = zero, zero, zero
                for q, j in enumerate(args):
                    total += _prod(firsts[q], H[j][a][b])
                    bound += _prod(abs(firsts[q]), EH[j][a][b]) + _prod(Df[q], abs(H[j][a][b]) + EH[j][a][b])
                    size += _prod(abs(firsts[q]), abs(H[j][a][b]))
                    for w, jw in enumerate(args):
                        s = seconds[q * k + w]
                        total += _prod(s, G[j][a], G[jw][b])
                        wide = _prod(abs(G[j][a]) + EG[j][a], abs(G[jw][b]) + EG[jw][b])
                        narrow = _prod(abs(G[j][a]), abs(G[jw][b]))
                        bound += _prod(Dff[q * k + w], wide) + _prod(abs(s), wide - narrow)
                        size += _prod(abs(s), narrow)
                        trace.curvature[node][a][b] += _prod(abs(s), narrow)
                        if s != 0:
                            trace.factors.setdefault(node, []).append((a, b, abs(s), abs(G[j][a]), abs(G[jw][b])))
                h[a][b] = total
                if not mpmath.isfinite(total):
                    eh[a][b] = mpmath.inf
                elif bound or size or total:
                    eh[a][b] = _held(total, bound + rounding * size + tiny)
        G.append(g)
        EG.append(eg)
        H.append(h)
        EH.append(eh)
    return H[-1], _second_pass(program, trace, H[-1], EH[-1], rounding)


def _second_pass(program: Program, trace: _Trace, hessian: list[list[Any]], floor: list[list[Any]], rounding: Any) -> list[list[Any]]:
    """``floor`` widened by what a reverse-over-reverse engine's second pass may do.

    The Hessian is also sum_v adjoint(v) * (v's local second-order term): such an
    engine multiplies each node's first-order adjoint into it, and an adjoint may
    underflow (x * sqrt(x) * x at 2e-181: sqrt's is x*x = 4e-362, and with it the term
    x*x*sqrt''), or carry its own noise: an ulp and the smallest normal of each
    adjoint, times that term. So may the second pass's own intermediates, adjoint
    times partial (sigmoid(x)**-0.5 * y at (-120, 1e-262): y * s' = 4e-315 keeps 9
    digits): the smallest normal, times f_ql grad(a_l). A product of the second pass
    that overflows, in whatever order a valid engine multiplies (the adjoint, f_ql
    and the two partials), makes that entry inf or nan ((x1*x0)**-1 at (1e52,
    1e-154): 2/u**3 * x0 = inf before * x1 = 1e-154); one that underflows may lose the
    whole term (sqrt(x0*x1) at (1e-89, 1e240): sqrt'' * x0 = 8e-317 keeps 9 digits
    before * x1 = 1e240).
    """
    n, tiny = len(program.variables), _tiny()
    adjoints = [mpmath.mpf(0)] * len(program)
    adjoints[-1] = mpmath.mpf(1)
    for i in range(len(program) - 1, -1, -1):
        for q, j in enumerate(program.args[i]):
            adjoints[j] += _prod(adjoints[i], trace.firsts[i][q])
    final = [row[:] for row in floor]
    for v, term in enumerate(trace.curvature):
        weight = tiny + 2 * rounding * abs(adjoints[v]) if mpmath.isfinite(adjoints[v]) else mpmath.inf
        reach = trace.reach[v]
        for a in range(n):
            for b in range(n):
                if term[a][b] != 0 or reach[a] != 0 or reach[b] != 0:
                    final[a][b] = _held(hessian[a][b], final[a][b] + _prod(weight, term[a][b]) + tiny * (reach[a] + reach[b]))
    for v, factors in trace.factors.items():
        adjoint = abs(adjoints[v])
        for a, b, s, ga, gb in factors:
            if not (ga or gb):
                continue  # only the passes of variables this node depends on form its products
            partial = (s * ga, s * gb, adjoint * s, adjoint * s * ga, adjoint * s * gb)
            if max(partial) > _max():
                final[a][b] = final[b][a] = mpmath.inf
            elif any(0 < x < tiny for x in partial):
                for i, j in {(a, b), (b, a)}:
                    final[i][j] = _held(hessian[i][j], final[i][j] + adjoint * s * ga * gb)
    for a in trace.poisoned:
        for b in range(n):
            final[a][b] = final[b][a] = mpmath.inf
    return final


# -- judging ----------------------------------------------------------------------------------

def entry_label(variables: Sequence[str], i: int, j: int) -> str:
    """``d2/dxdy``, or ``d2/dx2`` on the diagonal.

    Example:
        >>> entry_label(("x", "y"), 0, 1), entry_label(("x", "y"), 1, 1)
        ('d2/dxdy', 'd2/dy2')
    """
    return f"d2/d{variables[i]}d{variables[j]}" if i != j else f"d2/d{variables[i]}2"


def cannot(host: Any, checks: Checks) -> tuple[str, str]:
    """What of ``checks`` the engine behind ``host`` cannot do: ``("order", error)``
    when its ``backward`` refuses ``create_graph=True``, ``("forward", error)`` when
    its ``Value`` refuses ``tangent``, ``("", "")`` when it can do all of it. Asked
    on ``x * y`` at (1.5, -2), where any engine that can answers: a TypeError or an
    AttributeError there is a refusal, not a wrong derivative.

    Example:
        >>> from engine import Value
        >>> from verifier.hosts import InProcess
        >>> cannot(InProcess(Value), Checks(2, True))
        ('', '')
    """
    from verifier.expr import compile_program
    from verifier.parsing import parse

    [outcome] = host.run(compile_program(parse("x * y")), [(1.5, -2.0)], order=checks.order, forward=checks.forward)
    for what, asked, error in (("order", checks.order >= 2, outcome.hessian_error), ("forward", checks.forward, outcome.tangent_error)):
        if asked and ("TypeError" in error or "AttributeError" in error):
            return what, error
    return "", ""


def judge_hessian(ref: HessianReference, outcome: EngineOutcome) -> list[Verdict]:
    """Every entry of the engine's Hessian that disagrees with the exact one.

    Raising at second order is a finding only where every entry is judged (an
    infinite second derivative may rightly raise).

    Example:
        >>> from verifier.parsing import parse
        >>> from verifier.expr import compile_program
        >>> ref = hessian_at(compile_program(parse("tanh(x)")), (0.5,))
        >>> wrong = EngineOutcome("ok", 0.46, (0.79,), hessian=((0.73,),))
        >>> [(v.kind, v.variable, v.column) for v in judge_hessian(ref, wrong)]
        [('hessian', 0, 0)]
    """
    if outcome.status != "ok" or not ref.any_judged:
        return []
    if outcome.hessian is None:
        if not outcome.hessian_error or not ref.all_judged:
            return []
        return [Verdict("hessian", "error", "engine", f"second order failed where the Hessian is defined: {outcome.hessian_error}")]
    verdicts = []
    n = len(ref.variables)
    for i in range(n):
        for j in range(n):
            if not ref.judged(i, j):
                continue
            want = ref.hessian[i][j]
            verdict = compare_quantity("hessian", entry_label(ref.variables, i, j), outcome.hessian[i][j], want, want, want, ref.floor[i][j])
            if verdict is not None:
                verdicts.append(Verdict(verdict.kind, verdict.severity, verdict.cause, verdict.message, i, verdict.error,
                                        verdict.floor, column=j))
    return verdicts


def forward_in_range(program: Program, point: Sequence[float], k: int) -> bool:
    """Whether forward mode's intermediates for variable ``k`` (each node's partial
    d/dx_k) are all normal float64 numbers or 0: where one overflows or underflows,
    forward mode may rightly give anything (exp(log(sqrt(x))) at 1e-309: log's
    partial is 5e308; reverse mode never forms it)."""
    with mpmath.workdps(30):
        values: list[Any] = []
        partials: list[Any] = []
        for op, args, param in zip(program.ops, program.args, program.params):
            if op in ("var", "const"):
                values.append(mpmath.mpf(float(point[param]) if op == "var" else param))
                partials.append(mpmath.mpf(1 if op == "var" and param == k else 0))
                continue
            argv = [values[j] for j in args]
            values.append(OPS[op].mpmath(*argv, param))
            d = local_rule(op, param).mpmath(*argv)
            partials.append(sum((_prod(d[q], partials[j]) for q, j in enumerate(args)), mpmath.mpf(0)))
            if not (mpmath.isfinite(partials[-1]) and _in_range(partials[-1])):
                return False
    return True


def judge_tangents(truth: PointReference, outcome: EngineOutcome, variables: Sequence[str],
                   program: Program | None = None, point: Sequence[float] | None = None) -> list[Verdict]:
    """Every forward-mode partial (the output's tangent with one variable's tangent
    1) that disagrees with the exact gradient, judged like a reverse-mode one (but
    not where forward mode's own intermediates leave float64: see
    :func:`forward_in_range`, checked given ``program`` and ``point``)."""
    judged = [k for k in range(len(truth.gradient)) if truth.gradient_status and truth.partial_judged(k)]
    if outcome.status != "ok" or not judged or not truth.value_judged:
        return []
    if outcome.tangents is None:
        if not outcome.tangent_error or len(judged) < len(truth.gradient):
            return []
        return [Verdict("jvp", "error", "engine", f"forward mode failed where the gradient is defined: {outcome.tangent_error}")]
    verdicts = []
    for k in judged:
        name = f"forward-mode d/d{variables[k]}"
        verdict = compare_quantity("jvp", name, outcome.tangents[k], truth.gradient[k], truth.gradient_low[k], truth.gradient_high[k],
                                   truth.gradient_floor[k])
        if verdict is not None and (program is None or forward_in_range(program, point, k)):
            verdicts.append(Verdict(verdict.kind, verdict.severity, verdict.cause, verdict.message, k, verdict.error, verdict.floor))
    return verdicts

