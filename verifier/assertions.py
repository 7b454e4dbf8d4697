"""Assertions for the tests of an autograd engine: judged, blamed, readable.

:func:`assert_gradients` checks an engine's value and gradient of an expression
against the exact reference (with torch and central differences shown beside it),
with tolerances from the float64 noise each point can carry, and on a real error
raises :class:`GradientMismatch`: a compact table of every oracle's answer, the op
to blame and the command that replays the finding. :func:`assert_same_gradients`
checks a metamorphic relation (two ways of writing the same function) without an
oracle, and asks the judge which side is wrong when it breaks.

Both return how many points they compared, so that a test can say what it
judged (a property test assumes away an example that compared nothing).

:func:`~verifier.alone.assert_op_alone` (each op checked alone) lives in
:mod:`verifier.alone` and is re-exported here.

Example:
    >>> from engine import Value
    >>> assert_gradients("tanh(x0 * x1) - 3 / x1", {"x0": 0.5, "x1": 2.0}, engine=Value)
    1
    >>> assert_same_gradients("x - y", "x + -y", [[1.5, -2.0], [0.25, 3.0]], engine=Value)
    2
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from verifier.comparison import as_expression
from verifier.evaluate import judge_case
from verifier.evidence import build_finding
from verifier.expr import Expr, compile_program, natural_key
from verifier.findings import Blame, Finding, OracleReport
from verifier.hosts import InProcess
from verifier.judge import PASS, Verdict, format_number, format_point, worst
from verifier.loader import load_engine
from verifier.reference import sweep, truth_at
from verifier.run_engine import EngineOutcome, run
from verifier.second_evidence import higher_finding
from verifier.second_order import FIRST_ORDER, HIGHER_KINDS, Checks, checking, parse_modes

__all__ = [
    "GradientMismatch",
    "assert_gradients",
    "assert_op_alone",  # noqa: F822 - from verifier.alone, by __getattr__ below
    "assert_same_gradients",
    "assert_hessians",
    "assert_tangents",
    "replay_command",
    "set_replay_file",
    "format_finding",
]

MAX_COLUMNS = 4  # partials shown in a table; the report has them all
# The point classes where the engine's value and every partial meet the truth (the
# reference's ``gradient_judged``): what assert_gradients counts as compared.
COMPARED = ("defined", "kink")
MAX_EXPRESSION = 240  # characters of an expression shown in a message

# Set by the pytest plugin, which writes the findings there. Outside pytest nothing
# writes a findings file, so a failure shows how to reproduce it instead.
_replay_file: str | None = None
_hosts: dict[type, InProcess] = {}
# What the assertions judged in this process; the pytest plugin reads and resets it
# after each test, to put point counts in the session's report.
_stats: Counter = Counter()


class GradientMismatch(AssertionError):
    """An engine's value or gradient is really wrong (beyond float64 noise).

    The message is a compact table: the expression, the point, every oracle's
    value and partials with their errors against the exact reference, the noise
    floor, the op to blame and the ``verifier replay`` command.

    The table and the finding are built when first needed (``str()`` or
    ``.finding``): Hypothesis raises this error many times while shrinking and
    shows only the last one, and blaming an op costs more than judging.

    Attributes:
        finding: the full :class:`~verifier.findings.Finding` (None only when a
            relation broke and no single side could be judged wrong).
    """

    def __init__(self, message: str, finding: Finding | None = None, *, details: Callable[[], tuple[str, Finding | None]] | None = None) -> None:
        super().__init__(message)
        self._message, self._finding, self._details = message, finding, details

    def _resolve(self) -> None:
        details, self._details = self._details, None
        if details is None:
            return
        try:
            self._message, self._finding = details()
        except Exception as error:  # noqa: BLE001 - never lose the verdict over its details
            self._message += f"\n  (the full table could not be built: {type(error).__name__}: {error})"
        self.args = (self._message,)

    @property
    def finding(self) -> Finding | None:
        self._resolve()
        return self._finding

    def __str__(self) -> str:
        self._resolve()
        return self._message


def set_replay_file(path: str | None) -> None:
    """Where failing findings are written (the pytest plugin sets ``--verifier-json``);
    None: nowhere (outside pytest), and failures show no ``verifier replay`` line."""
    global _replay_file
    _replay_file = path


def replay_command(finding: Finding) -> str | None:
    """``verifier replay crossgrad-findings.json --id F1a2b3c4d``, or None when no
    findings file is written (outside pytest)."""
    path = _replay_file
    if path is None:
        return None
    if any(c.isspace() for c in path):
        path = f"'{path}'"
    return f"verifier replay {path} --id {finding.id}"


def take_stats() -> dict[str, int]:
    """What was judged since the last call (for the pytest plugin's report)."""
    out = dict(_stats)
    _stats.clear()
    return out


_MOVED = ("assert_op_alone", "fails_alone", "set_alone_tests")  # their home is verifier.alone


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from verifier import alone

        return getattr(alone, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- arguments ------------------------------------------------------------------------

def _host(engine: type | str) -> InProcess:
    if isinstance(engine, str):
        engine = load_engine(engine)
    if not isinstance(engine, type):
        raise TypeError(f"engine={engine!r}: expected an engine class or a 'module:Class' target")
    host = _hosts.get(engine)
    if host is None:
        host = _hosts[engine] = InProcess(engine)
    return host


def _rows(variables: Sequence[str], points: Any) -> np.ndarray:
    """Points as an array of shape (n, len(variables)), columns in variable order."""
    if isinstance(points, Mapping):
        missing = [v for v in variables if v not in points]
        if missing:
            raise ValueError(f"points has no value for {', '.join(missing)} (expected values for {', '.join(variables)})")
        extra = [str(k) for k in points if k not in variables]
        if extra:
            raise ValueError(f"points gives {', '.join(extra)}, which the expression does not use (it uses {', '.join(variables)})")
        columns = []
        for name in variables:
            x = points[name]
            if isinstance(x, bool) or (isinstance(x, str)):
                raise ValueError(f"points[{name!r}]={x!r}: expected a number or a sequence of numbers")
            columns.append(np.atleast_1d(np.asarray(x, dtype=float)))
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise ValueError(f"points: every variable needs the same number of values, got {sorted(lengths)}")
        rows = np.stack(columns, axis=1)
    else:
        rows = np.asarray(points, dtype=float)
        if rows.ndim == 1 and rows.shape[0] == len(variables):
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != len(variables):
            raise ValueError(
                f"points has shape {rows.shape}; expected rows of {len(variables)} numbers "
                f"({', '.join(variables)}) or a mapping of variable to number"
            )
    if rows.shape[0] == 0:
        raise ValueError("points is empty: give at least one point")
    if not np.isfinite(rows).all():
        raise ValueError("points: every coordinate must be a finite number")
    return rows


def _ops_of(expr: Expr) -> list[str]:
    return list(dict.fromkeys(n.op for n in expr.nodes() if n.op not in ("var", "const")))


def _require(expr: Expr, supported: Sequence[str], host: InProcess | None = None) -> None:
    """Skip (under pytest) or refuse an expression that uses ops the engine lacks;
    under pytest, skip one that uses an op failing alone in this session."""
    __tracebackhide__ = True  # the skip is reported at the test's line, not here
    ops = _ops_of(expr)
    lacking = [op for op in ops if op not in supported]
    under_pytest = bool(os.environ.get("PYTEST_CURRENT_TEST"))
    if lacking:
        reason = f"engine lacks {', '.join(lacking)}"
        if under_pytest:
            import pytest

            pytest.skip(reason)
        raise ValueError(f"{reason}: cannot check {_short(str(expr))}")
    if host is None or not under_pytest:
        return
    from verifier.alone import skip_if_failing_alone  # alone.py builds on this module

    skip_if_failing_alone(host, ops)


# -- formatting -------------------------------------------------------------------------

def _short(text: str, limit: int = MAX_EXPRESSION) -> str:
    return text if len(text) <= limit else f"{text[: limit - 30]} ... ({len(text)} characters)"


def _number(x: Any) -> str:
    if x is None:
        return "-"
    return format_number(x)  # floats as repr: the shortest text that reads back exactly


def _cell(x: Any, error: float | None = None, estimate: float | None = None) -> str:
    text = _number(x)
    if x is not None and error is not None and error > 0:
        text += f" (err {error:.2g})"
    if x is not None and estimate is not None:
        text += f" (est {estimate:.2g})"
    return text


def _columns(finding: Finding) -> list[int]:
    """The partials to show: the one concerned first, then the others, up to a limit."""
    order = list(range(len(finding.variables)))
    if finding.variable in finding.variables:
        k = finding.variables.index(finding.variable)
        order.remove(k)
        order.insert(0, k)
    return order[:MAX_COLUMNS]


LABEL = len("noise floor")  # every block of a message lines up on this label width


def _grid(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[0] = max(widths[0], LABEL)
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _oracle_row(o: OracleReport, columns: list[int]) -> list[str]:
    if o.status not in ("ok",):
        shown = f"{o.status}: {o.error}" if o.error else o.status
        return [o.name, _short(shown, 80)] + ["-"] * len(columns)
    grads = o.gradient or (None,) * (max(columns, default=-1) + 1)
    errors = o.gradient_error or (None,) * len(grads)
    estimates = o.estimate or (None,) * len(grads)
    cells = [o.name, _cell(o.value, o.value_error)]
    for k in columns:
        cells.append(_cell(grads[k], errors[k], estimates[k]))
    return cells


def format_finding(finding: Finding, *, engine: str = "") -> str:
    """A finding as the compact multi-line table of :class:`GradientMismatch`.

    Example (an engine whose tanh' forgets the square)::

        engine d/dx0 is 0.30000000000000004, exact 0.4199743416140261: error 0.12, where float64 allows 2.2e-16
          expression  tanh(x0)
          point       x0=0.7   (defined)
          oracle       value                     d/dx0
          reference    0.60436777711716349       0.41997434161402614
          engine       0.60436777711716349       0.39563222288283645 (err 0.024)
          ...
          noise floor  2.4e-16                   4.4e-16
          blame       tanh — tanh is wrong alone: tanh(a) at a=0.7: ...
          replay      verifier replay crossgrad-findings.json --id F1a2b3c4d
    """
    columns = _columns(finding)
    names = [f"d/d{finding.variables[k]}" for k in columns]
    lines = [finding.message]
    where = format_point(finding.variables, finding.point)
    status = finding.status + (f": {finding.detail}" if finding.detail else "")
    head = [["expression", _short(finding.expression)], ["point", f"{_short(where)}   ({status})"]]
    if finding.original and finding.original != finding.expression:
        head.append(["found as", _short(finding.original)])
    lines += _grid(head)
    table = [["oracle", "value", *names]]
    table += [_oracle_row(o, columns) for o in finding.oracles]
    floors = finding.gradient_floor or ()
    table.append(["noise floor", _floor(finding.value_floor)] + [_floor(floors[k]) if k < len(floors) else "-" for k in columns])
    hidden = len(finding.variables) - len(columns)
    lines += _grid(table)
    if hidden > 0:
        lines.append(f"  ({hidden} more partials in the report)")
    tail = [["blame", _blame_text(finding.blame)]]
    replay = replay_command(finding)
    if replay is not None:
        tail.append(["replay", replay])
    if finding.convention:
        tail.insert(1, ["convention", finding.convention])
    if engine and len(finding.expression) <= MAX_EXPRESSION:
        point = "{" + ", ".join(f"{n!r}: {_number(x)}" for n, x in zip(finding.variables, finding.point)) + "}"
        tail.append(["reproduce", f"verifier.compare({finding.expression!r}, {point}, engine={engine!r})"])
    elif engine and replay is None:  # too long to print, and no findings file to replay from
        f = "error.finding"
        tail.append(["reproduce", f"verifier.compare({f}.expression, dict(zip({f}.variables, {f}.point)), engine={engine!r})"])
    lines += _grid(tail)
    return "\n".join(lines)


def _floor(x: Any) -> str:
    return "-" if x is None else f"{x:.2g}" if isinstance(x, float) else str(x)


def _blame_text(blame: Blame) -> str:
    if blame.backend != "engine":
        return f"{blame.backend}: {blame.reason}"
    op = blame.op or "unknown op"
    return f"{op} — {blame.reason}" if blame.reason else op


# -- assert_gradients -----------------------------------------------------------------

# The severity of a numerically unstable formula (right at ordinary inputs, broken
# at extreme ones): the pytest plugin sets it from --verifier-unstable.
UNSTABLE_SEVERITY = "error"


class UnstableFormulaWarning(UserWarning):
    """An op's formula is right at ordinary inputs but breaks at extreme ones (with
    ``--verifier-unstable warning``, this is a warning, not a failure)."""


def assert_gradients(
    expr: str | Expr | Callable[..., Any],
    points: Mapping[str, Any] | Sequence[Sequence[float]] | np.ndarray,
    *,
    engine: type | str,
    ops: Sequence[str] | None = None,
) -> int:
    """Assert that ``engine`` gets the value and gradient of ``expr`` right.

    Every point is judged against the exact reference (SymPy's derivatives at 50
    digits) with the tolerance float64 allows there; points outside the domain, at
    kinks or where values overflow are judged by their own rules (see
    :mod:`verifier.judge`). Torch and central differences are computed too and
    shown in the failure table.

    Args:
        expr: an expression string (``"tanh(x0*x1) - 3/x1"``), an
            :class:`~verifier.expr.Expr`, or a function of Value-like arguments
            (traced, e.g. ``lambda a, b: (a * b).tanh()``).
        points: one point as ``{"x0": 0.5, "x1": 2.0}``, several as
            ``{"x0": [0.5, 1.0], "x1": [2.0, 3.0]}``, or rows in the order of the
            expression's variables (naturally sorted: x0, x1, ..., x10).
        engine: the engine class, or a ``module:Class`` / ``file.py:Class`` target.
        ops: the ops the engine is meant to have (default: those it has). An
            expression using another op is skipped under pytest (reason
            ``engine lacks exp, log``) and refused with ValueError elsewhere.

    Returns:
        How many points had their value and gradient compared with the truth
        (``defined`` points and kinks); points outside the domain, ill-conditioned
        or beyond float64 are judged by their own rules but not counted.

    Raises:
        GradientMismatch: at the first point with a real error; ``.finding`` holds
            the full finding with its blame.

    Example:
        >>> from engine import Value
        >>> assert_gradients(lambda a, b: (a * b).tanh(), [[0.5, 2.0], [-1.0, 3.0]], engine=Value)
        2
        >>> assert_gradients("log(x)", {"x": [2.0, -1.0]}, engine=Value)  # log(-1) is not compared
        1
    """
    __tracebackhide__ = True  # the table says it all; pytest hides this frame
    e = as_expression(expr)
    host = _host(engine)
    _require(e, host.supported if ops is None else tuple(ops), host)
    return _judge(host, e, points)


def assert_hessians(
    expr: str | Expr | Callable[..., Any],
    points: Mapping[str, Any] | Sequence[Sequence[float]] | np.ndarray,
    *,
    engine: type | str,
    ops: Sequence[str] | None = None,
    modes: str = "rev",
) -> int:
    """Assert that ``engine`` gets the Hessian of ``expr`` right (and its value and
    gradient: a first-order error comes first), as :func:`assert_gradients` does at
    first order: each entry against the exact one (SymPy's second derivatives along
    the graph, 50 digits) with the noise floor float64 allows there. The engine's
    ``backward`` must accept ``create_graph=True``; ``modes="fwd,rev"`` checks its
    forward mode (``Value(x, tangent=t)``) too.

    Returns:
        How many points had some Hessian entry (or forward-mode partial) judged.

    Raises:
        GradientMismatch: at the first point with a real error, blamed.

    Example:
        >>> from engine import Value
        >>> assert_hessians(lambda a, b: (a * b).tanh(), [[0.5, 2.0], [-1.0, 3.0]], engine=Value)
        2
    """
    __tracebackhide__ = True
    e = as_expression(expr)
    host = _host(engine)
    _require(e, host.supported if ops is None else tuple(ops), host)
    return _judge(host, e, points, Checks(2, parse_modes(modes)))


def assert_tangents(
    expr: str | Expr | Callable[..., Any],
    points: Mapping[str, Any] | Sequence[Sequence[float]] | np.ndarray,
    *,
    engine: type | str,
    ops: Sequence[str] | None = None,
) -> int:
    """Assert that ``engine``'s forward mode is right: with variable ``k``'s tangent 1
    (``Value(x, tangent=1.0)``) and the others 0, the output's ``.tangent`` is the
    partial d/dx_k, judged as the reverse-mode gradient is.

    Returns:
        How many points had some forward-mode partial judged.

    Example:
        >>> from engine import Value
        >>> assert_tangents("x * sin(y)", {"x": 2.0, "y": 0.5}, engine=Value)
        1
    """
    __tracebackhide__ = True
    e = as_expression(expr)
    host = _host(engine)
    _require(e, host.supported if ops is None else tuple(ops), host)
    return _judge(host, e, points, Checks(1, True))


def _judge(host: InProcess, e: Expr, points: Any, checks: Checks = FIRST_ORDER) -> int:
    __tracebackhide__ = True
    program = compile_program(e)
    rows = _rows(program.variables, points)
    with checking(checks):
        report = judge_case(host, program, rows)
        return _verdict(host, e, program, rows, report, checks)


def _verdict(host: InProcess, e: Expr, program: Any, rows: np.ndarray, report: Any, checks: Checks) -> int:
    __tracebackhide__ = True
    _stats["examples"] += 1
    _stats.update({f"points.{k}": v for k, v in report.counts.items()})
    compared = sum(report.counts[status] for status in COMPARED) if not checks.higher else report.higher
    if report.error is None:
        return compared
    if UNSTABLE_SEVERITY == "warning":
        # A numerically unstable formula asked for as a warning: the finding (with
        # its blame and the ranges where the op breaks) decides.
        finding = build_finding(host, program, rows[report.error.index])
        if finding is not None and finding.cause == "unstable":
            warnings.warn(UnstableFormulaWarning(finding.message), stacklevel=3)
            return compared
    verdicts = "\n".join(v.message for v in report.error.verdicts)
    summary = f"{verdicts}\n  expression   {_short(str(e))}\n  point        {format_point(program.variables, rows[report.error.index])}"
    at = rows[report.error.index]

    def details() -> tuple[str, Finding | None]:
        chosen = worst(report.error.verdicts)
        if chosen is not None and chosen.kind in HIGHER_KINDS:
            return _higher_details(host, program, at, report.error.verdicts, summary)
        finding = build_finding(host, program, at)
        if finding is None:  # it did not show again (a stateful engine?): the verdicts still stand
            return summary, None
        return format_finding(finding, engine=host.name), finding

    raise GradientMismatch(summary, details=details)


def _higher_details(host: InProcess, program: Any, at: Any, verdicts: Sequence[Verdict], summary: str) -> tuple[str, Finding | None]:
    """A second-order or forward-mode failure: the finding, its blame and its table."""
    finding = higher_finding(host, program, at, verdicts, truth_at(program, at).node_values)
    if finding is None:
        return summary, None
    lines = [summary, f"  blame        {_blame_text(finding.blame)}"]
    if finding.hessian is not None:
        h = finding.hessian
        names = [n for n in ("engine", "sympy", "torch", "differences") if h["rows"].get(n) is not None]
        grid = [["entry", "exact"] + names + ["floor"]]
        n = len(program.variables)
        for i in range(n):
            for j in range(n):
                grid.append([f"[{program.variables[i]}, {program.variables[j]}]", str(h["exact_text"][i][j])]
                            + [_number(h["rows"][name][i][j]) for name in names] + [_floor(h["floor"][i][j])])
        lines += _grid(grid)
    if finding.jvp is not None:
        j = finding.jvp
        grid = [["partial", "exact", "forward mode", "reverse mode", "floor"]]
        for k, name in enumerate(program.variables):
            grid.append([f"d/d{name}", str(j["exact_text"][k]), _number((j["engine"] or [None] * (k + 1))[k]),
                         _number((j["vjp"] or [None] * (k + 1))[k]), _floor(j["floor"][k])])
        lines += _grid(grid)
    return "\n".join(lines), finding


# -- assert_same_gradients --------------------------------------------------------------

def _split_outcome(outcome: EngineOutcome, columns: Sequence[int], width: int) -> tuple[Any, list[Any]]:
    """Value and gradient over all ``width`` variables (0 for ones not used)."""
    grads: list[Any] = [0.0] * width
    if outcome.gradient is not None:
        for k, c in enumerate(columns):
            grads[c] = outcome.gradient[k]
    else:
        grads = [None] * width
    return outcome.value, grads


def _finite(x: Any) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def assert_same_gradients(
    f: str | Expr | Callable[..., Any],
    g: str | Expr | Callable[..., Any],
    points: Mapping[str, Any] | Sequence[Sequence[float]] | np.ndarray,
    *,
    engine: type | str,
) -> int:
    """Assert that the engine gives ``f`` and ``g`` (two ways of writing one
    function) the same value and gradient, within float64 noise.

    No oracle is needed: at each point the engine's answers for ``f`` and ``g``
    must agree within ``PASS`` (4) times the sum of their noise floors (the error a
    valid float64 computation of each may carry there). Points where either side is
    outside its domain, near a domain edge or a kink, or overflows are not
    compared. When the relation breaks, each side is judged against the exact
    reference to name the op at fault.

    Args:
        f, g: expressions as for :func:`assert_gradients`; the points cover the
            variables of both.
        points: as for :func:`assert_gradients`, over the union of the variables.
        engine: the engine class or a target.

    Returns:
        How many points were compared (0 if none was inside both domains).

    Raises:
        GradientMismatch: at the first point where they differ.

    Example:
        >>> from engine import Value
        >>> assert_same_gradients("tanh(x)", "2 * sigmoid(2 * x) - 1", {"x": [0.3, -2.0]}, engine=Value)
        2
    """
    __tracebackhide__ = True
    ef, eg = as_expression(f), as_expression(g)
    host = _host(engine)
    _require(ef, host.supported, host)
    _require(eg, host.supported, host)
    names = tuple(sorted(set(ef.variables) | set(eg.variables), key=natural_key))
    rows = _rows(names, points)
    sides = []
    for e in (ef, eg):
        program = compile_program(e)
        columns = [names.index(v) for v in program.variables]
        sub = rows[:, columns]
        sides.append((e, program, columns, sub, sweep(program, sub), run(host.engine, program, [tuple(r) for r in sub])))
    _stats["examples"] += 1
    compared = 0
    for p in range(rows.shape[0]):
        if not all(s[4].clean[p] for s in sides):
            continue  # a relation holds where both sides are defined, away from kinks
        compared += 1
        problem = _relation_problem(sides, p, names)
        if problem is not None:
            what, difference, allowed = problem
            summary = f"f = {_short(str(ef), 80)} and g = {_short(str(eg), 80)} differ in {what} at {format_point(names, rows[p])}"
            raise GradientMismatch(summary, details=lambda: _relation_failure(host, sides, p, names, problem))
    return compared


def _relation_problem(sides: list, p: int, names: tuple[str, ...]) -> tuple[str, float, float] | None:
    """``(what, difference, allowed)`` of the first disagreement at point ``p``."""
    answers = []
    for e, program, columns, sub, ref, outcomes in sides:
        outcome = outcomes[p]
        if outcome.status != "ok":
            return (f"{_short(str(e), 60)} raised: {outcome.error}" if outcome.status == "exception"
                    else f"{_short(str(e), 60)}: {outcome.error}", math.inf, 0.0)
        value, grads = _split_outcome(outcome, columns, len(names))
        floors = [0.0] * len(names)
        for k, c in enumerate(columns):
            floors[c] = float(ref.gradient_floor[p, k])
        answers.append((value, grads, float(ref.value_floor[p]), floors))
    (vf, gf, ff, gff), (vg, gg, fg, gfg) = answers
    allowed = PASS * (ff + fg)
    if not (_finite(vf) and _finite(vg) and abs(vf - vg) <= allowed):
        return ("value", abs(vf - vg) if _finite(vf) and _finite(vg) else math.inf, allowed)
    for k, name in enumerate(names):
        allowed = PASS * (gff[k] + gfg[k])
        a, b = gf[k], gg[k]
        if not (_finite(a) and _finite(b) and abs(a - b) <= allowed):
            return (f"d/d{name}", abs(a - b) if _finite(a) and _finite(b) else math.inf, allowed)
    return None


def _relation_failure(host: InProcess, sides: list, p: int, names: tuple[str, ...], problem: tuple[str, float, float]) -> tuple[str, Finding | None]:
    what, difference, allowed = problem
    (ef, pf, cf, sf, rf, of), (eg, pg, cg, sg, rg, og) = sides
    header = ["", "value", *[f"d/d{n}" for n in names[:MAX_COLUMNS]]]
    table = [header]
    for label, outcome, columns in (("f (engine)", of[p], cf), ("g (engine)", og[p], cg)):
        if outcome.status != "ok":
            table.append([label, _short(f"{outcome.status}: {outcome.error}", 80)] + ["-"] * (len(header) - 2))
            continue
        value, grads = _split_outcome(outcome, columns, len(names))
        table.append([label, _number(value), *[_number(x) for x in grads[:MAX_COLUMNS]]])
    if what.startswith("d/d") or what == "value":
        message = f"f and g should be the same function, but the engine's {what} differs by {difference:.3g} (float64 noise allows {allowed:.2g})"
    else:
        message = f"f and g should be the same function, but {what}"
    lines = [message]
    lines += _grid([["f", _short(str(ef))], ["g", _short(str(eg))], ["point", format_point(names, _point_at(sides, p, names))]])
    lines += _grid(table)
    # Which side is wrong? The exact reference decides, and names the op.
    finding = None
    for label, e, program, sub in (("f", ef, pf, sf), ("g", eg, pg, sg)):
        report = judge_case(host, program, sub[p:p + 1], oracles=False)
        if report.error is not None:
            finding = build_finding(host, program, sub[p])
            if finding is not None:
                lines.append(f"the judge finds {label} wrong against the exact reference:")
                lines += ["  " + line for line in format_finding(finding, engine=host.name).splitlines()]
                break
    if finding is None:
        lines.append("  blame        neither side is wrong alone against the exact reference "
                     "(state kept between calls, or rounding beyond float64 noise on both sides)")
    return "\n".join(lines), finding


def _point_at(sides: list, p: int, names: tuple[str, ...]) -> list[float]:
    """The full point ``p`` over ``names``, from the sides' columns."""
    point = [0.0] * len(names)
    for _, _, columns, sub, _, _ in sides:
        for k, c in enumerate(columns):
            point[c] = float(sub[p, k])
    return point

