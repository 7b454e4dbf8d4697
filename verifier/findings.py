"""Results as frozen dataclasses, and their plain-data (JSON-ready) form.

``reports`` consumes only the dictionaries made by ``to_dict``: numbers that JSON
cannot hold are written as strings (``"nan"``, ``"inf"``, ``"-inf"``, complex as
``"(1+2j)"``).

Example:
    >>> Blame("engine", "tanh", "tanh(a)", "wrong alone").to_dict()["op"]
    'tanh'
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

__all__ = ["OracleReport", "Blame", "GraphNode", "Finding", "jsonable", "oracles_dict", "SEVERITIES"]

SEVERITIES = ("error", "warning")


def jsonable(x: Any) -> Any:
    """Plain data for JSON: non-finite floats and complex numbers become strings."""
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, complex):
        return repr(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


@dataclass(frozen=True)
class OracleReport:
    """One oracle's answer at one point.

    Attributes:
        name: ``engine``, ``sympy`` (exact derivatives in float64), ``torch``,
            ``numeric`` (central differences) or ``reference`` (exact, 50 digits).
        status: ``ok``, ``exception``, ``invalid``, ``crash``, ``timeout``, ``skipped``
            or ``undefined``.
        value, gradient: the answer (gradient in the order of the variables).
        error: the exception or problem, one line.
        value_error, gradient_error: absolute errors against the reference.
        estimate: the oracle's own error estimate per variable (numeric only).
    """

    name: str
    status: str
    value: float | complex | None = None
    gradient: tuple[Any, ...] | None = None
    error: str = ""
    value_error: float | None = None
    gradient_error: tuple[float | None, ...] | None = None
    estimate: tuple[float, ...] | None = None


def oracles_dict(oracles: tuple[OracleReport, ...]) -> dict[str, dict[str, Any]]:
    """``{name: {status, value, gradient, ...}}``: the JSON form of oracle reports."""
    return {o.name: {k: v for k, v in jsonable(o).items() if k != "name"} for o in oracles}


@dataclass(frozen=True)
class Blame:
    """Who is at fault.

    Attributes:
        backend: the oracle at fault (``engine`` for engine findings).
        op: the op whose local behaviour is wrong, ``"backward"`` when every op is
            right alone (traversal order, accumulation), or None if unknown.
        form: the op as it was checked alone, e.g. ``"3 - a"`` (a number on the left
            exercises ``__rsub__``) or ``"a * a"`` (a shared argument).
        reason: how the blame was established.
        node: the graph node blamed.
        form_point: the values of the variables of ``form`` (a, then b) where it fails.
    """

    backend: str
    op: str | None
    form: str = ""
    reason: str = ""
    node: int | None = None
    form_point: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)


@dataclass(frozen=True)
class GraphNode:
    """A node of the expression graph as shown in reports."""

    id: int
    op: str
    label: str
    args: tuple[int, ...]
    value: float | None
    engine_value: float | complex | None
    engine_grad: float | complex | None
    blamed: bool = False
    grad: float | None = None  # the exact adjoint (the engine's is engine_grad)


@dataclass(frozen=True)
class Finding:
    """One discrepancy, shrunk and blamed.

    Attributes:
        kind: ``value``, ``gradient``, ``exception``, ``invalid``, ``crash``, ``timeout``,
            ``hessian`` (second order), ``jvp`` (forward mode) or ``nondeterministic`` (the same case answered two ways: both answers in
            ``extra["answers"]``).
        severity: ``error`` or ``warning``.
        cause: ``engine``, ``precision``, ``domain``, ``oracle`` or ``unstable``
            (right at ordinary inputs, broken at extreme ones: see :mod:`verifier.stability`).
        message: one labelled sentence.
        expression: the (shrunk) expression in the parser's syntax.
        variables, point: where it shows (``point[i]`` is ``variables[i]``).
        status, detail: the point's class (``defined``, ``kink``, ...) and why.
        blame: who is at fault.
        oracles: every oracle's answer, the reference first.
        value_floor, gradient_floor: the float64 noise floors used.
        variable: the partial concerned, if any.
        ratio: error over noise floor.
        graph: the computation graph with the blamed node marked.
        steps: ``(h, forward, central)`` differences of the partial
            ``steps_variable``, for the error-versus-step plot.
        steps_variable: the variable of ``steps`` (the partial concerned, or the
            first variable).
        mathml, latex: the expression typeset.
        shrunk: whether Hypothesis shrank it (crashes and hangs are reduced by
            checking ops alone instead).
        original: the expression before shrinking.
        convention: conventions seen at kinks, e.g. ``relu'(0) = 0``.
        hessian: for a ``hessian`` finding, the Hessian of every oracle beside the
            exact one (see :mod:`verifier.second_evidence`).
        jvp: for a ``jvp`` finding, the engine's forward-mode partials beside the
            exact ones and its own reverse-mode gradient.
    """

    kind: str
    severity: str
    cause: str
    message: str
    expression: str
    variables: tuple[str, ...]
    point: tuple[float, ...]
    status: str
    detail: str
    blame: Blame
    oracles: tuple[OracleReport, ...] = ()
    value_floor: float | None = None
    gradient_floor: tuple[float, ...] | None = None
    variable: str | None = None
    ratio: float | None = None
    graph: tuple[GraphNode, ...] = ()
    steps: tuple[tuple[float, float, float], ...] = ()
    steps_variable: str | None = None
    mathml: str = ""
    latex: str = ""
    shrunk: bool = False
    original: str = ""
    convention: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    hessian: dict[str, Any] | None = None
    jvp: dict[str, Any] | None = None

    @property
    def signature(self) -> tuple[str, str, str | None]:
        """What makes two findings "the same bug": kind, backend and op."""
        return (self.kind, self.blame.backend, self.blame.op)

    @property
    def id(self) -> str:
        """A short stable id, from the signature and the expression."""
        text = "|".join(map(str, self.signature)) + "|" + self.expression + "|" + repr(self.point)
        return "F" + hashlib.sha1(text.encode()).hexdigest()[:8]

    def __repr__(self) -> str:
        """One line: id, severity, kind, op at fault, expression and point, message.

        Example:
            >>> f = Finding("gradient", "error", "engine", "d/dx0 is 0.4, exact -0.4", "cos(x0)", ("x0",), (1.0,),
            ...             "defined", "", Blame("engine", "cos"))
            >>> f
            <Finding F96ddc672 error gradient · cos: cos(x0) at x0=1.0 — d/dx0 is 0.4, exact -0.4>
        """
        where = ", ".join(f"{name}={x!r}" for name, x in zip(self.variables, self.point))
        return (f"<Finding {self.id} {self.severity} {self.kind} · {self.blame.op or self.blame.backend}: "
                f"{_clip(self.expression, 80)} at {where} — {_clip(self.message, 120)}>")

    def _repr_html_(self) -> str:
        """The finding's card, as the HTML report shows it."""
        from verifier.display import finding_html

        return finding_html(self.to_dict(), repr(self))

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain data (the JSON report's ``discrepancies`` items)."""
        data = jsonable(asdict(self))
        data["point"] = {name: jsonable(x) for name, x in zip(self.variables, self.point)}
        data["id"] = self.id
        data["blame"] = self.blame.to_dict()
        data["oracles"] = oracles_dict(self.oracles)
        if self.gradient_floor is not None:
            data["gradient_floor"] = {name: jsonable(x) for name, x in zip(self.variables, self.gradient_floor)}
        return data


def _clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
