"""Custom gradients (a torch.autograd.Function) checked against their formula in
random graphs: the right one is clean, the subtly wrong ones are caught on the op."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines.custom_torch import Softplus, SoftplusNoGuard, SoftplusNoUpstream
from verifier.custom import check_custom, engine_with

ROOT = Path(__file__).resolve().parents[1]


def test_the_right_custom_function_is_clean() -> None:
    result = check_custom(Softplus, "log(1 + exp(x))", name="my_softplus", examples=300, seed=0)
    assert result.ok and result.findings == ()
    assert result.engine == "torch with my_softplus=Softplus"


# Without the guard, g * exp(x) / (1 + exp(x)) is nan past 709.78 alone (cause unstable),
# or inf under a large upstream g (cause engine): the examples drawn decide which shows.
@pytest.mark.parametrize(("function", "causes"), [(SoftplusNoGuard, {"unstable", "engine"}), (SoftplusNoUpstream, {"engine"})])
def test_a_subtly_wrong_backward_is_caught_on_the_op(function: type, causes: set[str]) -> None:
    result = check_custom(function, "log(1 + exp(x))", name="my_softplus", examples=300, seed=0)
    [finding] = result.findings
    assert (finding.kind, finding.blame.op) == ("gradient", "my_softplus") and finding.cause in causes, finding.message


def test_engine_with_rejects_what_is_not_a_framework_or_a_function() -> None:
    with pytest.raises(ValueError, match="expected one of the adapters"):
        engine_with("tensorflow", {})
    with pytest.raises(TypeError, match="not callable"):
        engine_with("torch", {"exp": 3})


def test_cli_custom() -> None:
    done = subprocess.run([sys.executable, "-m", "verifier", "check", "--engine", "torch", "--ops", "add,mul,tanh",
                           "--op", "sp(x) = log(1 + exp(x))", "--custom", f"sp={ROOT}/tests/engines/custom_torch.py:SoftplusNoUpstream"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1 and "error gradient · sp: " in done.stdout, done.stdout + done.stderr
    bad = subprocess.run([sys.executable, "-m", "verifier", "check", "--engine", "engine:Value", "--op", "sp(x) = x",
                          "--custom", "sp=x.py:F"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "--custom needs a framework --engine" in bad.stderr


def test_a_jax_custom_vjp_missing_the_upstream_gradient_is_caught() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")

    def make(upstream: bool):
        @jax.custom_vjp
        def softplus(x):
            return jnp.logaddexp(x, 0.0)

        def forward(x):
            return softplus(x), x

        def backward(x, g):
            return ((g if upstream else 1.0) * jax.nn.sigmoid(x),)

        softplus.defvjp(forward, backward)
        return softplus

    right = check_custom(make(True), "log(1 + exp(x))", name="jax_softplus", framework="jax", ops="add,mul,tanh",
                         examples=150, seed=0)
    assert right.findings == ()
    wrong = check_custom(make(False), "log(1 + exp(x))", name="jax_softplus", framework="jax", ops="add,mul,tanh",
                         examples=150, seed=0)
    assert {(f.kind, f.blame.op) for f in wrong.findings} == {("gradient", "jax_softplus")}
