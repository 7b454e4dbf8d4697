"""``compare``: one expression, one point, every oracle side by side.

Example:
    >>> c = compare("-a**3 + sin(3*b) - 1/c + b**2.5 - a**0.5", {"a": 2, "b": 3, "c": 4})
    >>> c.verdict
    'agree'
    >>> [round(g, 12) for g in c.gradient("engine")]
    [-12.353553390593, 10.256990271113, 0.0625]
"""

from __future__ import annotations

import inspect
import math
import textwrap
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, Callable, Mapping

from verifier.evidence import build_finding, engine_outcome, kink_conventions, oracle_reports
from verifier.expr import Expr, compile_program, var
from verifier.findings import Finding, OracleReport, jsonable, oracles_dict
from verifier.hosts import InProcess, open_host
from verifier.judge import PASS, Verdict, format_number, format_point, judge_oracle, judge_point, worst
from verifier.loader import load_engine
from verifier.parsing import parse
from verifier.printing import to_string
from verifier.reference import PointReference, truth_at
from verifier.second_evidence import hessian_section, higher_finding
from verifier.second_order import Checks, cannot, entry_label, hessian_at, judge_hessian

__all__ = ["Comparison", "compare", "as_expression"]


def as_expression(expr: str | Expr | Callable[..., Any]) -> Expr:
    """A string (parsed), an Expr, or a Python function of Value-like arguments
    (traced by calling it with variables named after its parameters)."""
    if isinstance(expr, Expr):
        return expr
    if isinstance(expr, str):
        return parse(expr)
    if callable(expr):
        names = list(inspect.signature(expr).parameters)
        if not names:
            raise ValueError("the function to trace takes no arguments; expected f(x0, x1, ...)")
        try:
            result = expr(*(var(n) for n in names))
        except TypeError as error:
            raise TypeError(f"tracing {getattr(expr, '__name__', 'the function')} failed: {error} "
                            "(use only + - * / ** number and the methods exp, log, tanh, relu, sigmoid, sin, cos, sqrt)") from None
        if not isinstance(result, Expr):
            raise TypeError(f"the traced function returned {type(result).__name__}, not an expression of its arguments")
        return result
    raise TypeError(f"expected an expression string, an Expr or a function, got {type(expr).__name__}")


def _point(expr: Expr, point: Mapping[str, float]) -> tuple[float, ...]:
    if not isinstance(point, Mapping):
        raise TypeError(f"point must be a mapping of variable to number, got {type(point).__name__}")
    missing = [v for v in expr.variables if v not in point]
    if missing:
        raise ValueError(f"point has no value for {', '.join(missing)} (expected values for {', '.join(expr.variables)})")
    extra = [k for k in point if k not in expr.variables]
    if extra:
        raise ValueError(f"point gives {', '.join(map(str, extra))}, which the expression does not use (it uses {', '.join(expr.variables)})")
    values = []
    for name in expr.variables:
        x = point[name]
        if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)):
            raise ValueError(f"point[{name!r}]={x!r}: expected a finite real number")
        values.append(float(x))
    return tuple(values)


