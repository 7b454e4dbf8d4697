"""The tinygrad adapter (verifier.adapters.tinygrad_adapter): tinygrad on its CPU
device behind the micrograd protocol, by hand and by a short campaign.

Skipped where tinygrad is not installed, or its CPU device cannot compile a kernel
(it needs clang).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

tinygrad = pytest.importorskip("tinygrad")


def _cpu_device_works() -> str:
    """"" if tinygrad's CPU device runs a float64 and a float32 kernel here, else why not."""
    try:
        from tinygrad import Tensor, dtypes

        for dtype in (dtypes.float64, dtypes.float32):
            x = Tensor([1.5], dtype=dtype, device="CPU")
            if (x * x).item() != 2.25:
                return "tinygrad's CPU device computes 1.5 * 1.5 wrong"
    except Exception as error:  # noqa: BLE001 - e.g. no clang: the compiler is not found
        return f"tinygrad's CPU device does not run here ({type(error).__name__}: {error})"
    return ""


_PROBLEM = _cpu_device_works()
if _PROBLEM:
    pytest.skip(_PROBLEM, allow_module_level=True)

from verifier.adapters import ADAPTERS  # noqa: E402
from verifier.loader import load_engine  # noqa: E402
from verifier.run_engine import probe  # noqa: E402

NAMES = ["tinygrad", "tinygrad:float32"]
TOLERANCE = {"float64": 1e-13, "float32": 1e-5}


def _close(got: float, want: float, fmt: str) -> bool:
    return math.isclose(got, want, rel_tol=TOLERANCE[fmt], abs_tol=TOLERANCE[fmt] * 1e-3)


def test_the_table_and_the_classes() -> None:
    for name in NAMES:
        target, fmt, extra = ADAPTERS[name]
        engine = load_engine(name)
        assert engine is load_engine(target) and extra == "tinygrad"
        assert engine.crossgrad_format == fmt and fmt == engine.dtype_name  # no subnormal flushing
        supported, missing = probe(engine)
        assert set(missing) == set()  # every built-in op
        assert not hasattr(engine, "log1p") and not hasattr(engine, "expm1")  # tinygrad has neither


@pytest.mark.parametrize("name", NAMES)
def test_a_small_graph_against_known_derivatives(name: str) -> None:
    Value = load_engine(name)
    fmt = ADAPTERS[name][1]
    # tinygrad's tanh is 2 sigmoid(2x) - 1, its exp and log go through exp2 and log2:
    # a few ulps off in float64, so a looser tolerance there than the correctly
    # rounded frameworks get.
    tol = 1e-12 if fmt == "float64" else 1e-5
    x, y, unused, twin = Value(0.5), Value(2.0), Value(7.0), Value(0.5)
    t = x.tanh()
    out = (x * y + t) / y.sqrt() - (x.exp() * y.log()).sigmoid() + (x - y).relu() + y.sin() * x.cos() + twin * 3.0
    value = out.data
    out.backward()
    s = 1 / (1 + math.exp(-math.exp(0.5) * math.log(2.0)))
    want = (0.5 * 2.0 + math.tanh(0.5)) / math.sqrt(2.0) - s + math.sin(2.0) * math.cos(0.5) + 1.5
    dx = (2.0 + 1 - math.tanh(0.5) ** 2) / math.sqrt(2.0) - s * (1 - s) * math.exp(0.5) * math.log(2.0) \
        - math.sin(2.0) * math.sin(0.5)
    dy = 0.5 / math.sqrt(2.0) - 0.5 * (0.5 * 2.0 + math.tanh(0.5)) / 2.0 ** 1.5 \
        - s * (1 - s) * math.exp(0.5) / 2.0 + math.cos(2.0) * math.cos(0.5)
    assert type(value) is float and type(x.grad) is float
    for got, expected in ((value, want), (x.grad, dx), (y.grad, dy)):
        assert math.isclose(got, expected, rel_tol=tol), (got, expected)
    # A leaf of the same value is another variable (tinygrad hash-conses constants).
    assert twin.grad == 3.0
    assert unused.grad == 0.0  # a leaf the output does not depend on
    assert out.grad == 1.0 and math.isclose(t.grad, 1 / math.sqrt(2.0), rel_tol=tol)  # interior adjoints
    assert out.data == value  # cached, and the same on every reading


@pytest.mark.parametrize("name", NAMES)
def test_constants_reflected_operators_and_accumulation(name: str) -> None:
    Value, fmt = load_engine(name), ADAPTERS[name][1]
    cases = [  # (build, value, derivative) at x = 1.5
        (lambda x: 3.0 - x, 1.5, -1.0),
        (lambda x: x - 3.0, -1.5, 1.0),
        (lambda x: 3.0 + x, 4.5, 1.0),
        (lambda x: 2.0 * x, 3.0, 2.0),
        (lambda x: 3.0 / x, 2.0, -3.0 / 2.25),
        (lambda x: x / 4.0, 0.375, 0.25),
        (lambda x: -x, -1.5, -1.0),
        (lambda x: x ** 2.5, 1.5 ** 2.5, 2.5 * 1.5 ** 1.5),
        (lambda x: x ** -1.0, 1 / 1.5, -1 / 2.25),
        (lambda x: x, 1.5, 1.0),
    ]
    for build, value, slope in cases:
        x = Value(1.5)
        out = build(x)
        out.backward()
        assert _close(out.data, value, fmt) and _close(x.grad, slope, fmt), (value, out.data, x.grad)
    x = Value(3.0)
    out = x * x + x  # x used three times
    out.backward()
    assert x.grad == 7.0


