"""Second-order and forward-mode mutants of engine.Value (tests/engines/second_order.py):
each is caught within 300 examples, shrunk, and blamed on the rule that is wrong: the
op whose second derivative or tangent rule is wrong, or the create-graph machinery."""

from __future__ import annotations

import pytest

from tests.engines import second_order
from verifier.campaign import check_engine

# mutant -> (finding kind, blamed op, the campaign's modes)
EXPECTED = {
    "tanh_second_derivative_wrong": ("hessian", "tanh", "rev"),
    "mul_detached_in_create_graph": ("hessian", "mul", "rev"),
    "accumulation_detached": ("hessian", "create_graph", "rev"),
    "sin_tangent_sign": ("jvp", "sin", "fwd,rev"),
}


def test_every_mutant_has_an_expectation() -> None:
    assert set(EXPECTED) == set(second_order.BY_NAME)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_second_order_mutant_is_caught_and_blamed(name: str, tmp_path) -> None:
    kind, op, modes = EXPECTED[name]
    path = second_order.write(tmp_path, second_order.BY_NAME[name])
    result = check_engine(f"{path}:Value", examples=300, seed=0, order=2 if kind == "hessian" else 1, modes=modes)
    found = [(f.kind, f.blame.op, f.expression, f.message) for f in result.findings]
    assert any(f.kind == kind and f.blame.op == op for f in result.findings), found
    # Nothing else is wrong with the mutant: no other finding.
    assert all(f.kind == kind for f in result.findings), found
    finding = next(f for f in result.findings if f.kind == kind)
    section = finding.hessian if kind == "hessian" else finding.jvp
    assert section is not None and section["exact"]
    assert len(finding.expression) <= 40, finding.expression  # shrunk to a small expression


def test_a_hessian_finding_replays_at_second_order(tmp_path) -> None:
    from verifier.cli import main

    path = second_order.write(tmp_path, second_order.BY_NAME["tanh_second_derivative_wrong"])
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exit:
        main(["check", "--engine", f"{path}:Value", "--order", "2", "--ops", "tanh,mul,add", "--examples", "100",
              "--json", str(out), "--workers", "1"])
    assert exit.value.code == 1
    with pytest.raises(SystemExit) as exit:
        main(["replay", str(out)])
    assert exit.value.code == 1  # still fails, at second order
    with pytest.raises(SystemExit) as exit:
        main(["replay", str(out), "--engine", "engine:Value"])
    assert exit.value.code == 0  # the right engine fixes it
