"""The verifier catches bugs that live only at the edges of float64.

Each mutant of tests/engines/edge.py is right at ordinary points and wrong at one
edge (underflow, overflow, tiny and huge denominators, large arguments, subnormal
inputs, a lost or tiny upstream gradient, a nondeterministic op, hostile data).
``check_engine`` with its defaults (300 examples, seed 0; five whose edge needs the
op fed directly by an extreme leaf narrow the op set to that op and one other, as a
user checking that op would) must catch each one and
blame the right op; the hostile ones must leave this process untouched (no marker
file written by an unpickled object) and the campaign must complete.

The cheap tests first check the corpus itself against torch float64: the base engine
agrees on every witness, each mutant differs there, and each agrees with the base at
ordinary points (so its bug really lives at the edge).
"""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.engines import BINARY, ORDINARY, UNARY, corpus, edge
from verifier.campaign import check_engine

BINARY = {**BINARY, "mul_then_sin": lambda x, y: (x * y).sin()}
IDS = {"ids": lambda m: m.name}
SLOW_EXAMPLES = 1000


def _engine(Value: type, f: Any, point: tuple[float, ...]) -> tuple[str, Any, tuple[Any, ...]]:
    """("ok", value, grads) or ("raised", exception type, ()): prints are swallowed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            xs = [Value(p) for p in point]
            out = f(*xs)
            out.backward()
        return "ok", out.data, tuple(x.grad for x in xs)
    except Exception as error:  # noqa: BLE001 - OverflowError, ZeroDivisionError, ...
        return "raised", type(error), ()


def _torch(f: Any, point: tuple[float, ...]) -> tuple[float, tuple[float, ...]]:
    xs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    out = f(*xs)
    out.backward()
    return out.item(), tuple(0.0 if x.grad is None else x.grad.item() for x in xs)


def _close(a: Any, b: float, rel: float = 1e-12) -> bool:
    if not isinstance(a, float):
        return False  # a complex number or an object of the engine's own
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-320


def _agrees(got: tuple[str, Any, tuple[Any, ...]], ref: tuple[float, tuple[float, ...]]) -> bool:
    status, value, grads = got
    return status == "ok" and _close(float(value) if type(value) is float else value, ref[0]) and all(
        _close(float(g) if isinstance(g, float) else g, r) for g, r in zip(grads, ref[1]))


@pytest.fixture(scope="module")
def base() -> type:
    return corpus.load_engine("base")


# ---- the corpus itself ---------------------------------------------------------------

def test_edge_manifest_is_well_formed() -> None:
    names = [m.name for m in edge.EDGE_MUTANTS]
    assert len(names) >= 14 and len(set(names)) == len(names)
    assert not set(names) & set(corpus.MUTANTS_BY_NAME), "edge mutants must not shadow the main corpus"
    assert set(edge.EDGE_BY_NAME) == set(names)
    text = corpus.BASE_PATH.read_text()
    for m in edge.EDGE_MUTANTS:
        assert m.edge in edge.EDGES, m.name
        assert m.kinds and m.kinds <= corpus.FINDING_KINDS | {edge.NONDETERMINISTIC}, m.name
        assert m.blame in corpus.OP_NAMES or m.blame == "backward", m.name
        assert m.description and "\n" not in m.description and m.name.isidentifier(), m.name
        for old, new in m.patches:
            assert text.count(old) == 1 and old != new, (m.name, old)
        compile(corpus.source(m.patches), m.name, "exec")
    # every edge the issue names has a mutant
    assert {m.edge for m in edge.EDGE_MUTANTS} == set(edge.EDGES)
    assert sum(m.hostile for m in edge.EDGE_MUTANTS) >= 2
    assert any(not m.deterministic for m in edge.EDGE_MUTANTS)


DETERMINISTIC = [m for m in edge.EDGE_MUTANTS if m.deterministic and not m.hostile]


@pytest.mark.parametrize("mutant", DETERMINISTIC, **IDS)
def test_edge_mutant_differs_on_its_witness(base: type, mutant: edge.EdgeMutant, tmp_path: Path) -> None:
    if mutant.kinds == {"timeout"}:
        # Its witness never returns: run it in a child process.
        path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
        code = (f"import importlib.util as u; s = u.spec_from_file_location('m', {str(path)!r}); "
                f"m = u.module_from_spec(s); s.loader.exec_module(m); m.Value({mutant.witness_point[0]!r}).{mutant.blame}()")
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, timeout=3)
        return
    ref = _torch(mutant.witness, mutant.witness_point)
    assert _agrees(_engine(base, mutant.witness, mutant.witness_point), ref)
    Value = corpus.load_engine(mutant.name, mutant.patches)
    got = _engine(Value, mutant.witness, mutant.witness_point)
    assert not _agrees(got, ref), f"{mutant.name} agrees with torch on its witness"
    if got[0] == "raised":
        assert "exception" in mutant.kinds, (mutant.name, got)


@pytest.mark.parametrize("mutant", edge.EDGE_MUTANTS, **IDS)
def test_edge_mutant_is_right_at_ordinary_points(base: type, mutant: edge.EdgeMutant) -> None:
    """The bug lives at the edge: at ordinary points each mutant agrees with torch."""
    if not mutant.deterministic:
        pytest.skip("see test_nondeterministic_mutant_answers_two_ways")
    Value = corpus.load_engine(mutant.name, mutant.patches)
    for name, f in UNARY.items():
        for p in ORDINARY:
            if name in ("log", "sqrt", "pow") and p <= 0:
                p = -p
            got, ref = _engine(Value, f, (p,)), _torch(f, (p,))
            assert _agrees(got, ref), (mutant.name, name, p, got, ref)
    for name, f in BINARY.items():
        if mutant.edge == "upstream gradient" and name == "mul_then_sin":
            continue  # its bug shows as soon as the upstream gradient is not 1
        for p, q in zip(ORDINARY, reversed(ORDINARY)):
            got, ref = _engine(Value, f, (p, q)), _torch(f, (p, q))
            assert _agrees(got, ref), (mutant.name, name, p, q, got, ref)


def test_nondeterministic_mutant_answers_two_ways() -> None:
    m = next(m for m in edge.EDGE_MUTANTS if not m.deterministic)
    Value = corpus.load_engine(m.name, m.patches)
    points = [m.witness_point, tuple(2 * p for p in m.witness_point)]
    answers = [_engine(Value, m.witness, points[k % 2]) for k in range(400)]
    refs = [_torch(m.witness, p) for p in points]
    right = sum(_agrees(a, refs[k % 2]) for k, a in enumerate(answers))
    assert 250 < right < 400, right   # wrong about one time in ten, not always


@pytest.mark.parametrize("mutant", [m for m in edge.EDGE_MUTANTS if m.hostile], **IDS)
def test_hostile_mutant_builds_hostile_objects(mutant: edge.EdgeMutant, tmp_path: Path) -> None:
    """Unpickling what the engine builds writes the marker (so the campaign test
    below would see it if the verifier's process ever did that)."""
    import pickle

    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_edge_{mutant.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status, value, grads = _engine(module.Value, mutant.witness, mutant.witness_point)
    assert status == "ok"
    made = value if isinstance(value, complex) else grads[0]
    assert type(made) not in (float, complex)          # a type of the engine's own
    marker = edge.marker_path(path)
    if "_MARKER" in vars(module):
        assert not marker.exists()
        pickle.loads(pickle.dumps(made))
        assert marker.exists()                       # the payload works
        marker.unlink()


# ---- the verifier ------------------------------------------------------------------

@pytest.mark.parametrize("mutant", edge.EDGE_MUTANTS, **IDS)
def test_every_edge_mutant_is_caught_and_blamed(mutant: edge.EdgeMutant, tmp_path: Path) -> None:
    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    marker = edge.marker_path(path)
    # The defaults of `verifier check` (with the op set narrowed where the edge needs
    # the op fed directly by an extreme leaf, as a user checking that op would).
    result = check_engine(f"{path}:Value", examples=300, seed=0, ops=list(mutant.ops) or None)
    if mutant.hostile:
        assert not marker.exists(), f"{mutant.name}: an object built by the engine was unpickled in the verifier's process"
        assert result.stopped == "completed" and result.examples == 300
    pool = result.findings if mutant.severity == "error" else result.warnings
    caught = [f for f in pool if f.blame.op == mutant.blame and f.kind in mutant.kinds]
    shown = [(f.severity, f.kind, f.blame.op, f.expression, f.point) for f in result.findings + result.warnings]
    assert caught, f"{mutant.name} ({mutant.edge}): expected a {mutant.severity} blamed on {mutant.blame}, got {shown}"
    finding = caught[0]
    assert finding.expression and finding.message
    assert len(finding.expression) <= 60, finding.expression
    assert all(v.startswith("x") for v in finding.variables)
    # only plain data came back from the sandbox
    assert all(type(x) in (float, int, bool, complex, str, type(None)) for x in _flat(finding.to_dict()))


def _flat(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [y for v in x.values() for y in _flat(v)]
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in _flat(v)]
    return [x]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("mutant", edge.EDGE_MUTANTS, **IDS)
def test_every_edge_mutant_is_caught_whatever_the_seed(mutant: edge.EdgeMutant, seed: int, tmp_path: Path) -> None:
    # At seed 0 each is caught within the default 300 examples (above); at other seeds
    # the rarest edges (a subnormal or the largest float fed straight to relu, sqrt or
    # div) took up to 1,000 in 2026-12 measurements.
    path = corpus.write_engine(tmp_path, mutant.name, mutant.patches)
    result = check_engine(f"{path}:Value", examples=SLOW_EXAMPLES, seed=seed, ops=list(mutant.ops) or None)
    assert not edge.marker_path(path).exists()
    pool = result.findings if mutant.severity == "error" else result.warnings
    assert any(f.blame.op == mutant.blame for f in pool), [(f.kind, f.blame.op) for f in pool]