LIBRARY_CASES: dict[str, tuple[Any, float, float, float]] = {  # op: (call, x, value, derivative)
    "abs": (lambda x: x.abs(), -1.5, 1.5, -1.0),
    "leaky_relu": (lambda x: x.leaky_relu(), -2.0, -0.02, 0.01),
    "elu": (lambda x: x.elu(), -1.0, math.expm1(-1.0), math.exp(-1.0)),
    "softplus": (lambda x: x.softplus(), 0.5, math.log1p(math.exp(0.5)), 1 / (1 + math.exp(-0.5))),
    "silu": (lambda x: x.silu(), 0.5, 0.5 / (1 + math.exp(-0.5)),
             (s := 1 / (1 + math.exp(-0.5))) * (1 + 0.5 * (1 - s))),
    "softsign": (lambda x: x.softsign(), -1.5, -0.6, 1 / 6.25),
    "tan": (lambda x: x.tan(), 0.5, math.tan(0.5), 1 + math.tan(0.5) ** 2),
    "clamp": (lambda x: x.clamp(), 0.5, 0.5, 1.0),
    "maximum": (lambda x: x.maximum(2.0 * x), 0.5, 1.0, 2.0),
    "minimum": (lambda x: x.minimum(2.0 * x), 0.5, 0.5, 1.0),
    # tinygrad's erf and atan are polynomial approximations (absolute error ~1.5e-7
    # and ~2e-8): checked here only to that accuracy; crossgrad judges them exactly.
    "erf": (lambda x: x.erf(), 0.5, math.erf(0.5), 2 / math.sqrt(math.pi) * math.exp(-0.25)),
    "atan": (lambda x: x.atan(), 0.5, math.atan(0.5), 1 / 1.25),
    "gelu": (lambda x: x.gelu(), 0.5, 0.5 * (1 + math.erf(0.5 / math.sqrt(2))) / 2,
             (1 + math.erf(0.5 / math.sqrt(2))) / 2 + 0.5 * math.exp(-0.125) / math.sqrt(2 * math.pi)),
}
APPROXIMATE = {"erf", "atan", "gelu"}


@pytest.mark.parametrize("name", NAMES)
def test_library_ops_against_known_derivatives(name: str) -> None:
    Value, fmt = load_engine(name), ADAPTERS[name][1]
    for op, (call, at, value, slope) in LIBRARY_CASES.items():
        x = Value(at)
        out = call(x)
        out.backward()
        if op in APPROXIMATE:
            ok = math.isclose(out.data, value, abs_tol=1e-6) and math.isclose(x.grad, slope, abs_tol=1e-5)
        else:
            ok = _close(out.data, value, fmt) and _close(x.grad, slope, fmt)
        assert ok, (op, out.data, value, x.grad, slope)
    x = Value(100.0)
    out = x.clamp()
    out.backward()
    assert out.data == 1.0 and x.grad == 0.0


def test_float32_really_rounds_and_keeps_subnormals() -> None:
    Value = load_engine("tinygrad:float32")
    expected = float(np.float32(0.1))
    assert Value(0.1).data == expected != 0.1
    assert (Value(1.0) + 0.1).data == float(np.float32(1.0) + np.float32(0.1)) != 1.1
    assert (Value(1.0) + 1e-8).data == 1.0
    x = Value(3.0)
    out = x * 0.1
    out.backward()
    assert out.data == float(np.float32(3.0) * np.float32(0.1)) and x.grad == expected
    # No flush to zero: a subnormal input, product and gradient survive.
    tiny = float(np.float32(1e-40))
    a, b = Value(1e-30), Value(1e-10)
    product = a * b
    product.backward()
    assert Value(tiny).data == tiny != 0.0
    assert product.data == float(np.float32(1e-30) * np.float32(1e-10)) != 0.0
    assert b.grad == float(np.float32(1e-30))
    assert Value(1e39).data == math.inf  # past float32's range, as tinygrad rounds it


def _show(findings: list[Any]) -> str:
    return "\n".join(f"[{f.severity} {f.kind} {f.cause} {f.blame.op}] {f.expression} at {f.point}: {f.message}"
                     for f in findings)


@pytest.mark.slow
def test_a_float32_campaign_runs_and_its_speed() -> None:
    from verifier import check_engine

    checked: list[float] = []

    def progress(done: int, total: int, phase: str) -> None:
        if phase == "checking" and done == total and not checked:
            checked.append(time.perf_counter())

    start = time.perf_counter()
    result = check_engine("tinygrad:float32", examples=100, seed=0, progress=progress)
    end = time.perf_counter()
    assert result.engine == "tinygrad:float32" and result.examples > 0
    exploring = (checked[0] if checked else end) - start
    print(f"tinygrad:float32: {result.examples} examples, {len(result.findings)} findings; "
          f"{result.examples / exploring:.1f} examples/s checking ({exploring:.1f}s), "
          f"{end - start:.1f}s in all with shrinking")
    print(_show(result.findings))
