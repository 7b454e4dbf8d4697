"""The second-order and forward-mode sections of a finding's card.

A finding of kind ``hessian`` carries a ``hessian`` dict (the exact Hessian, each
oracle's, the noise floors, which entries were judged); one of kind ``jvp`` a
``jvp`` dict (the exact partials, the engine's forward-mode ones and its own
reverse-mode gradient). This module turns them into plain view dicts: one table
row per entry (``∂²f/∂x0 ∂x1``) or partial (``∂f/∂x0``), one column per oracle.
The card's template (``card.html.j2``, macro ``entries``) shows them; every
string here is plain text that the template escapes.

The entry judged wrong is marked in words as well as in colour (its row header
says "judged wrong", and each of the blamed oracle's cells over its noise floor
carries a ✗); an entry that was not judged is greyed and its row header says why.
The blamed oracle's column comes first, then the exact value and the floor: on a
narrow screen the table scrolls sideways inside its box, and the evidence must
not be what scrolls away.

Nothing is judged here: the only arithmetic is ``|value - exact|`` (both rounded
to float64) shown beside each value, as the first-order table shows its errors.

Example:
    >>> view = hessian_view({"variables": ["x"], "entry": [0, 0], "exact": [[2.0]], "exact_text": [["2"]],
    ...                      "floor": [[1e-16]], "status": [["judged"]], "rows": {"engine": [[3.0]]}},
    ...                     ["x"], {"backend": "engine", "op": "create_graph"})
    >>> view["rows"][0]["label"], view["rows"][0]["wrong"], [c["text"] for c in view["rows"][0]["cells"]]
    ('∂²f/∂x²', True, ['3.0', '2', '1e-16'])
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from reports.svg import as_real, format_error, format_value
from reports.verdict import SHORT_REASONS

__all__ = ["hessian_view", "jvp_view", "HESSIAN_ORACLES", "KINDS"]

KINDS = ("hessian", "jvp")

# The Hessian's oracles, in the order of their columns (the blamed one moves first).
HESSIAN_ORACLES = {
    "engine": "its double backward (create_graph)",
    "sympy": "exact formula, float64",
    "torch": "double backward, float64",
    "differences": "central, of the exact gradient",
}

# Why an entry was not judged, in a few words (beyond the first-order reasons).
REASONS = {**SHORT_REASONS, "kink": "at a kink", "not-judged": "not judged"}


def _list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else []


def _dict(x: Any) -> dict:
    return dict(x) if isinstance(x, Mapping) else {}


def _at(matrix: Any, *index: int) -> Any:
    """``matrix[i][j]`` (or ``vector[i]``), None where the data is short or not a list."""
    x: Any = matrix
    for i in index:
        items = _list(x)
        if not 0 <= i < len(items):
            return None
        x = items[i]
    return x


def _index(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _error(value: Any, exact: Any) -> float | None:
    """``|value - exact|`` when both are finite reals, else None."""
    v, e = as_real(value), as_real(exact)
    if v is None or e is None or not (math.isfinite(v) and math.isfinite(e)):
        return None
    return abs(v - e)


def _off(value: Any, exact: Any, floor: Any) -> bool:
    """Whether ``value`` is off ``exact`` by more than ``floor``: over the floor
    when both are finite; otherwise whenever they differ (2.0 for -inf, nan for 1,
    a complex for a real). A missing value is nothing to mark."""
    if value is None or exact is None:
        return False
    error = _error(value, exact)
    if error is not None:
        fl = as_real(floor)
        return fl is not None and fl == fl and error > fl
    v, e = as_real(value), as_real(exact)
    if v is None or e is None:
        return v is None and e is not None  # a complex (or other) value for a real one
    return not (v == e or (v != v and e != e))


def _why(status: Any) -> str:
    """"" for a judged entry, else the reason in a few words."""
    text = str(status) if status is not None else "not-judged"
    return "" if text == "judged" else REASONS.get(text, text)


def _exact_cell(text: Any, exact: Any) -> dict[str, Any]:
    shown = str(text) if isinstance(text, str) and text else format_value(exact)
    return {"text": shown, "notes": [], "flag": False, "css": "num exact"}


def _value_cell(value: Any, exact: Any, floor: Any, *, judged: bool, blamed: bool, estimate: Any = None) -> dict[str, Any]:
    error = _error(value, exact)
    notes = []
    if error is not None:
        notes.append(f"err {format_error(error)}")
    if estimate is not None:
        notes.append(f"est ± {format_error(estimate)}")
    return {"text": format_value(value), "notes": notes, "css": "num",
            # the blamed oracle's judged values over their floor are the evidence
            "flag": blamed and judged and _off(value, exact, floor)}


def _floor_cell(floor: Any) -> dict[str, Any]:
    return {"text": format_error(floor), "notes": [], "flag": False, "css": "num floor"}


def _row(label: str, note: str, why: str, wrong: bool, cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"label": label, "note": note, "why": why, "judged": not why, "wrong": wrong, "cells": cells}


def _partial(v: str) -> str:
    return f"∂f/∂{v}"


def _second(a: str, b: str) -> str:
    return f"∂²f/∂{a}²" if a == b else f"∂²f/∂{a} ∂{b}"


def hessian_view(data: Any, variables: Sequence[str], blame: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Hessian section's view, or None when the finding has no ``hessian`` dict.

    Args:
        data: the finding's ``hessian`` (see the schema's ``$defs/hessian``).
        variables: the finding's variables (used when ``data`` names none).
        blame: the finding's blame: its backend's column is the one marked.
    """
    if not isinstance(data, Mapping):
        return None
    names = [str(v) for v in _list(data.get("variables"))] or [str(v) for v in variables]
    entry = _list(data.get("entry"))
    wrong = (_index(entry[0]), _index(entry[1])) if len(entry) == 2 else (None, None)
    rows_data = _dict(data.get("rows"))
    errors = {str(k): " ".join(str(v).split()) for k, v in _dict(data.get("errors")).items() if v}
    order = list(HESSIAN_ORACLES) + [str(k) for k in rows_data if k not in HESSIAN_ORACLES]
    blamed = str(blame.get("backend") or "engine")
    if blamed not in order:
        blamed = "engine"
    # Each oracle that gave a Hessian gets a column; the others a line under the table.
    given = [k for k in order if isinstance(rows_data.get(k), (list, tuple))]
    missing = [(k, errors.get(k) or "gave no Hessian") for k in order
               if k not in given and (k in rows_data or k in errors or k in HESSIAN_ORACLES)]
    raised = [(k, errors[k]) for k in given if k in errors]  # an error beside a Hessian: shown too
    first = [blamed] if blamed in given else []
    rest = [k for k in given if k not in first]
    columns = (
        [{"label": k, "note": HESSIAN_ORACLES.get(k, ""), "blamed": True} for k in first]
        + [{"label": "exact", "note": "25 digits", "blamed": False},
           {"label": "noise floor", "note": "float64, this entry", "blamed": False}]
        + [{"label": k, "note": HESSIAN_ORACLES.get(k, ""), "blamed": False} for k in rest]
    )
    exact, floors, statuses = data.get("exact"), data.get("floor"), data.get("status")
    estimates = data.get("differences_error")
    rows = []
    n = len(names)
    for i in range(n):
        for j in range(n):
            x, fl = _at(exact, i, j), _at(floors, i, j)
            why = _why(_at(statuses, i, j))
            is_wrong = (i, j) == wrong

            def cell(k: str) -> dict[str, Any]:
                return _value_cell(_at(rows_data.get(k), i, j), x, fl, judged=not why, blamed=k == blamed,
                                   estimate=_at(estimates, i, j) if k == "differences" else None)

            cells = ([cell(k) for k in first] + [_exact_cell(_at(data.get("exact_text"), i, j), x), _floor_cell(fl)]
                     + [cell(k) for k in rest])
            rows.append(_row(_second(names[i], names[j]), f"entry ({i}, {j})", why, is_wrong, cells))
    summary = None
    if wrong[0] is not None and wrong[1] is not None and wrong[0] < n and wrong[1] < n:
        i, j = wrong
        x, fl = _at(exact, i, j), _at(floors, i, j)
        said = _at(rows_data.get(blamed), i, j) if blamed in given else None
        summary = _summary(_second(names[i], names[j]), blamed, said, blamed in given,
                           _at(data.get("exact_text"), i, j), x, fl)
    return {
        "title": "Hessian",
        "caption": "second derivatives at this point; one row per entry, ∂²f/∂row ∂column",
        "variables": names,
        "columns": columns,
        "rows": rows,
        "summary": summary,
        "missing": missing + raised,
        "legend": _legend(rows),
    }


