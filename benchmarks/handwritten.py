"""The comparison point: a four-way gradient check written by hand, as a user would
(micrograd, SymPy diff + evalf, torch float64 autograd, central differences), one
expression at one point at a time. Each expression is a plain Python function that
works on micrograd Values, SymPy symbols, torch tensors and floats alike."""

from __future__ import annotations

import random
import time

import sympy
import torch
from micrograd.engine import Value

# Depth-5-ish expressions; the constants k change at every check, so SymPy's cache
# cannot answer from the previous one.
FUNCTIONS = [
    lambda a, b, c, k: (a * b + k * c) ** 2 - a / (b * b + 1) + c * c * a * k,
    lambda a, b, c, k: (a - k * b) * (a + c) ** 3 / (1 + c ** 2) - b ** 2 * a,
    lambda a, b, c, k: ((a * a + k) ** 0.5 - b) * (c - a * b) ** 2 + 3 / (a * a + 2),
    lambda a, b, c, k: (a * b * c - k) ** 2 + (a + b) ** -2 * c - (b - c) * a * k,
    lambda a, b, c, k: a ** 3 - 3 * a * b ** 2 + c / (a ** 2 + k * b ** 2 + 1) - (a - c) ** 2,
]


def check_one(f, point: tuple[float, float, float], k: float) -> float:
    """Worst disagreement among the four ways, for one function at one point."""
    # micrograd
    vs = [Value(x) for x in point]
    out = f(*vs, k)
    out.backward()
    engine = [v.grad for v in vs]
    # SymPy: exact derivatives, evaluated with evalf
    symbols = sympy.symbols("a b c")
    expr = f(*symbols, sympy.Float(k))
    subs = dict(zip(symbols, point))
    exact = [float(sympy.diff(expr, s).evalf(30, subs=subs)) for s in symbols]
    # torch float64
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in point]
    f(*ts, k).backward()
    autograd = [t.grad.item() for t in ts]
    # central differences
    h = 1e-6
    numeric = []
    for i in range(3):
        up = list(point)
        down = list(point)
        up[i] += h
        down[i] -= h
        numeric.append((f(*up, k) - f(*down, k)) / (2 * h))
    return max(abs(x - e) for way in (engine, autograd, numeric) for x, e in zip(way, exact))


def rate(seconds: float = 5.0) -> float:
    """Expressions checked per second."""
    rng = random.Random(0)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        f = FUNCTIONS[done % len(FUNCTIONS)]
        check_one(f, tuple(rng.uniform(0.5, 2.0) for _ in range(3)), rng.uniform(0.5, 2.0))
        done += 1
    return done / (time.perf_counter() - start)