@dataclass(frozen=True)
class Comparison:
    """Every oracle's value and gradient at one point, against the exact reference.

    Attributes:
        expression, variables, point: what was compared (point in variable order).
        status, detail: the point's class (``defined``, ``kink``, ``outside-domain``...).
        reference: the exact reference (see :class:`verifier.reference.PointReference`).
        oracles: reference, engine, sympy (float64), torch and numeric answers.
        verdicts: every disagreement found, engine and oracles alike.
        findings: the engine's disagreements as full findings (with blame).
        convention: conventions seen at kinks (``relu'(0) = 0``).
        engine: the engine compared (its target, for the cards' reproducers), or
            "" when it was left out.
        hessian: with ``order=2``, the exact Hessian and every oracle's (see
            :func:`verifier.second_evidence.hessian_section`).
    """

    expression: str
    variables: tuple[str, ...]
    point: tuple[float, ...]
    status: str
    detail: str
    reference: PointReference
    oracles: tuple[OracleReport, ...]
    verdicts: tuple[Verdict, ...]
    findings: tuple[Finding, ...]
    convention: str = ""
    engine: str = ""
    hessian: dict[str, Any] | None = None

    @property
    def verdict(self) -> str:
        """``agree``, ``disagree`` (an error), ``warning`` or ``undefined``."""
        if any(v.severity == "error" for v in self.verdicts):
            return "disagree"
        if self.verdicts:
            return "warning"
        return "agree" if self.reference.value_judged else "undefined"

    def oracle(self, name: str) -> OracleReport:
        for report in self.oracles:
            if report.name == name:
                return report
        raise KeyError(f"no oracle {name!r}; have {', '.join(o.name for o in self.oracles)}")

    def gradient(self, oracle: str = "reference") -> tuple[Any, ...]:
        """One oracle's gradient, in the order of :attr:`variables`."""
        return self.oracle(oracle).gradient or ()

    def rows(self) -> list[list[str]]:
        """The comparison as a table: a header row, then one row per oracle."""
        header = ["oracle", "value"] + [f"d/d{v}" for v in self.variables]
        rows = [header]
        for o in self.oracles:
            cells = [o.name, _cell(o.value, o.value_error)]
            grads = o.gradient or (None,) * len(self.variables)
            errors = o.gradient_error or (None,) * len(self.variables)
            estimates = o.estimate or (None,) * len(self.variables)
            for g, e, est in zip(grads, errors, estimates):
                cells.append(_cell(g, e, est))
            if o.status not in ("ok",):
                cells[1] = f"{o.status}: {o.error}" if o.error else o.status
            rows.append(cells)
        rows.append(["noise floor", _short(self.reference.value_floor)] + [_short(f) for f in self.reference.gradient_floor])
        return rows

    def hessian_rows(self) -> list[list[str]]:
        """The Hessian as a table: a row per entry (the upper triangle; every entry
        is judged), a column per oracle; empty without ``order=2``."""
        if self.hessian is None:
            return []
        h = self.hessian
        names = [name for name in ("engine", "sympy", "torch", "differences") if h["rows"].get(name) is not None]
        rows = [["entry", "exact"] + names + ["noise floor"]]
        n = len(self.variables)
        for i in range(n):
            for j in range(i, n):
                label = entry_label(self.variables, i, j)
                judged = h["status"][i][j] == "judged"
                exact = h["exact_text"][i][j] if judged else f"{h['exact_text'][i][j]} ({h['status'][i][j]})"
                estimate = h["differences_error"]
                rows.append([label, exact] + [_cell(h["rows"][name][i][j], _gap(h["rows"][name][i][j], h["exact"][i][j]) if judged else None,
                                                    estimate[i][j] if name == "differences" and estimate else None)
                                              for name in names] + [_short(h["floor"][i][j])])
        return rows

    def blame_lines(self) -> list[str]:
        """``blame: tanh (how the blame was established)``, one per engine finding."""
        return [f"blame: {f.blame.op or f.blame.backend} ({f.blame.reason})" if f.blame.reason
                else f"blame: {f.blame.op or f.blame.backend}" for f in self.findings]

    def text(self, width: int | None = 80) -> str:
        """The comparison as text at most ``width`` columns wide (None: no limit):
        a table with a column per quantity if it fits, else a block per quantity
        (value, then each partial) with a line per oracle. Long lines wrap.

        Example:
            >>> c = compare("x0 * x0", {"x0": 3})
            >>> print(c.text(width=None).splitlines()[1])
            oracle       value      d/dx0
            >>> print(c.text(width=40).splitlines()[1])
            value   (noise floor 4e-15)
            >>> max(len(line) for line in c.text(width=40).splitlines()) <= 40
            True
        """
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        table = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if width is not None and max(map(len, table)) > width:
            table = _stacked(rows)
        lines = [f"{self.expression}   at {format_point(self.variables, self.point)}   ({self.status}{': ' + self.detail if self.detail else ''})"]
        lines += table
        hessian = self.hessian_rows()
        if hessian:
            widths = [max(len(r[i]) for r in hessian) for i in range(len(hessian[0]))]
            grid = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in hessian]
            if width is not None and max(map(len, grid)) > width:
                grid = _stacked([list(column) for column in zip(*hessian)])  # a block per entry
            lines.append("Hessian")
            lines += grid
            lines += [f"{name} could not answer: {error}" for name, error in self.hessian["errors"].items() if error]
        lines.append(f"verdict: {self.verdict}")
        lines += [f"  - {v.message}" for v in self.verdicts]
        if self.convention:
            lines.append(f"convention: {self.convention}")
        lines += self.blame_lines()
        return "\n".join(_wrap(line, width) for line in lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        """One line: the verdict, what was compared, and the op blamed.

        Example:
            >>> compare("x0 * x0", {"x0": 3})
            <Comparison agree: x0 * x0 at x0=3 (defined)>
        """
        blamed = ", ".join(dict.fromkeys(f"{f.blame.op or f.blame.backend}" for f in self.findings))
        return (f"<Comparison {self.verdict}: {self.expression} at {format_point(self.variables, self.point)} "
                f"({self.status}){'; blame: ' + blamed if blamed else ''}>")

    def _repr_markdown_(self) -> str:
        out = [f"`{self.expression}` at `{format_point(self.variables, self.point)}` — **{self.verdict}** ({self.status})", ""]
        out += _markdown(self.rows())
        hessian = self.hessian_rows()
        if hessian:
            out += ["", "Hessian", ""] + _markdown(hessian)
        out += [f"- {v.message}" for v in self.verdicts]
        if self.convention:
            out.append(f"- convention: {self.convention}")
        out += [f"- {line}" for line in self.blame_lines()]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        """The oracle table, the verdict and blame, then each engine finding's card
        (as the HTML report shows it)."""
        from verifier.display import comparison_html

        head = f"{self.expression} at {format_point(self.variables, self.point)}: {self.verdict} ({self.status})"
        tail = [v.message for v in self.verdicts] + ([f"convention: {self.convention}"] if self.convention else [])
        return comparison_html(self.rows(), head, tail + self.blame_lines(), [(f.to_dict(), repr(f)) for f in self.findings],
                               engine=self.engine or None, more=[("Hessian", self.hessian_rows())])

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "expression": self.expression,
            "point": dict(zip(self.variables, self.point)),
            "status": self.status, "detail": self.detail, "verdict": self.verdict,
            "oracles": oracles_dict(self.oracles),
            "value_floor": self.reference.value_floor,
            "gradient_floor": dict(zip(self.variables, self.reference.gradient_floor)),
            "verdicts": [{"kind": v.kind, "severity": v.severity, "cause": v.cause, "message": v.message} for v in self.verdicts],
            "findings": [f.to_dict() for f in self.findings],
            "convention": self.convention,
            "hessian": self.hessian,
        })