def jvp_view(data: Any, variables: Sequence[str], blame: Mapping[str, Any]) -> dict[str, Any] | None:
    """The forward-mode section's view, or None when the finding has no ``jvp`` dict.

    Args:
        data: the finding's ``jvp`` (see the schema's ``$defs/jvp``): the tangent
            of partial ``k`` is the unit vector ``e_k``, so ``engine[k]`` is the
            engine's forward-mode ``∂f/∂x_k``.
        variables: the finding's variables (used when ``data`` names none).
        blame: the finding's blame (unused beyond the engine: forward and reverse
            mode are both the engine's).
    """
    if not isinstance(data, Mapping):
        return None
    names = [str(v) for v in _list(data.get("variables"))] or [str(v) for v in variables]
    wrong = _index(data.get("entry"))
    forward, reverse = data.get("engine"), data.get("vjp")
    has_forward, has_reverse = isinstance(forward, (list, tuple)), isinstance(reverse, (list, tuple))
    error = " ".join(str(data.get("error") or "").split())
    columns = []
    if has_forward:
        columns.append({"label": "forward mode", "note": "the engine's tangent (JVP)", "blamed": True})
    columns += [{"label": "exact", "note": "25 digits", "blamed": False},
                {"label": "noise floor", "note": "float64, this partial", "blamed": False}]
    if has_reverse:
        columns.append({"label": "reverse mode", "note": "the engine's own gradient (VJP)", "blamed": False})
    exact, floors, statuses = data.get("exact"), data.get("floor"), data.get("status")
    rows = []
    for k, name in enumerate(names):
        x, fl = _at(exact, k), _at(floors, k)
        why = _why(_at(statuses, k))
        cells = []
        if has_forward:
            cells.append(_value_cell(_at(forward, k), x, fl, judged=not why, blamed=True))
        cells += [_exact_cell(_at(data.get("exact_text"), k), x), _floor_cell(fl)]
        if has_reverse:
            # the engine's too: a reverse-mode value over the floor is marked as well
            cells.append(_value_cell(_at(reverse, k), x, fl, judged=not why, blamed=True))
        rows.append(_row(_partial(name), f"tangent e{k}", why, k == wrong, cells))
    missing = []
    if not has_forward:
        missing.append(("forward mode", error or "gave no tangents"))
    elif error:
        missing.append(("forward mode", error))
    if not has_reverse:
        missing.append(("reverse mode", "no gradient at this point"))
    summary = None
    if wrong is not None and wrong < len(names):
        summary = _summary(_partial(names[wrong]), "forward mode", _at(forward, wrong) if has_forward else None,
                           has_forward, _at(data.get("exact_text"), wrong), _at(exact, wrong), _at(floors, wrong))
    return {
        "title": "Forward mode",
        "caption": "partial derivatives at this point: the engine's forward mode (tangent e_k gives ∂f/∂x_k) "
                   "beside its own reverse mode",
        "variables": names,
        "columns": columns,
        "rows": rows,
        "summary": summary,
        "missing": missing,
        "legend": _legend(rows),
    }


def _summary(label: str, oracle: str, said: Any, has: bool, text: Any, exact: Any, floor: Any) -> dict[str, str]:
    """The wrong entry in one line: what the blamed oracle said, the exact value, error and floor."""
    exact_text = str(text) if isinstance(text, str) and text else format_value(exact)
    error = _error(said, exact)
    return {
        "label": label,
        "oracle": oracle,
        "said": format_value(said) if has else "nothing",
        "exact": exact_text,
        "error": format_error(error) if error is not None else "",
        "floor": format_error(floor),
    }


def _legend(rows: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    if any(r["wrong"] for r in rows):
        parts.append("“judged wrong” marks the entry the finding is about")
    if any(c["flag"] for r in rows for c in r["cells"]):
        parts.append("✗ marks a value off by more than its noise floor")
    if any(not r["judged"] for r in rows):
        parts.append("greyed rows are not judged, the reason under their name")
    return "; ".join(parts) + "." if parts else ""
