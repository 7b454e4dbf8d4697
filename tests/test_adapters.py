"""The framework adapters (verifier.adapters): real torch, JAX, HIPS autograd and
MyGrad behind the micrograd protocol, each checked by hand and by a short campaign.

An adapter whose framework is not installed is skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from verifier.adapters import ADAPTERS, available, framework_of, unavailable_modules
from verifier.loader import EngineLoadError, absolute_target, load_engine, target_of
from verifier.run_engine import probe

AVAILABLE = set(available())
FLOAT64 = [name for name, (_, fmt, _) in ADAPTERS.items() if fmt.startswith("float64")]
NARROW = [name for name, (_, fmt, _) in ADAPTERS.items() if not fmt.startswith("float64")]
# Relative tolerance of a small graph's value and gradient in each format.
TOLERANCE = {"float64": 1e-13, "float64-ftz": 1e-13, "float32": 1e-5, "float32-ftz": 1e-5, "bfloat16": 4e-2}


def _engine(name: str) -> type:
    if name not in AVAILABLE:
        pytest.skip(f"{framework_of(name)} is not installed (pip install 'crossgrad[{ADAPTERS[name][2]}]')")
    return load_engine(name)


def _close(got: float, want: float, fmt: str) -> bool:
    return math.isclose(got, want, rel_tol=TOLERANCE[fmt], abs_tol=TOLERANCE[fmt] * 1e-3)


# -- the table and the loader -------------------------------------------------------------

def test_the_table_is_plain_data_and_imports_no_framework() -> None:
    code = ("import sys, verifier.adapters as a\n"
            "print(sorted(m for m in ('torch', 'jax', 'autograd', 'mygrad') if m in sys.modules), a.available())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.startswith("[] ")
    assert "torch" in AVAILABLE  # a core dependency
    assert set(ADAPTERS) == {"torch", "torch:float32", "torch:bfloat16", "jax", "jax:float32", "autograd", "mygrad",
                             "tinygrad", "tinygrad:float32"}
    for name, (target, fmt, extra) in ADAPTERS.items():
        assert target.startswith("verifier.adapters.") and ":" in target
        assert fmt in TOLERANCE and extra == framework_of(name)
    assert set(unavailable_modules()).isdisjoint({ADAPTERS[n][0].partition(":")[0] for n in AVAILABLE})


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_the_loader_takes_adapter_names_and_gives_them_back(name: str) -> None:
    engine = _engine(name)
    assert engine is load_engine(ADAPTERS[name][0])
    assert target_of(engine) == name  # what a sandbox or a worker is started with
    assert absolute_target(name) == name
    assert engine.crossgrad_format == ADAPTERS[name][1] and ADAPTERS[name][1].startswith(engine.dtype_name)


def test_a_missing_framework_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "jax" else real(n, *a))
    with pytest.raises(EngineLoadError) as raised:
        load_engine("jax:float32")
    assert str(raised.value) == "engine 'jax:float32' needs jax: pip install 'crossgrad[jax]'"
    assert "jax" not in available()


# -- hand-built graphs ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_small_graph_against_known_derivatives(name: str) -> None:
    Value, fmt = _engine(name), ADAPTERS[name][1]
    x, y, unused = Value(0.5), Value(2.0), Value(7.0)
    t = x.tanh()
    out = (x * y + t) / y.sqrt() - (x.exp() * y.log()).sigmoid() + (x - y).relu() + y.sin() * x.cos()
    out.backward()
    s = 1 / (1 + math.exp(-math.exp(0.5) * math.log(2.0)))
    value = (0.5 * 2.0 + math.tanh(0.5)) / math.sqrt(2.0) - s + math.sin(2.0) * math.cos(0.5)
    dx = (2.0 + 1 - math.tanh(0.5) ** 2) / math.sqrt(2.0) - s * (1 - s) * math.exp(0.5) * math.log(2.0) \
        - math.sin(2.0) * math.sin(0.5)
    dy = 0.5 / math.sqrt(2.0) - 0.5 * (0.5 * 2.0 + math.tanh(0.5)) / 2.0 ** 1.5 \
        - s * (1 - s) * math.exp(0.5) / 2.0 + math.cos(2.0) * math.cos(0.5)
    assert type(out.data) is float and type(x.grad) is float
    assert _close(out.data, value, fmt) and _close(x.grad, dx, fmt) and _close(y.grad, dy, fmt)
    assert unused.grad == 0.0  # a leaf the output does not depend on
    assert out.grad == 1.0
    assert _close(t.grad, 1 / math.sqrt(2.0), fmt)  # an interior node's adjoint, as micrograd keeps it


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_constants_and_reflected_operators(name: str) -> None:
    Value, fmt = _engine(name), ADAPTERS[name][1]
    cases = [  # (build, value, derivative) at x = 1.5
        (lambda x: 3.0 - x, 1.5, -1.0),
        (lambda x: x - 3.0, -1.5, 1.0),
        (lambda x: 3.0 + x, 4.5, 1.0),
        (lambda x: 2.0 * x, 3.0, 2.0),
        (lambda x: x * 2.0, 3.0, 2.0),
        (lambda x: 3.0 / x, 2.0, -3.0 / 2.25),
        (lambda x: x / 4.0, 0.375, 0.25),
        (lambda x: -x, -1.5, -1.0),
        (lambda x: x ** 2.5, 1.5 ** 2.5, 2.5 * 1.5 ** 1.5),
        (lambda x: x ** -1.0, 1 / 1.5, -1 / 2.25),
        (lambda x: x ** 0.0, 1.0, 0.0),
        (lambda x: x, 1.5, 1.0),
    ]
    for build, value, slope in cases:
        x = Value(1.5)
        out = build(x)
        out.backward()
        assert _close(out.data, value, fmt) and _close(x.grad, slope, fmt), (name, value, out.data, x.grad)
    _, missing = probe(Value)
    assert set(missing).isdisjoint({"add", "sub", "mul", "div", "neg", "pow", "exp", "log", "tanh", "relu", "sigmoid",
                                     "sin", "cos", "sqrt"})


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_gradients_accumulate_over_a_reused_node(name: str) -> None:
    Value, fmt = _engine(name), ADAPTERS[name][1]
    x = Value(3.0)
    out = x * x + x  # x used three times
    out.backward()
    assert _close(x.grad, 7.0, fmt)


LIBRARY_CASES: dict[str, tuple[Any, float, float, float]] = {  # op: (call, x, value, derivative)
    "abs": (lambda x: x.abs(), -1.5, 1.5, -1.0),
    "leaky_relu": (lambda x: x.leaky_relu(), -2.0, -0.02, 0.01),
    "elu": (lambda x: x.elu(), -1.0, math.expm1(-1.0), math.exp(-1.0)),
    "softplus": (lambda x: x.softplus(), 0.5, math.log1p(math.exp(0.5)), 1 / (1 + math.exp(-0.5))),
    "gelu": (lambda x: x.gelu(), 0.5, 0.5 * (1 + math.erf(0.5 / math.sqrt(2))) / 2,
             (1 + math.erf(0.5 / math.sqrt(2))) / 2 + 0.5 * math.exp(-0.125) / math.sqrt(2 * math.pi)),
    "silu": (lambda x: x.silu(), 0.5, 0.5 / (1 + math.exp(-0.5)),
             (s := 1 / (1 + math.exp(-0.5))) * (1 + 0.5 * (1 - s))),
    "softsign": (lambda x: x.softsign(), -1.5, -0.6, 1 / 6.25),
    "tan": (lambda x: x.tan(), 0.5, math.tan(0.5), 1 + math.tan(0.5) ** 2),
    "atan": (lambda x: x.atan(), 0.5, math.atan(0.5), 1 / 1.25),
    "log1p": (lambda x: x.log1p(), 0.5, math.log1p(0.5), 1 / 1.5),
    "expm1": (lambda x: x.expm1(), 0.5, math.expm1(0.5), math.exp(0.5)),
    "erf": (lambda x: x.erf(), 0.5, math.erf(0.5), 2 / math.sqrt(math.pi) * math.exp(-0.25)),
    "clamp": (lambda x: x.clamp(), 0.5, 0.5, 1.0),
    "maximum": (lambda x: x.maximum(2.0 * x), 0.5, 1.0, 2.0),
    "minimum": (lambda x: x.minimum(2.0 * x), 0.5, 0.5, 1.0),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_library_ops_against_known_derivatives(name: str) -> None:
    Value, fmt = _engine(name), ADAPTERS[name][1]
    # tinygrad's erf, atan (and so gelu) are polynomial approximations (~1e-7): its own
    # ops, judged as such by campaigns (see tests/test_adapter_tinygrad.py), not exact here.
    present = [op for op in LIBRARY_CASES if hasattr(Value, op) and not (framework_of(name) == "tinygrad" and op in ("erf", "atan", "gelu"))]
    assert {"abs", "clamp", "maximum", "minimum"} <= set(present)
    for op in present:
        call, at, value, slope = LIBRARY_CASES[op]
        x = Value(at)
        out = call(x)
        out.backward()
        assert _close(out.data, value, fmt) and _close(x.grad, slope, fmt), (op, out.data, value, x.grad, slope)
    x = Value(100.0)
    out = x.clamp() if hasattr(Value, "clamp") else x
    out.backward()
    assert out.data == 1.0 and x.grad == 0.0


@pytest.mark.parametrize("name", NARROW)
def test_narrow_formats_really_round(name: str) -> None:
    Value, fmt = _engine(name), ADAPTERS[name][1]
    if fmt.startswith("float32"):
        expected = float(np.float32(0.1))
        assert Value(0.1).data == expected != 0.1
        # The constant is a float32 too, and the addition is float32's.
        assert (Value(1.0) + 0.1).data == float(np.float32(1.0) + np.float32(0.1)) != 1.1
        assert (Value(1.0) + 1e-8).data == 1.0
    else:
        import torch

        assert Value(0.1).data == float(torch.tensor(0.1, dtype=torch.bfloat16)) == 0.10009765625
        assert (Value(1.0) + 0.001).data == 1.0  # below half an ulp of 1 in bfloat16 (2**-8)
    x = Value(3.0)
    out = x * 0.1
    out.backward()
    assert out.data != 0.30000000000000004 and x.grad == Value(0.1).data


# -- short campaigns ------------------------------------------------------------------------

def _errors(result: Any) -> list[Any]:
    return [f for f in result.findings if f.severity == "error"]


def _show(findings: list[Any]) -> str:
    return "\n".join(f"[{f.kind} {f.cause} {f.blame.op}] {f.expression} at {f.point}: {f.message}" for f in findings)


@pytest.mark.parametrize("name", [n for n in FLOAT64 if framework_of(n) != "tinygrad"])  # its real findings: see its own tests
def test_float64_adapters_pass_a_short_campaign(name: str) -> None:
    from verifier import check_engine

    _engine(name)
    result = check_engine(name, examples=200, seed=0, progress=False)
    errors = _errors(result)
    # (jax is judged as float64-ftz: XLA on CPU flushes subnormals, a habit of its format.)
    assert result.examples > 0
    assert not errors, _show(errors)


@pytest.mark.parametrize("name", NARROW)
def test_narrow_adapters_run_a_campaign(name: str) -> None:
    from verifier import check_engine

    _engine(name)
    result = check_engine(name, examples=50, seed=0, progress=False)
    assert result.engine == name and result.examples > 0
    print(f"{name}: {len(result.findings)} findings\n{_show(result.findings)}")
