"""Unit tests of engine.graph: DOT text, escaping, deep graphs, the graphviz wrapper."""

from __future__ import annotations

import re
import sys

import pytest

from engine import Value, draw_dot, to_dot

RECORD = re.compile(r'^\s*(v\d+) \[shape=record, label="((?:[^"\\]|\\.)*)"\];$')
OP = re.compile(r'^\s*(v\d+_op) \[shape=ellipse, label="((?:[^"\\]|\\.)*)"\];$')
EDGE = re.compile(r"^\s*(v\d+(?:_op)?) -> (v\d+(?:_op)?);$")


def parse(dot: str):
    """Records, op nodes and edges of to_dot output; fails on any line it does not know."""
    records, ops, edges = {}, {}, []
    lines = dot.splitlines()
    assert lines[0] == "digraph {" and lines[-1] == "}" and re.fullmatch(r"  rankdir=\w\w;", lines[1])
    for line in lines[2:-1]:
        if m := RECORD.match(line):
            records[m[1]] = m[2]
        elif m := OP.match(line):
            ops[m[1]] = m[2]
        elif m := EDGE.match(line):
            edges.append((m[1], m[2]))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    return records, ops, edges


def unescape(text: str) -> str:
    """Undo DOT backslash escapes (\\x -> x), to compare with the original label."""
    return re.sub(r"\\(.)", r"\1", text)


def test_to_dot_shows_labels_data_grads_and_ops():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    d = (c + a).tanh()
    d.label = "d"
    d.backward()
    records, ops, edges = parse(to_dot(d))
    assert len(records) == 5 and sorted(ops.values()) == ["*", "+", "tanh"]
    by_label = {r.split(" | ")[0][2:]: r for r in records.values()}
    assert by_label["a"] == f"{{ a | data 2 | grad {a.grad:.4g} }}"
    assert by_label["c"] == f"{{ c | data -6 | grad {c.grad:.4g} }}"
    assert by_label["d"] == f"{{ d | data {d.data:.4g} | grad 1 }}"
    assert "{ data -4 |" in "\n".join(records.values())  # the unlabelled c + a node
    assert len(edges) == 3 + 5  # op -> node for 3 ops; child -> op for 2 + 2 + 1 operands
    names = set(records) | set(ops)
    assert all(s in names and t in names for s, t in edges)


def test_four_significant_digits():
    x = Value(1234.5678, label="x")
    y = x * (1 / 3)
    y.backward()
    records, _, _ = parse(to_dot(y))
    assert "{ x | data 1235 | grad 0.3333 }" in records.values()


def test_x_times_x_has_two_edges_into_the_op():
    x = Value(3.0)
    _, ops, edges = parse(to_dot(x * x))
    (op_id,) = ops
    assert edges.count(("v0", op_id)) == 2


def test_labels_are_escaped():
    nasty = 'say "hi" <b> {x} | y \\ end\nnext'
    x = Value(1.0, label=nasty)
    dot = to_dot(x.exp())
    records, _, _ = parse(dot)  # parse() fails if a quote broke out of its string
    field = records["v0"][2:].split(" | data")[0]
    assert unescape(field) == nasty.replace("\n", "n")  # \n became DOT's own line break
    for ch in '"<>{}|':
        assert f"\\{ch}" in field and re.search(rf"(?<!\\){re.escape(ch)}", field) is None


def test_op_labels_are_escaped_too():
    x = Value(1.0)
    weird = Value(2.0, (x,), 'op"x\\', label="")
    _, ops, _ = parse(to_dot(weird))
    assert list(ops.values()) == ['op\\"x\\\\']


def test_rankdir_and_its_check():
    assert "  rankdir=TB;" in to_dot(Value(1.0), rankdir="TB")
    with pytest.raises(ValueError, match=r"rankdir='XY' must be one of LR, TB, RL, BT"):
        to_dot(Value(1.0), rankdir="XY")


def test_a_10000_node_chain_needs_no_recursion():
    x = Value(0.5, label="x")
    y = x
    for _ in range(10_000):
        y = y.tanh()
    records, ops, edges = parse(to_dot(y))
    assert len(records) == 10_001 and len(ops) == 10_000 and len(edges) == 20_000


def test_micrograd_values_can_be_drawn():
    from micrograd.engine import Value as MicroValue

    a = MicroValue(2.0)
    records, ops, _ = parse(to_dot(a * a + 1))
    assert len(records) == 4 and sorted(ops.values()) == ["*", "+"]


def test_draw_dot_returns_a_digraph_with_the_same_graph():
    graphviz = pytest.importorskip("graphviz")
    a = Value(2.0, label="a<1>")
    out = (a * 3).relu()
    dot = draw_dot(out, format="png", rankdir="TB")
    assert isinstance(dot, graphviz.Digraph) and dot.format == "png"
    source = dot.source
    assert "rankdir=TB" in source
    body = [line.strip() for line in to_dot(out).splitlines()[2:-1]]
    assert [line.strip() for line in dot.body] == body
    assert all(line in source for line in body)


def test_draw_dot_without_graphviz_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(ImportError) as info:
        draw_dot(Value(1.0))
    msg = str(info.value)
    assert "\n" not in msg and "pip install graphviz (and the Graphviz binaries to render)" in msg


def test_a_graph_after_create_graph_shows_the_grads_numbers() -> None:
    from engine import Value, to_dot

    x = Value(2.0)
    y = (x * x).tanh()
    y.backward(create_graph=True)
    assert "grad 0.005364" in to_dot(y) and "Value(" not in to_dot(y)
