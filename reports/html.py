"""The HTML report: plain report data -> a view model -> one Jinja2 template.

Everything from the data reaches the page through the template's autoescaping
(engine names, error messages and expressions come from code under test and may
be hostile). The only markup that bypasses it is what this package builds
itself: the SVG figures (:mod:`reports.svg`, which escapes every text) and the
MathML rebuilt by the whitelist sanitizer (:mod:`reports.mathml`).

Example:
    >>> page = render({"engine": "engine:Value", "seed": 0, "examples": 5, "ops": ["add"],
    ...                "discrepancies": []})
    >>> "No discrepancies in 5 examples" in page
    True
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reports.mathml import sanitize_mathml
from reports.svg import MAX_GRAPH_NODES, as_real, format_error, format_value, graph_svg, step_plot_svg

__all__ = ["render", "environment", "CSP"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

ORACLES = {
    "reference": "exact derivative, 50 digits",
    "engine": "the engine under test",
    "sympy": "exact formula, float64",
    "torch": "torch float64 autograd",
    "numeric": "central differences",
}
STOPPED = {
    "time-budget": "the time budget ran out",
    "interrupted": "it was interrupted",
}

_ENVIRONMENT: Environment | None = None


def environment() -> Environment:
    """The Jinja2 environment: autoescaping on, undefined names are errors."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["value"] = format_value
        env.filters["err"] = format_error
        _ENVIRONMENT = env
    return _ENVIRONMENT


def render(report: Mapping[str, Any], *, json_path: str | None = None) -> str:
    """The whole page for ``report`` (a ``CampaignResult.to_dict()``)."""
    return environment().get_template("report.html.j2").render(page=_page(report, json_path))


# -- view model -------------------------------------------------------------------------

def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else []


def _dict(x: Any) -> dict:
    return dict(x) if isinstance(x, Mapping) else {}


def _py(x: Any) -> str:
    """A Python literal for the reproduction snippet."""
    if isinstance(x, str):
        if x in ("nan", "inf", "-inf"):
            return f'float("{x}")'
        return json.dumps(x)  # a JSON string is a valid Python string literal
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{_py(str(k))}: {_py(v)}" for k, v in x.items()) + "}"
    return repr(x)


def _page(report: Mapping[str, Any], json_path: str | None) -> dict[str, Any]:
    engine = str(report.get("engine", "?"))
    summary = _dict(report.get("summary"))
    examples = report.get("examples", 0)
    requested = report.get("examples_requested", examples)
    ids: set[str] = set()
    groups = {
        name: [_finding(f, engine, json_path, ids, n) for n, f in enumerate(_list(report.get(name)))]
        for name in ("discrepancies", "warnings", "oracle_findings")
    }
    errors, warnings, oracle = groups["discrepancies"], groups["warnings"], groups["oracle_findings"]
    if errors:
        kinds: dict[str, int] = {}
        for f in errors:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        detail = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + " — each with its blamed op and a reproducer below"
        verdict = ("error", _plural(len(errors), "error"),
                   detail + (f"; {_plural(len(warnings), 'warning')} too" if warnings else ""))
    elif warnings:
        verdict = ("warning", "Warnings only", f"{_plural(len(warnings), 'warning')}, no errors, in {examples} examples")
    else:
        verdict = ("ok", f"No discrepancies in {examples} examples", "every value and gradient agreed with the exact reference")
    stopped = str(report.get("stopped") or "completed")
    findings = errors + warnings + oracle
    by_op = []
    for row in _list(summary.get("by_op")):
        row = _dict(row)
        target = next((f for f in findings if f["op"] == str(row.get("op")) and f["kind"] == str(row.get("kind"))), None)
        by_op.append({
            "op": str(row.get("op", "")), "kind": str(row.get("kind", "")), "severity": str(row.get("severity", "")),
            "count": row.get("count", ""), "anchor": target["id"] if target else None,
        })
    facts = [
        ("engine", engine),
        ("ops tested", ", ".join(map(str, _list(report.get("ops")))) or "none"),
        ("ops missing", ", ".join(map(str, _list(report.get("ops_missing")))) or "none"),
        ("ops quarantined", ", ".join(map(str, _list(report.get("ops_quarantined"))))
         + " (crashes or hangs alone: not generated)" if _list(report.get("ops_quarantined")) else "none"),
        ("seed", format_value(report.get("seed"))),
        ("examples", f"{examples} of {requested} requested" if requested != examples else str(examples)),
    ]
    if report.get("duration_s") is not None:
        facts.append(("duration", f"{format_error(report.get('duration_s'))} s"
                      + (f" on {report.get('workers')} workers" if (report.get("workers") or 1) != 1 else "")))
    if summary.get("skipped_examples"):
        facts.append(("skipped", f"{summary.get('skipped_examples')} examples (they used a quarantined op)"))
    tool = _dict(report.get("tool"))
    return {
        "title": f"crossgrad report — {engine}",
        "engine": engine,
        "csp": CSP,
        "verdict": {"css": verdict[0], "text": verdict[1], "detail": verdict[2]},
        "stopped": None if stopped == "completed" else {
            "reason": STOPPED.get(stopped, stopped), "examples": examples, "requested": requested,
        },
        "facts": facts,
        "by_op": by_op,
        "conventions": [str(c) for c in _list(report.get("conventions"))],
        "points": [(str(k), v) for k, v in _dict(summary.get("points")).items()],
        "judged": _judged(_dict(summary.get("judged"))),
        "oracle_notes": [(str(k), v) for k, v in _dict(summary.get("oracle_notes")).items()],
        "errors": errors,
        "warnings": warnings,
        "oracle_findings": oracle,
        "index": findings,
        "settings": [(str(k), format_value(v)) for k, v in _dict(report.get("settings")).items()],
        "tool": f"{tool.get('name', 'crossgrad')} {tool.get('version', '')}".strip(),
        "schema": str(report.get("schema", "")),
        "json_path": json_path,
    }


