"""The HTML report: plain report data -> a view model -> one Jinja2 template.

Everything from the data reaches the page through the template's autoescaping
(engine names, error messages and expressions come from code under test and may
be hostile). The only markup that bypasses it is what this package builds
itself: the SVG figures (:mod:`reports.svg`, which escapes every text) and the
MathML rebuilt by the whitelist sanitizer (:mod:`reports.mathml`), which is also
what a defined op's formula passes through once SymPy has printed the tree the
whitelist parser built from it (:mod:`reports.definitions`).

The page reads top down in the order a reader decides: the verdict naming the
ops at fault (:mod:`reports.verdict`), a strip of run facts, the findings (the
first card on the first screen), the ops defined from a formula when the run
used any (reference material, :mod:`reports.definitions`), then the summary tables. A finding's card
(``templates/card.html.j2``) is also rendered alone by :func:`finding_card`, and
the verdict by :func:`summary_fragment`, for notebooks: the CSS
(``templates/style.css``) is scoped under ``.cg`` so one stylesheet serves both.
A finding of kind ``hessian`` or ``jvp`` also gets its second-order or
forward-mode table under the claim (:mod:`reports.second_order`).

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

from reports.definitions import definition_views
from reports.mathml import sanitize_mathml
from reports.second_order import KINDS as SECOND_ORDER_KINDS
from reports.second_order import hessian_view, jvp_view
from reports.svg import (
    MAX_GRAPH_NODES,
    as_real,
    format_error,
    format_value,
    graph_svg,
    step_plot_svg,
)
from reports.verdict import BELOW, index_row, judged_rows, judged_short, verdict_banner

__all__ = ["render", "finding_card", "summary_fragment", "environment", "CSP"]

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


def finding_card(finding: Mapping[str, Any], *, engine: str = "engine:Value", json_path: str | None = None,
                 style: bool = True) -> str:
    """One finding's card as a self-contained HTML fragment (scoped inline CSS, no
    script, every text escaped): the card the page shows, for a notebook's
    ``_repr_html_``. Expression, point, the oracle table with the engine's wrong
    cells marked, blame, graph, plot and reproducer.

    Args:
        finding: one entry of a report's ``discrepancies``/``warnings``/``oracle_findings``.
        engine: the engine target, for the reproduction snippet.
        json_path: the JSON report's path, for the ``verifier replay`` line.
        style: include the ``<style>`` (False when the caller already showed
            one, e.g. under :func:`summary_fragment`: the rules are the same).

    Example:
        >>> card = finding_card({"kind": "value", "expression": "x0", "point": {"x0": 1.0},
        ...                      "blame": {"backend": "engine", "op": None}, "oracles": {},
        ...                      "severity": "error", "cause": "engine", "message": "<b>wrong</b>"})
        >>> card.startswith('<div class="cg cg-fragment">'), "&lt;b&gt;wrong&lt;/b&gt;" in card
        (True, True)
    """
    view = _finding(finding, engine, json_path, set(), 0)
    return environment().get_template("fragment.html.j2").render(card=view, summary=None, style=style).strip() + "\n"


def summary_fragment(report: Mapping[str, Any]) -> str:
    """A campaign's verdict (naming the ops at fault, and what was judged), its
    findings by op and an index of its findings, as a self-contained HTML fragment.

    Example:
        >>> html = summary_fragment({"engine": "e:V", "seed": 0, "examples": 3, "ops": [], "discrepancies": []})
        >>> "No discrepancies in 3 examples" in html
        True
    """
    page = _page(report, None)
    verdict = dict(page["verdict"], detail=page["verdict"]["detail"].replace(BELOW, ""))
    summary = {"verdict": verdict, "by_op": page["by_op"], "index": page["index"]}
    return environment().get_template("fragment.html.j2").render(card=None, summary=summary, style=True).strip() + "\n"


# -- view model -------------------------------------------------------------------------

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
    judged = _dict(summary.get("judged"))
    number_format = str(_dict(report.get("settings")).get("dtype") or "float64")
    verdict = verdict_banner(errors, warnings, oracle, examples, judged, str(report.get("nothing_judged") or ""), number_format)
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
    ops = [str(op) for op in _list(report.get("ops"))]
    facts = [
        ("engine", engine),
        ("ops tested", ", ".join(ops) or "none"),
        ("ops missing", ", ".join(map(str, _list(report.get("ops_missing")))) or "none"),
        ("ops quarantined", ", ".join(map(str, _list(report.get("ops_quarantined"))))
         + " (crashes or hangs alone: not generated)" if _list(report.get("ops_quarantined")) else "none"),
        ("seed", format_value(report.get("seed"))),
        ("examples", f"{examples} of {requested} requested" if requested != examples else str(examples)),
    ]
    # The strip at the top: the facts a reader needs before the first finding.
    strip = [("examples", facts[-1][1]), ("seed", facts[-2][1]), ("ops", f"{len(ops)} tested"
             + (f", {len(_list(report.get('ops_missing')))} missing" if _list(report.get("ops_missing")) else ""))]
    if report.get("duration_s") is not None:
        duration = f"{format_error(report.get('duration_s'))} s" + (
            f" on {report.get('workers')} workers" if (report.get("workers") or 1) != 1 else "")
        facts.append(("duration", duration))
        strip.append(("time", duration))
    if judged_short(judged) and (errors or warnings):  # a clean verdict says it in full
        strip.append(("judged", judged_short(judged)))
    if summary.get("skipped_examples"):
        facts.append(("skipped", f"{summary.get('skipped_examples')} examples (they used a quarantined op)"))
    tool = _dict(report.get("tool"))
    return {
        "title": f"crossgrad report — {engine}",
        "engine": engine,
        "csp": CSP,
        "verdict": verdict,
        "strip": strip,
        "stopped": None if stopped == "completed" else {
            "reason": STOPPED.get(stopped, stopped), "examples": examples, "requested": requested,
        },
        "facts": facts,
        "by_op": by_op,
        "conventions": [str(c) for c in _list(report.get("conventions"))],
        "definitions": definition_views(report),
        "points": [(str(k), v) for k, v in _dict(summary.get("points")).items()],
        "judged": judged_rows(judged, number_format),
        "oracle_notes": [(str(k), v) for k, v in _dict(summary.get("oracle_notes")).items()],
        "errors": errors,
        "warnings": warnings,
        "oracle_findings": oracle,
        "index": [index_row(f) for f in findings],
        "settings": [(str(k), format_value(v)) for k, v in _dict(report.get("settings")).items()],
        "tool": f"{tool.get('name', 'crossgrad')} {tool.get('version', '')}".strip(),
        "schema": str(report.get("schema", "")),
        "json_path": json_path,
    }


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
    if plot is None and kind in SECOND_ORDER_KINDS and not _list(f.get("steps")):
        plot_note = ("No finite-difference sweep for this finding: the differences are in the "
                     + ("Hessian" if kind == "hessian" else "forward-mode") + " table above.")
    engine_row = _dict(oracles.get("engine"))
    if plot is None and kind == "value" and engine_row:
        # No figure to carry the engine's line: say in words what it would show.
        plot_note = (f"{plot_note} The engine's value is {format_value(engine_row.get('value'))}, the exact one "
                     f"{format_value(reference.get('value'))}: error {format_error(engine_row.get('value_error'))}, "
                     f"where float64 allows {format_error(f.get('value_floor'))}.")
    graph_nodes = _list(f.get("graph"))
    grads = kind == "gradient"
    graph = graph_svg(_with_known_grads(graph_nodes, reference, variables) if grads else graph_nodes,
                      id_prefix=anchor + "-graph", grads=grads) if graph_nodes else None
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
        # Whatever else a producer attached (nondeterministic answers, a pytest
        # node id, ...), shown as short JSON text rather than dropped.
        "extra": [(str(k), _short_json(v)) for k, v in _dict(f.get("extra")).items()],
        "shrunk": bool(f.get("shrunk")),
        "original": str(f.get("original") or ""),
        "table": _oracle_table(f, oracles, variables, blame),
        # A second-order or forward-mode finding may come without first-order oracles:
        # then its own table is the evidence, and an empty oracle table is left out.
        "show_table": bool(oracles) or kind not in SECOND_ORDER_KINDS,
        "hessian": hessian_view(f.get("hessian"), variables, blame),
        "jvp": jvp_view(f.get("jvp"), variables, blame),
        "graph": Markup(graph) if graph else None,
        "graph_caption": ("exact values and gradients (d output / d node); the engine's where they differ; blamed op in red"
                          if grads else "exact values; engine values where they differ; blamed op in red"),
        # The verifier leaves ``graph`` empty when the graph is too big to export.
        "graph_note": None if graph else (
            f"graph too large to draw ({len(graph_nodes)} nodes; the page draws at most {MAX_GRAPH_NODES})"
            if graph_nodes else ("no graph recorded for this finding" if kind in SECOND_ORDER_KINDS
                                 else "graph too large to draw")),
        "plot": Markup(plot) if plot else None,
        "plot_note": plot_note,
        "plot_variable": shown,
        "replay": f"verifier replay {shlex.quote(target)} --id {shlex.quote(str(f.get('id') or anchor))}",
        "python": _reproducer(kind, str(f.get("expression", "")), point, engine),
    }


def _reproducer(kind: str, expression: str, point: Any, engine: Any) -> str:
    """The Python lines that show the finding again: compare() (at order 2 for a
    Hessian), or assert_tangents for forward mode."""
    if kind == "jvp":
        return ("from verifier import assert_tangents\n"
                f"assert_tangents({_py(expression)}, {_py(point)}, engine={_py(engine)})")
    order = ", order=2" if kind == "hessian" else ""
    return f"from verifier import compare\nprint(compare({_py(expression)}, {_py(point)}, engine={_py(engine)}{order}))"


def _short_json(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    # The engine's own line on every plot: beside the differences it says whether
    # the engine's partial is as good as float64 allows (a value finding's
    # gradient may be right or wrong too).
    engine_error = errors[index] if index < len(errors) else None
    notes = []
    if engine_error is None and engine:
        notes.append(f"engine ∂/∂{shown}: none ({engine.get('status') or 'no gradient'})")
    if f.get("kind") == "value" and engine.get("value_error") is not None:
        # The value's error has no place on a derivative's axis: named, with its floor.
        notes.append(f"engine value error {format_error(engine.get('value_error'))}"
                     f" (floor {format_error(f.get('value_floor'))}; not on this axis)")
    floor = _dict(f.get("gradient_floor")).get(shown)
    svg = step_plot_svg(steps, exact, variable=shown, engine_error=engine_error, floor=floor,
                        id_prefix=anchor + "-plot", engine_label=f"engine ∂/∂{shown} error", notes=notes)
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
        "bad": False,
        "status": False,
    }


def _with_known_grads(nodes: list, reference: Mapping[str, Any], variables: Sequence[str]) -> list:
    """The graph with the exact adjoints the report already knows filled in where a
    node lacks ``grad``: a variable's is the reference partial, the output's is 1.
    (Inner nodes need ``grad`` from the verifier; nothing is computed here.)"""
    gradient = _list(reference.get("gradient"))
    used = {a for n in nodes if isinstance(n, Mapping) for a in _list(n.get("args")) if isinstance(a, (int, str))}
    roots = [n for n in nodes if isinstance(n, Mapping) and isinstance(n.get("id"), (int, str)) and n.get("id") not in used]
    out = []
    for n in nodes:
        if isinstance(n, Mapping) and n.get("grad") is None:
            label = str(n.get("label"))
            if n.get("op") == "var" and label in variables and variables.index(label) < len(gradient):
                n = {**n, "grad": gradient[variables.index(label)]}
            elif len(roots) == 1 and n is roots[0]:
                n = {**n, "grad": 1.0}
        out.append(n)
    return out


def _oracle_table(f: Mapping[str, Any], oracles: Mapping[str, Any], variables: Sequence[str], blame: Mapping[str, Any]) -> dict[str, Any]:
    """Oracles by row; columns status, value, then one per partial, reordered so
    that the quantities where the blamed oracle is wrong come first: on a narrow
    screen the table scrolls sideways, and the evidence must not be what scrolls
    away. The status column only shows when some oracle's status is not ok."""
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
        status_cell = {"text": status, "error": None, "estimate": None, "above": False,
                       "outlier": is_blamed and status not in ("ok", ""), "bad": status not in ("ok", ""), "status": True}
        value_cell = _cell(o.get("value"), o.get("value_error"), value_floor, outlier=is_blamed and kind == "value")
        cells = [status_cell, value_cell]
        for i, v in enumerate(variables):
            cell = _cell(
                gradient[i] if i < len(gradient) else None,
                errors[i] if i < len(errors) else None,
                floors.get(v),
                estimate=estimates[i] if i < len(estimates) else None,
                outlier=is_blamed and kind == "gradient" and variable in (v, None),
            )
            cells.append(cell)
        for cell in cells[1:]:
            # In the blamed row, anything over its noise floor is part of the story.
            cell["outlier"] = cell["outlier"] or (is_blamed and cell["above"])
        rows.append({
            "name": name,
            "note": ORACLES.get(name, ""),
            "error": str(o.get("error") or ""),
            "cells": cells,
            "blamed": is_blamed,
        })
    columns = ["status", "value"] + [f"∂/∂{v}" for v in variables]
    floor_texts = ["", format_error(value_floor)] + [format_error(floors.get(v)) for v in variables]
    order = list(range(len(columns)))
    if not any(row["cells"][0]["bad"] for row in rows):
        order.remove(0)
    flagged = [k for k in order if any(row["blamed"] and row["cells"][k]["outlier"] for row in rows)]
    order = flagged + [k for k in order if k not in flagged]
    for row in rows:
        row["cells"] = [row["cells"][k] for k in order]
    return {
        "columns": [columns[k] for k in order],
        "rows": rows,
        "floors": [floor_texts[k] for k in order],
        "width": len(order) + 1,
    }
