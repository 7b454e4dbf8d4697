"""Graphviz pictures of a computation graph: DOT text (no dependency) or a `graphviz.Digraph`.

One record node per Value (`{ label | data ... | grad ... }`, numbers to 4 significant
digits), one small node per op, and edges child -> op -> result. Works on any
micrograd-style node (`_prev`, `_op`, `data`, `grad`; `label` optional). Traversal is
iterative, so deep graphs are fine.

Example:
    >>> from engine import Value, to_dot
    >>> a = Value(2.0, label='a')
    >>> print(to_dot(a * a))
    digraph {
      rankdir=LR;
      v0 [shape=record, label="{ a | data 2 | grad 0 }"];
      v1 [shape=record, label="{ data 4 | grad 0 }"];
      v1_op [shape=ellipse, label="*"];
      v1_op -> v1;
      v0 -> v1_op;
      v0 -> v1_op;
    }
    <BLANKLINE>
"""

from __future__ import annotations

from typing import Any

from engine.value import topological_order

__all__ = ["to_dot", "draw_dot"]

RANKDIRS = ("LR", "TB", "RL", "BT")

# Inside a quoted DOT string only backslash and quote are special; a record label also
# gives { } | < > a meaning (fields, ports), so those are backslash-escaped too.
_QUOTED = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": ""})
_RECORD = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "",
                         "{": "\\{", "}": "\\}", "|": "\\|", "<": "\\<", ">": "\\>"})


def _num(x: Any) -> str:
    x = getattr(x, "data", x)  # a grad that is a Value (after backward(create_graph=True)): its number
    try:
        return f"{float(x):.4g}"
    except (TypeError, ValueError):
        return str(x)


def _body(root: Any) -> list[str]:
    """The DOT statements for the graph of `root` (shared by to_dot and draw_dot)."""
    lines: list[str] = []
    index: dict[int, int] = {}
    for i, v in enumerate(topological_order(root)):  # children come first: indices exist
        index[id(v)] = i
        fields = [f"data {_num(v.data)}", f"grad {_num(v.grad)}"]
        label = str(getattr(v, "label", "") or "")
        if label:
            fields.insert(0, label)
        record = " | ".join(f.translate(_RECORD) for f in fields)
        lines.append(f'v{i} [shape=record, label="{{ {record} }}"];')
        if not v._prev:
            continue
        target, op = f"v{i}", str(getattr(v, "_op", "") or "")
        if op:
            lines.append(f'v{i}_op [shape=ellipse, label="{op.translate(_QUOTED)}"];')
            lines.append(f"v{i}_op -> v{i};")
            target = f"v{i}_op"
        lines.extend(f"v{index[id(c)]} -> {target};" for c in v._prev)  # x*x: two edges
    return lines


def _check_rankdir(rankdir: str) -> None:
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir={rankdir!r} must be one of {', '.join(RANKDIRS)}")


def to_dot(root: Any, *, rankdir: str = "LR") -> str:
    """Graphviz DOT source for the computation that produced `root`.

    Args:
        root: the output Value.
        rankdir: layout direction, 'LR' (left to right), 'TB', 'RL' or 'BT'.

    Example:
        >>> from engine import Value
        >>> 'label="tanh"' in to_dot(Value(0.5).tanh())
        True
    """
    _check_rankdir(rankdir)
    return "\n".join(["digraph {", f"  rankdir={rankdir};", *("  " + s for s in _body(root)), "}"]) + "\n"


def draw_dot(root: Any, *, format: str = "svg", rankdir: str = "LR") -> Any:
    """The same graph as a `graphviz.Digraph` (needs the optional `graphviz` package).

    Rendering it (`.render()`, or display in a notebook) also needs the Graphviz binaries.

    Args:
        root: the output Value.
        format: output format used when rendering ('svg', 'png', ...).
        rankdir: layout direction, 'LR', 'TB', 'RL' or 'BT'.

    Raises:
        ImportError: the graphviz Python package is not installed.

    Example:
        >>> from engine import Value
        >>> dot = draw_dot(Value(2.0) * 3)  # doctest: +SKIP
        >>> dot.render('graph')  # doctest: +SKIP
    """
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            "draw_dot() needs the graphviz Python package: "
            "pip install graphviz (and the Graphviz binaries to render)"
        ) from exc
    _check_rankdir(rankdir)
    return graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir},
                            body=[f"\t{s}\n" for s in _body(root)])
