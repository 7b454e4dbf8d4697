"""Inline SVG for the HTML report: the computation graph and the error-vs-step plot.

Both are plain strings built here (no graphviz binary, no JavaScript), so this is
the one module that writes markup by hand: every piece of text that comes from
the data goes through :func:`html.escape`, and every number is formatted by us.

Example:
    >>> nodes = [{"id": 0, "op": "var", "label": "x0", "args": [], "value": 1.0},
    ...          {"id": 1, "op": "tanh", "label": "tanh", "args": [0], "value": 0.76, "blamed": True}]
    >>> svg = graph_svg(nodes, id_prefix="F1")
    >>> svg.startswith("<svg") and 'class="node blamed"' in svg
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape
from typing import Any, Mapping, Sequence

__all__ = ["graph_svg", "step_plot_svg", "layered_layout", "as_real", "format_value", "format_error", "MAX_GRAPH_NODES"]

MAX_GRAPH_NODES = 60

FONT = "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace"
SANS = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif"
CHAR_W = 7.4  # advance of a 12 px monospace glyph, with a little slack
SANS_W = 6.2  # average advance of an 11 px sans-serif glyph
LINE_H = 15
PAD = 8
LAYER_GAP = 64
ROW_GAP = 18
MARGIN = 12

INK = "#1f2328"
MUTED = "#57606a"
RED = "#b42318"
RED_FILL = "#fdecea"
BLUE = "#1f5fbf"
ORANGE = "#b25000"


def _e(text: Any) -> str:
    """Escape any text for SVG content or a quoted attribute."""
    return escape(str(text), quote=True)


def _safe_id(text: Any) -> str:
    # Ids end up inside url(#...) references: keep them to a harmless alphabet.
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(text)) or "x"


def as_real(x: Any) -> float | None:
    """A float from report data (``"nan"``/``"inf"`` strings included), else None.

    Example:
        >>> as_real("-inf"), as_real(2), as_real("(1+2j)"), as_real(None)
        (-inf, 2.0, None, None)
    """
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return None


def format_value(x: Any) -> str:
    """A number as Python's repr would show it (all the digits), for values.

    Example:
        >>> format_value(0.1), format_value(3), format_value("nan"), format_value(None)
        ('0.1', '3', 'nan', '—')
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return repr(x)
    return str(x)


def format_error(x: Any) -> str:
    """An error or a tolerance: three significant digits are all it means.

    Example:
        >>> format_error(1.4526623737243227e-08), format_error(0.0), format_error("inf")
        ('1.45e-08', '0', 'inf')
    """
    if x is None:
        return "—"
    real = as_real(x)
    if real is None:
        return str(x)
    if real == 0:
        return "0"
    return f"{real:.3g}"


# -- the computation graph ---------------------------------------------------------------

def _args(node: Mapping[str, Any]) -> list[Any]:
    args = node.get("args")
    return [a for a in args if isinstance(a, (int, str))] if isinstance(args, (list, tuple)) else []


