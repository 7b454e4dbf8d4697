"""Every oracle at second order and in forward mode, for a finding's card and for
:func:`verifier.compare` with ``order=2``.

Beside the exact Hessian (:mod:`verifier.second_order`): the engine's own
(``backward(create_graph=True)``), SymPy's second derivatives of the whole
expression evaluated in float64, torch's double backward, and central differences
of the exact gradient with their error estimate. In forward mode: the engine's
tangents beside the exact gradient and beside its own reverse-mode gradient.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> section = hessian_section(None, compile_program(parse("x * x * y")), (3.0, 2.0))
    >>> section["exact"], section["rows"]["torch"]
    ([[4.0, 6.0], [6.0, 0.0]], [[4.0, 6.0], [6.0, 0.0]])
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import mpmath
import numpy as np

from verifier import torch_oracle
from verifier.expr import Program, from_program
from verifier.evidence import build_finding
from verifier.findings import Finding, jsonable
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import Verdict, worst
from verifier.reference import exact, truth_at
from verifier.run_engine import describe_error
from verifier.second_blame import blame_higher
from verifier.second_order import HessianReference, hessian_at

__all__ = ["hessian_section", "jvp_section", "with_section", "higher_finding", "ORACLES"]

ORACLES = ("engine", "sympy", "torch", "differences")
STEP = 2.0**-24  # relative step of the differences: the exact gradient (25 digits) has no noise to amplify


def _engine(host: Any, program: Program, point: Sequence[float], **ask: Any) -> tuple[Any, str]:
    if host is None:
        return None, ""
    try:
        return host.run(program, [point], **ask)[0], ""
    except (EngineCrash, EngineTimeout) as error:
        return None, str(error)


def _sympy(program: Program, point: Sequence[float]) -> list[list[float]]:
    """SymPy's Hessian of the whole expression, evaluated in float64."""
    import sympy

    from verifier.local import NUMPY_MODULES
    from verifier.printing import to_sympy

    symbols = {name: sympy.Symbol(name, real=True) for name in program.variables}
    f = to_sympy(from_program(program), symbols)
    ordered = [symbols[name] for name in program.variables]
    function = sympy.lambdify(ordered, sympy.hessian(f, ordered), modules=NUMPY_MODULES)
    with np.errstate(all="ignore"):
        return np.asarray(function(*(float(x) for x in point)), dtype=float).tolist()


def _differences(program: Program, point: Sequence[float]) -> tuple[list[list[float]], list[list[float]]]:
    """Central differences of the exact gradient, column by column, and their error
    estimate (the gap to the same differences at twice the step)."""
    n = len(point)
    columns, estimates = [], []
    for j in range(n):
        def slope(step: float) -> list[float]:
            h = step * max(1.0, abs(point[j]))
            up, down = list(point), list(point)
            up[j], down[j] = point[j] + h, point[j] - h
            # The exact gradients at 25 digits, differenced in mpmath: only the
            # truncation error of the differences is left.
            g_up = exact(program, up, classify=False).exact_gradient
            g_down = exact(program, down, classify=False).exact_gradient
            with mpmath.workdps(40):
                width = mpmath.mpf(up[j]) - mpmath.mpf(down[j])
                return [float((mpmath.mpf(a) - mpmath.mpf(b)) / width) if a != "undefined" and b != "undefined" else math.nan
                        for a, b in zip(g_up, g_down)]

        near, far = slope(STEP), slope(2 * STEP)
        columns.append(near)
        estimates.append([abs(a - b) for a, b in zip(near, far)])
    # Column j differentiates along x_j: entry [i][j] is d/dx_j of partial i.
    return [[columns[j][i] for j in range(n)] for i in range(n)], [[estimates[j][i] for j in range(n)] for i in range(n)]


def hessian_section(host: Any, program: Program, point: Sequence[float], entry: tuple[int, int] | None = None, *,
                    ref: HessianReference | None = None, outcome: Any = None) -> dict[str, Any]:
    """The ``hessian`` section of a finding: the exact Hessian (``ref``, computed if
    not given) and every oracle's, the engine's from ``outcome`` if it was already
    run at order 2; ``entry`` is the one judged wrong."""
    ref = ref if ref is not None else hessian_at(program, point)
    rows: dict[str, Any] = dict.fromkeys(ORACLES)
    errors = dict.fromkeys(ORACLES, "")
    if outcome is None:
        outcome, errors["engine"] = _engine(host, program, point, order=2)
    if outcome is not None:
        rows["engine"] = None if outcome.hessian is None else [list(r) for r in outcome.hessian]
        errors["engine"] = outcome.hessian_error or outcome.error
    estimate = None
    for name, oracle in (("sympy", _sympy), ("torch", lambda p, x: [list(r) for r in torch_oracle.hessian(p, x)]),
                         ("differences", _differences)):
        try:
            answer = oracle(program, point)
        except Exception as error:  # noqa: BLE001 - an oracle that cannot answer says why
            errors[name] = describe_error(error)
            continue
        if name == "differences":
            answer, estimate = answer
        rows[name] = answer
    return jsonable({
        "variables": list(program.variables), "entry": list(entry) if entry else None,
        "exact": [list(r) for r in ref.hessian], "exact_text": [list(r) for r in ref.exact_text],
        "floor": [list(r) for r in ref.floor], "status": [list(r) for r in ref.entry_status],
        "rows": rows, "errors": errors, "differences_error": estimate,
    })


def jvp_section(host: Any, program: Program, point: Sequence[float], entry: int | None = None) -> dict[str, Any]:
    """The ``jvp`` section of a finding: forward-mode partials beside the exact ones
    and beside the engine's own reverse-mode gradient."""
    truth = truth_at(program, point)
    outcome, error = _engine(host, program, point, forward=True)
    return jsonable({
        "variables": list(program.variables), "entry": entry,
        "exact": list(truth.gradient), "exact_text": list(truth.exact_gradient),
        "floor": list(truth.gradient_floor), "status": list(truth.gradient_status),
        "engine": None if outcome is None or outcome.tangents is None else list(outcome.tangents),
        "vjp": None if outcome is None or outcome.gradient is None else list(outcome.gradient),
        "error": error or (outcome.tangent_error if outcome is not None else ""),
    })


def higher_finding(host: Any, program: Program, point: Sequence[float], verdicts: Sequence[Verdict],
                   node_values: Sequence[Any]) -> Finding | None:
    """The full finding for second-order or forward-mode ``verdicts`` at ``point``:
    blamed (``node_values``: the exact ones there) and with its section."""
    kind = worst(list(verdicts)).kind
    blame = blame_higher(host, program, point, kind, node_values)
    finding = build_finding(host, program, point, blame=blame, verdicts=verdicts)
    return with_section(host, program, point, finding, verdicts) if finding is not None else None


def with_section(host: Any, program: Program, point: Sequence[float], finding: Finding, verdicts: Sequence[Verdict]) -> Finding:
    """``finding`` (of kind ``hessian`` or ``jvp``) with its section filled in;
    ``verdicts`` are the ones it was built from (the wrong entry is theirs)."""
    chosen = worst(list(verdicts))
    variable = chosen.variable if chosen is not None else None
    # The first order's finite-difference sweep is not this finding's evidence: its table is.
    finding = replace(finding, steps=(), steps_variable=None)
    if finding.kind == "jvp":
        return replace(finding, jvp=jvp_section(host, program, point, variable))
    column = chosen.column if chosen is not None else None
    entry = (variable, column) if variable is not None and column is not None else None
    return replace(finding, hessian=hessian_section(host, program, point, entry))