def _markdown(rows: list[list[str]]) -> list[str]:
    """A header row and body rows as a Markdown table (``|`` in a cell escaped)."""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return out + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]


def _stacked(rows: list[list[str]]) -> list[str]:
    """The table of :meth:`Comparison.rows` as a block per quantity (value, d/dx0,
    ...), each with a line per oracle, for narrow screens."""
    names = [r[0] for r in rows[1:-1]]
    pad = max(map(len, names))
    floors = rows[-1]
    lines = []
    for column, quantity in enumerate(rows[0][1:], start=1):
        lines.append(f"{quantity}   (noise floor {floors[column]})")
        lines += [f"  {name.ljust(pad)}  {row[column]}" for name, row in zip(names, rows[1:-1])]
    return lines


def _wrap(line: str, width: int | None) -> str:
    """``line`` wrapped at ``width`` (its indent, plus 4, for the lines after)."""
    if width is None or len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False)


def _short(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return format_number(x)
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _gap(x: Any, exact: Any) -> float | None:
    """|x - exact| where both are finite numbers."""
    finite = all(isinstance(v, float) and math.isfinite(v) for v in (x, exact))
    return abs(x - exact) if finite else None


def _cell(x: Any, error: float | None, estimate: float | None = None) -> str:
    if x is None:
        return "-"
    text = format_number(x) if not isinstance(x, complex) else str(x)
    if error is not None:
        text += f" (err {error:.2g})"
    if estimate is not None:
        text += f" (est {estimate:.2g})"
    return text


def compare(expr: str | Expr | Callable[..., Any], point: Mapping[str, float], *, engine: type | str | None | bool = None,
            timeout: float = 10.0, order: int = 1) -> Comparison:
    """Compare every oracle on ``expr`` at ``point``.

    Args:
        expr: an expression string (``"tanh(x0*x1) - 3/x1"``), an :class:`Expr`, or a
            Python function of Value-like arguments (traced).
        point: value of each variable, e.g. ``{"x0": 1.5, "x1": -2}``.
        engine: the engine class or ``module:Class`` target to include (default:
            the built-in ``engine.Value``); ``False`` leaves the engine out. Any
            engine but the built-in one runs in a sandbox process.
        timeout: seconds the engine may take before it counts as a hang.
        order: 2 also compares the Hessian: exact, the engine's
            (``backward(create_graph=True)``), SymPy's in float64, torch's double
            backward and central differences of the exact gradient.

    Returns:
        A frozen :class:`Comparison`; ``str()`` of it is a table, and it shows as
        one in Jupyter.
    """
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order={order!r}: expected 1 or 2")
    e = as_expression(expr)
    values = _point(e, point)
    program = compile_program(e)
    truth = truth_at(program, values)
    host = None
    if engine is None:
        host = InProcess(load_engine("engine:Value"))  # crossgrad's own engine: no sandbox needed
    elif engine is not False:
        # Anyone else's engine is untrusted code: a sandbox process, as in campaigns
        # (a class from a notebook is shipped there), so a hang is a finding.
        host = open_host(engine, timeout=timeout)
    try:
        comparison = _compare(e, values, program, truth, host)
        return _with_hessian(comparison, program, truth, host) if order == 2 else comparison
    finally:
        if host is not None:
            host.close()


def _compare(e: Expr, values: tuple[float, ...], program: Any, truth: Any, host: Any) -> Comparison:
    outcome, crash_kind, crash_message = engine_outcome(host, program, values) if host else (None, "", "")
    reports = oracle_reports(program, values, truth, outcome, (crash_kind, crash_message))
    verdicts: list[Verdict] = []
    if outcome is not None:
        verdicts += judge_point(truth, outcome, program.variables)
    for name in ("sympy", "torch"):
        o = next(r for r in reports if r.name == name)
        if truth.value_judged and o.gradient is not None:
            verdicts += [Verdict(v.kind, "warning", "oracle", v.message, v.variable, v.error, v.floor)
                         for v in judge_oracle(truth, o.value, o.gradient, program.variables, name)]
    numeric_report = next(r for r in reports if r.name == "numeric")
    if truth.gradient_judged and truth.status == "defined":
        for k, name in enumerate(program.variables):
            g, est = numeric_report.gradient[k], numeric_report.estimate[k]
            allowed = est + PASS * truth.gradient_floor[k]
            if not abs(g - truth.gradient[k]) <= allowed:
                verdicts.append(Verdict("gradient", "warning", "oracle", f"numeric d/d{name} is {format_number(g)}, exact {format_number(truth.gradient[k])}: finite differences broke down (estimate {est:.2g})", k))
    findings: tuple[Finding, ...] = ()
    if host is not None and any(v.severity == "error" for v in verdicts):
        finding = build_finding(host, program, values, crash=(crash_kind, crash_message) if crash_kind else None)
        findings = (finding,) if finding else ()
    convention = kink_conventions(host, program, truth) if host and truth.kink_nodes else ""
    return Comparison(to_string(e), program.variables, values, truth.status, truth.detail, truth, reports, tuple(verdicts), findings,
                      convention, host.name if host is not None else "")


def _with_hessian(comparison: Comparison, program: Any, truth: Any, host: Any) -> Comparison:
    """``comparison`` with the Hessian of every oracle, its engine verdicts and, for
    an error the first order did not already show, a blamed finding."""
    ref = hessian_at(program, comparison.point, truth)
    outcome = engine_outcome(host, program, comparison.point, order=2)[0] if host is not None else None
    section = hessian_section(host, program, comparison.point, ref=ref, outcome=outcome)
    # An engine that cannot differentiate twice says so in the table; it is not wrong.
    verdicts = judge_hessian(ref, outcome) if outcome is not None and not cannot(host, Checks(2))[0] else []
    findings = comparison.findings
    errors = [v for v in verdicts if v.severity == "error"]
    if errors and not findings:
        finding = higher_finding(host, program, comparison.point, errors, truth.node_values)
        findings = (finding,) if finding else ()
    worst_entry = worst(errors)
    if worst_entry is not None:
        section = {**section, "entry": [worst_entry.variable, worst_entry.column]}
    return replace(comparison, verdicts=comparison.verdicts + tuple(verdicts), findings=findings, hessian=section)