# What each reason a quantity was not judged means, for the reader.
UNJUDGED_REASONS = {
    "outside-domain": "outside the domain (the value is undefined)",
    "ill-conditioned": "within float64 noise of a domain edge, or not linear in its noise",
    "undefined": "an infinite or undefined derivative on its path",
    "not-representable": "the exact quantity is beyond float64",
    "noise-beyond-float64": "no float64 computation of it can be trusted (an intermediate over- or underflows)",
}


def _judged(judged: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the "what was judged" table: values, then partial derivatives."""
    rows = []
    for key, label in (("values", "values"), ("partials", "partial derivatives")):
        counts = _dict(judged.get(key))
        if not counts:
            continue
        reasons = [(UNJUDGED_REASONS.get(str(k), str(k)), v) for k, v in counts.items() if k != "judged" and v]
        rows.append({"label": label, "judged": counts.get("judged", 0), "total": sum(v for v in counts.values() if isinstance(v, int)), "reasons": reasons})
    return rows


def _unique(base: str, ids: set[str]) -> str:
    anchor, n = base, 2
    while anchor in ids:
        anchor, n = f"{base}-{n}", n + 1
    ids.add(anchor)
    return anchor


def _finding(f: Mapping[str, Any], engine: str, json_path: str | None, ids: set[str], n: int) -> dict[str, Any]:
    blame = _dict(f.get("blame"))
    point = _dict(f.get("point"))
    variables = [str(v) for v in _list(f.get("variables"))] or [str(k) for k in point]
    variable = f.get("variable")
    anchor = _unique(str(f.get("id") or f"finding-{n + 1}"), ids)
    op = str(blame.get("op") or blame.get("backend") or "?")
    kind = str(f.get("kind", "?"))
    mathml = sanitize_mathml(f.get("mathml"))
    oracles = _dict(f.get("oracles"))
    reference = _dict(oracles.get("reference"))
    shown = f.get("steps_variable") or (variable if variable in variables else (variables[0] if variables else None))
    exact = None
    if shown is not None:
        gradient = _list(reference.get("gradient"))
        index = variables.index(shown)
        exact = gradient[index] if index < len(gradient) else None
    plot, plot_note = _plot(f, shown, exact, variables, anchor)
    graph_nodes = _list(f.get("graph"))
    graph = graph_svg(graph_nodes, id_prefix=anchor + "-graph") if graph_nodes else None
    form_point = _list(blame.get("form_point"))
    form_names = "abcdefgh"
    target = json_path or "findings.json"
    return {
        "id": anchor,
        "kind": kind,
        "op": op,
        "severity": str(f.get("severity", "")),
        "css": str(f.get("severity")) if f.get("severity") in ("error", "warning") else "other",
        "cause": str(f.get("cause", "")),
        "message": str(f.get("message", "")),
        "expression": str(f.get("expression", "")),
        "math": Markup(mathml) if mathml else None,
        "latex": str(f.get("latex") or ""),
        "point": [(str(k), format_value(v)) for k, v in point.items()],
        "status": str(f.get("status") or ""),
        "detail": str(f.get("detail") or ""),
        "blame": {
            "backend": str(blame.get("backend", "")),
            "op": blame.get("op"),
            "form": str(blame.get("form") or ""),
            "form_point": ", ".join(f"{form_names[i] if i < len(form_names) else i} = {format_value(x)}"
                                    for i, x in enumerate(form_point)),
            "reason": str(blame.get("reason") or ""),
            "node": blame.get("node"),
        },
        "variable": variable,
        "ratio": format_error(f.get("ratio")) if f.get("ratio") is not None else None,
        "convention": str(f.get("convention") or ""),
        "shrunk": bool(f.get("shrunk")),
        "original": str(f.get("original") or ""),
        "table": _oracle_table(f, oracles, variables, blame),
        "graph": Markup(graph) if graph else None,
        # The verifier leaves ``graph`` empty when the graph is too big to export.
        "graph_note": None if graph else (
            f"graph too large to draw ({len(graph_nodes)} nodes; the page draws at most {MAX_GRAPH_NODES})"
            if graph_nodes else "graph too large to draw"),
        "plot": Markup(plot) if plot else None,
        "plot_note": plot_note,
        "plot_variable": shown,
        "replay": f"verifier replay {shlex.quote(target)} --id {shlex.quote(str(f.get('id') or anchor))}",
        "python": "from verifier import compare\n"
                  f"print(compare({_py(str(f.get('expression', '')))}, {_py(point)}, engine={_py(engine)}))",
    }


def _plot(f: Mapping[str, Any], shown: str | None, exact: Any, variables: Sequence[str], anchor: str) -> tuple[str | None, str | None]:
    steps = [row for row in _list(f.get("steps")) if isinstance(row, (list, tuple))]
    if not steps or shown is None:
        return None, "No finite-difference sweep: the value or gradient is not defined at this point."
    real = as_real(exact)
    if real is None or real != real or real in (float("inf"), float("-inf")):
        return None, "No finite exact partial derivative to measure the differences against."
    engine = _dict(_dict(f.get("oracles")).get("engine"))
    errors = _list(engine.get("gradient_error"))
    index = variables.index(shown) if shown in variables else 0
    # The engine's error is only worth a line when its gradient is what is wrong.
    engine_error = errors[index] if f.get("kind") == "gradient" and index < len(errors) else None
    floor = _dict(f.get("gradient_floor")).get(shown)
    svg = step_plot_svg(steps, exact, variable=shown, engine_error=engine_error, floor=floor, id_prefix=anchor + "-plot")
    if svg is None:
        return None, "Every difference is exact or not finite: nothing to draw on a log scale."
    return svg, None


def _cell(value: Any, error: Any, floor: Any, *, estimate: Any = None, outlier: bool = False) -> dict[str, Any]:
    e, fl = as_real(error), as_real(floor)
    above = e is not None and fl is not None and e == e and fl == fl and e > fl
    return {
        "text": format_value(value),
        "error": None if error is None else format_error(error),
        "estimate": None if estimate is None else format_error(estimate),
        "outlier": outlier,
        "above": above,
    }


def _oracle_table(f: Mapping[str, Any], oracles: Mapping[str, Any], variables: Sequence[str], blame: Mapping[str, Any]) -> dict[str, Any]:
    names = [n for n in ORACLES if n in oracles] + [str(n) for n in oracles if n not in ORACLES]
    blamed = str(blame.get("backend") or "engine")
    kind = f.get("kind")
    variable = f.get("variable")
    value_floor = f.get("value_floor")
    floors = _dict(f.get("gradient_floor"))
    rows = []
    for name in names:
        o = _dict(oracles.get(name))
        is_blamed = name == blamed
        gradient = _list(o.get("gradient"))
        errors = _list(o.get("gradient_error"))
        estimates = _list(o.get("estimate"))
        status = str(o.get("status", ""))
        value_cell = _cell(o.get("value"), o.get("value_error"), value_floor, outlier=is_blamed and kind == "value")
        cells = [value_cell]
        for i, v in enumerate(variables):
            cell = _cell(
                gradient[i] if i < len(gradient) else None,
                errors[i] if i < len(errors) else None,
                floors.get(v),
                estimate=estimates[i] if i < len(estimates) else None,
                outlier=is_blamed and kind == "gradient" and variable in (v, None),
            )
            cells.append(cell)
        for cell in cells:
            # In the blamed row, anything over its noise floor is part of the story.
            cell["outlier"] = cell["outlier"] or (is_blamed and cell["above"])
        rows.append({
            "name": name,
            "note": ORACLES.get(name, ""),
            "status": status,
            "status_bad": status not in ("ok", ""),
            "status_outlier": is_blamed and status not in ("ok", ""),
            "error": str(o.get("error") or ""),
            "cells": cells,
            "blamed": is_blamed,
        })
    return {
        "columns": ["value"] + [f"∂/∂{v}" for v in variables],
        "rows": rows,
        "floors": [format_error(value_floor)] + [format_error(floors.get(v)) for v in variables],
    }