def layered_layout(nodes: Sequence[Mapping[str, Any]], sweeps: int = 4) -> list[list[Any]]:
    """Layers of node ids, leaves first, each ordered to reduce edge crossings.

    Longest-path layering (a node sits one layer right of its deepest argument),
    then barycenter ordering: alternately down and up, each node moves to the mean
    position of its neighbours in the layers already placed.

    Example:
        >>> layered_layout([{"id": 0, "args": []}, {"id": 1, "args": []}, {"id": 2, "args": [1, 0]}])
        [[0, 1], [2]]
    """
    ids = list(dict.fromkeys(n["id"] for n in nodes))
    known = set(ids)
    args = {n["id"]: [a for a in _args(n) if a in known and a != n["id"]] for n in nodes}
    users: dict[Any, list[Any]] = {i: [] for i in ids}
    for i in ids:
        for a in args[i]:
            users[a].append(i)
    # Kahn's order, so that a malformed (cyclic) graph still gets drawn, not hung on.
    waiting = {i: len(set(args[i])) for i in ids}
    ready = [i for i in ids if waiting[i] == 0]
    layer: dict[Any, int] = {}
    while ready:
        i = ready.pop(0)
        layer[i] = 1 + max((layer[a] for a in args[i] if a in layer), default=-1)
        for u in dict.fromkeys(users[i]):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    for i in ids:
        layer.setdefault(i, 0)  # on a cycle: drawn on the left
    layers: list[list[Any]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for i in ids:
        layers[layer[i]].append(i)

    pos: dict[Any, float] = {}

    def place(row: list[Any]) -> None:
        # Centred positions, so rows of different lengths are comparable.
        for k, i in enumerate(row):
            pos[i] = k - (len(row) - 1) / 2

    def reorder(row: list[Any], neighbours: dict[Any, list[Any]]) -> None:
        def key(i: Any) -> float:
            near = [pos[j] for j in neighbours[i] if j in pos]
            return sum(near) / len(near) if near else pos[i]
        row.sort(key=key)
        place(row)

    for row in layers:
        place(row)
    for _ in range(sweeps):
        for row in layers[1:]:
            reorder(row, args)
        for row in reversed(layers[:-1]):
            reorder(row, users)
    return layers


@dataclass
class _Box:
    node: Mapping[str, Any]
    lines: list[tuple[str, str]] = field(default_factory=list)  # (text, style)
    x: float = 0.0
    y: float = 0.0

    @property
    def width(self) -> float:
        return max(len(text) for text, _ in self.lines) * CHAR_W + 2 * PAD

    @property
    def height(self) -> float:
        return len(self.lines) * LINE_H + 2 * PAD - 4


def _differs(exact: Any, engine: Any) -> bool:
    a, b = as_real(exact), as_real(engine)
    if a is not None and b is not None:
        return not (a == b or (math.isnan(a) and math.isnan(b)))
    return format_value(exact) != format_value(engine)


def _box(node: Mapping[str, Any], grads: bool) -> _Box:
    box = _Box(node)
    box.lines.append((str(node.get("label") or node.get("op") or "?"), "label"))
    if node.get("op") != "const":  # a constant's label is its value
        box.lines.append((format_value(node.get("value")), "value"))
    engine_value = node.get("engine_value")
    if engine_value is not None and _differs(node.get("value"), engine_value):
        box.lines.append(("engine " + format_value(engine_value), "engine"))
    if grads:
        # The adjoint d(output)/d(node): where the exact and the engine's part
        # ways is where the backward pass went wrong.
        exact, engine_grad = node.get("grad"), node.get("engine_grad")
        if exact is not None:
            box.lines.append(("grad " + format_value(exact), "value"))
        if engine_grad is not None and (exact is None or _differs(exact, engine_grad)):
            # Red only when it is known to differ from the exact adjoint.
            box.lines.append(("engine grad " + format_value(engine_grad), "engine" if exact is not None else "value"))
    if node.get("blamed"):
        box.lines.append(("blamed", "blamed"))
    return box


def _tooltip(node: Mapping[str, Any]) -> str:
    parts = [f"node {node.get('id')}: {node.get('op')}", f"exact value {format_value(node.get('value'))}"]
    if node.get("engine_value") is not None:
        parts.append(f"engine value {format_value(node.get('engine_value'))}")
    if node.get("grad") is not None:
        parts.append(f"exact grad {format_value(node.get('grad'))}")
    if node.get("engine_grad") is not None:
        parts.append(f"engine grad {format_value(node.get('engine_grad'))}")
    return ", ".join(parts)


def graph_svg(nodes: Sequence[Mapping[str, Any]], *, id_prefix: str = "g", grads: bool = False) -> str | None:
    """The computation graph, laid out left to right, as an ``<svg>`` string.

    Args:
        nodes: the finding's ``graph`` (id, op, label, args, value, engine_value,
            grad, engine_grad, blamed); ``grad`` is the exact adjoint
            d(output)/d(node), ``engine_grad`` the engine's ``.grad``.
        id_prefix: makes the ids inside this SVG unique in the page.
        grads: also write each node's gradients in its box (for gradient
            findings; they are always in the tooltip).

    Returns:
        The SVG, or None when there is nothing to draw or more than
        ``MAX_GRAPH_NODES`` nodes (unreadable in a page).
    """
    # Nodes without a usable id cannot be placed or linked: leave them out.
    usable = [n for n in nodes if isinstance(n, Mapping) and isinstance(n.get("id"), (int, str))]
    nodes = list({n["id"]: n for n in reversed(usable)}.values())[::-1]  # the first of duplicate ids
    if not nodes or len(nodes) > MAX_GRAPH_NODES:
        return None
    prefix = _safe_id(id_prefix)
    boxes = {n["id"]: _box(n, grads) for n in nodes}
    layers = layered_layout(nodes)
    pitch = max(b.height for b in boxes.values()) + ROW_GAP
    tallest = max(len(row) for row in layers)
    height = tallest * pitch - ROW_GAP + 2 * MARGIN
    x = float(MARGIN)
    for row in layers:
        column = max(boxes[i].width for i in row)
        for k, i in enumerate(row):
            box = boxes[i]
            box.x = x + (column - box.width) / 2
            centre = height / 2 + (k - (len(row) - 1) / 2) * pitch
            box.y = centre - box.height / 2
        x += column + LAYER_GAP
    width = x - LAYER_GAP + MARGIN

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="computation graph">',
        f'<defs><marker id="{prefix}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,1 L9,5 L0,9 z" fill="{MUTED}"/></marker></defs>',
    ]
    for n in nodes:
        target = boxes[n["id"]]
        ins = [a for a in _args(n) if a in boxes and a != n["id"]]
        for k, a in enumerate(ins):
            # One port per argument, top to bottom in argument order: a - b shows
            # which side is which, and a * a shows two edges.
            source = boxes[a]
            x1, y1 = source.x + source.width, source.y + source.height / 2
            x2, y2 = target.x - 1, target.y + target.height * (k + 1) / (len(ins) + 1)
            bend = max(20.0, (x2 - x1) / 2)
            out.append(
                f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
                f'{x2:.1f},{y2:.1f}" fill="none" stroke="{MUTED}" stroke-width="1.3" marker-end="url(#{prefix}-arrow)"/>'
            )
    for n in nodes:
        box = boxes[n["id"]]
        blamed = bool(n.get("blamed"))
        if blamed:
            fill, stroke, stroke_w = RED_FILL, RED, 2.5
        else:
            fill, stroke, stroke_w = ("#f0f6ff" if n.get("op") == "var" else "#ffffff"), "#8c959f", 1.2
        out.append(f'<g class="{"node blamed" if blamed else "node"}" data-node="{_e(n["id"])}"><title>{_e(_tooltip(n))}</title>')
        out.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{stroke_w}"/>'
        )
        for k, (text, style) in enumerate(box.lines):
            weight = ' font-weight="700"' if style in ("label", "blamed") else ""
            colour = RED if style in ("engine", "blamed") else INK
            size = 11 if style == "blamed" else 12
            ty = box.y + PAD + LINE_H * k + 11
            out.append(
                f'<text x="{box.x + box.width / 2:.1f}" y="{ty:.1f}" text-anchor="middle" font-family="{FONT}" '
                f'font-size="{size}" fill="{colour}"{weight}>{_e(text)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# -- the error-versus-step plot ------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
PLOT_W, PLOT_H = 500, 230  # the whole figure's width; the plot area's height
LEFT, RIGHT, BOTTOM = 62, 14, 46
INSET = 7  # keeps markers on the first and last decade inside the frame


def _decade(k: int) -> str:
    return "1" if k == 0 else "10" + str(k).translate(_SUPERSCRIPT)


def _span(values: Sequence[float]) -> tuple[int, int]:
    low = math.floor(math.log10(min(values)))
    high = math.ceil(math.log10(max(values)))
    return (low, high) if high > low else (low, low + 1)


def _errors(steps: Sequence[Sequence[Any]], truth: float) -> dict[str, list[tuple[float, float] | None]]:
    """|difference - truth| per series, None where it cannot go on a log axis."""
    series: dict[str, list[tuple[float, float] | None]] = {"forward": [], "central": []}
    for row in steps:
        if len(row) < 3:
            continue
        h = as_real(row[0])
        if h is None or not math.isfinite(h) or h <= 0:
            continue
        for name, raw in zip(series, row[1:3]):
            d = as_real(raw)
            err = abs(d - truth) if d is not None else math.nan
            # Zero or non-finite errors have no place on a log axis: leave a gap.
            series[name].append((h, err) if math.isfinite(err) and err > 0 else None)
    return series


def _legend_mark(x: float, y: float, colour: str, mark: str) -> str:
    line = f'<line x1="{x}" y1="{y - 4}" x2="{x + 16}" y2="{y - 4}" stroke="{colour}" stroke-width="1.6"'
    if mark == "circle":
        return line + f'/><circle cx="{x + 8}" cy="{y - 4}" r="3" fill="{colour}"/>'
    if mark == "square":
        return line + f'/><rect x="{x + 5}" y="{y - 7}" width="6" height="6" fill="{colour}"/>'
    return line + f' stroke-dasharray="{mark}"/>' if mark else ""


def step_plot_svg(
    steps: Sequence[Sequence[Any]],
    exact: Any,
    *,
    variable: str = "x",
    engine_error: Any = None,
    floor: Any = None,
    id_prefix: str = "p",
    engine_label: str = "engine error",
    notes: Sequence[str] = (),
) -> str | None:
    """Log-log plot of |difference - exact partial| against the step h.

    Forward (one-sided) and central differences: the V shapes show truncation
    error falling with h until rounding error takes over, and why the central
    difference gets so much closer.

    Args:
        steps: ``[h, forward, central]`` rows.
        exact: the exact partial derivative (the reference gradient).
        variable: the variable's name, for the axis label.
        engine_error: the engine's error on this partial, drawn as a red dashed
            line (how it compares with what differences can reach). Where it
            cannot be drawn (0, nan, inf, far from the data) the legend still
            names it: the reader looks for the engine first.
        floor: the float64 noise floor of this partial, a grey dotted line,
            left out if not finite and positive, and only named in the legend
            if far from the data.
        id_prefix: makes the ids inside this SVG unique in the page.
        engine_label: the engine line's name in the legend.
        notes: more legend lines without a mark (e.g. the engine's value error,
            which has no place on this axis).

    Returns:
        The SVG, or None if no error is finite and positive (nothing to draw on a
        log scale) or ``exact`` is not a finite number.

    Example:
        >>> step_plot_svg([[0.1, 1.1, 1.01], [0.01, 1.01, 1.0001]], 1.0).startswith("<svg")
        True
        >>> step_plot_svg([[0.1, 1.0, 1.0]], 1.0) is None
        True
    """
    truth = as_real(exact)
    if truth is None or not math.isfinite(truth):
        return None
    series = _errors(steps, truth)
    points = [p for s in series.values() for p in s if p is not None]
    if not points:
        return None
    low, high = min(e for _, e in points), max(e for _, e in points)
    levels: list[tuple[str, float, str, str]] = []  # (text, level, colour, dash)
    off_scale: list[tuple[str, float]] = []
    unplotted: list[str] = []
    for text, raw, colour, dash in ((engine_label, engine_error, RED, "6 4"), ("float64 noise floor", floor, MUTED, "2 3")):
        level = as_real(raw)
        if level is None or not math.isfinite(level) or level <= 0:
            if colour == RED and raw is not None:
                why = "exact" if level == 0 else ("not a number" if level is None else "not finite")
                unplotted.append(f"{text} {format_error(raw)} ({why}: not on a log scale)")
            continue
        # A line far from the data (a floor of 1e-308 at x = 0) would squash the
        # curves into a sliver: it is named in the legend instead.
        if low / 1e6 <= level <= high * 1e6:
            levels.append((text, level, colour, dash))
        else:
            off_scale.append((text, level))

    styles = {"forward": (ORANGE, "circle", "forward difference"), "central": (BLUE, "square", "central difference")}
    legend: list[tuple[str, str, str]] = []  # (colour, circle | square | dash pattern | "", text)
    for name, pts in series.items():
        colour, mark, text = styles[name]
        legend.append((colour, mark, text if any(pts) else text + " (every error 0 or not finite)"))
    for text, level, colour, dash in levels:
        legend.append((colour, dash, f"{text} {format_error(level)}"))
    for text, level in off_scale:
        legend.append((RED if text == engine_label else MUTED, "", f"{text} {format_error(level)} (off the scale)"))
    legend.extend((RED, "", text) for text in unplotted)
    legend.extend((INK, "", str(text)) for text in notes)
    # The legend sits above the plot area, so it never hides a point.
    placed: list[tuple[float, float, tuple[str, str, str]]] = []
    lx, ly = float(LEFT), 14.0
    for entry in legend:
        size = (21 if entry[1] else 0) + len(entry[2]) * SANS_W
        if lx > LEFT and lx + size > PLOT_W - RIGHT:
            lx, ly = float(LEFT), ly + 15
        placed.append((lx, ly, entry))
        lx += size + 16
    top = int(ly) + 16
    width, height = PLOT_W, top + PLOT_H + BOTTOM
    pw, ph = width - LEFT - RIGHT, PLOT_H

    x0, x1 = _span([h for h, _ in points])
    y0, y1 = _span([e for _, e in points] + [level for _, level, _, _ in levels])

    def px(h: float) -> float:
        return LEFT + INSET + (math.log10(h) - x0) / (x1 - x0) * (pw - 2 * INSET)

    def py(e: float) -> float:
        return top + ph - INSET - (math.log10(e) - y0) / (y1 - y0) * (ph - 2 * INSET)

    prefix = _safe_id(id_prefix)
    label = f"|difference − exact ∂/∂{variable}|"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e("finite-difference error against step, " + label)}" '
        f'font-family="{SANS}" font-size="11">',
        f'<defs><clipPath id="{prefix}-clip"><rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}"/></clipPath></defs>',
        f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="#ffffff"/>',
    ]
    for axis, (first, last) in (("x", (x0, x1)), ("y", (y0, y1))):
        every = next(n for n in (1, 2, 3, 5, 10, 20, 25, 50, 100, 1000) if (last - first) / n <= 8)
        for k in range(first, last + 1):
            labelled = (k - first) % every == 0
            if not labelled and last - first > 40:
                continue  # a tick per decade would be a solid bar
            tick = 5 if labelled else 3
            if axis == "x":
                at = px(10.0 ** k)
                if labelled:
                    out.append(f'<line x1="{at:.1f}" y1="{top}" x2="{at:.1f}" y2="{top + ph}" stroke="#eaeef2"/>')
                    out.append(f'<text x="{at:.1f}" y="{top + ph + 18}" text-anchor="middle" fill="{INK}">{_decade(k)}</text>')
                out.append(f'<line x1="{at:.1f}" y1="{top + ph}" x2="{at:.1f}" y2="{top + ph + tick}" stroke="{INK}"/>')
            else:
                at = py(10.0 ** k)
                if labelled:
                    out.append(f'<line x1="{LEFT}" y1="{at:.1f}" x2="{LEFT + pw}" y2="{at:.1f}" stroke="#eaeef2"/>')
                    out.append(f'<text x="{LEFT - 8}" y="{at + 4:.1f}" text-anchor="end" fill="{INK}">{_decade(k)}</text>')
                out.append(f'<line x1="{LEFT - tick}" y1="{at:.1f}" x2="{LEFT}" y2="{at:.1f}" stroke="{INK}"/>')
    out.append(f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#8c959f"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{height - 8}" text-anchor="middle" fill="{INK}">step h</text>')
    out.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" fill="{INK}">{_e(label)}</text>')

    out.append(f'<g clip-path="url(#{prefix}-clip)">')
    for _, level, colour, dash in levels:
        at = py(level)
        out.append(f'<line x1="{LEFT}" y1="{at:.1f}" x2="{LEFT + pw}" y2="{at:.1f}" stroke="{colour}" '
                   f'stroke-width="1.4" stroke-dasharray="{dash}"/>')
    for name, pts in series.items():
        colour, mark, _ = styles[name]
        run: list[tuple[float, float]] = []
        for p in pts + [None]:
            if p is not None:
                run.append(p)
            elif run:
                if len(run) > 1:
                    coords = " ".join(f"{px(h):.1f},{py(e):.1f}" for h, e in run)
                    out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
                run = []
        for p in pts:
            if p is None:
                continue
            cx, cy = px(p[0]), py(p[1])
            if mark == "circle":
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>')
            else:
                out.append(f'<rect x="{cx - 3:.1f}" y="{cy - 3:.1f}" width="6" height="6" fill="{colour}"/>')
    out.append("</g>")
    for x, y, (colour, mark, text) in placed:
        out.append(_legend_mark(x, y, colour, mark))
        out.append(f'<text x="{x + (21 if mark else 0):.1f}" y="{y:.1f}" fill="{colour if not mark else INK}">{_e(text)}</text>')
    out.append("</svg>")
    return "".join(out)
