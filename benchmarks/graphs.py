"""Big expression graphs for the scale benchmarks: a deep chain, a wide sum, and the
squared-error loss of an MLP(3, [4, 4, 1]) over a batch (its 41 parameters are the
variables, the data are constants)."""

from __future__ import annotations

import random

from verifier.expr import Expr, var


def chain(nodes: int) -> tuple[Expr, dict[str, float]]:
    """tanh(0.999 * tanh(... x ...) + y), about ``nodes`` nodes deep."""
    x, y = var("x"), var("y")
    e = x
    for _ in range(nodes // 3):
        e = (e * 0.999 + y).tanh()
    return e, {"x": 0.3, "y": 0.2}


def wide(nodes: int) -> tuple[Expr, dict[str, float]]:
    """sum over i of sin(x * c_i + y), about ``nodes`` nodes wide."""
    x, y = var("x"), var("y")
    total = None
    for i in range(nodes // 4):
        term = (x * (1 + 1e-6 * i) + y).sin()
        total = term if total is None else total + term
    return total, {"x": 0.3, "y": 0.2}


def mlp_loss(nodes: int) -> tuple[Expr, dict[str, float]]:
    """Squared-error loss of a tanh MLP(3, [4, 4, 1]) over a batch big enough for
    about ``nodes`` nodes."""
    rng = random.Random(0)
    params = [var(f"w{i}") for i in range(41)]
    it = iter(params)
    sizes = [3, 4, 4, 1]
    layers = [[([next(it) for _ in range(n_in)], next(it)) for _ in range(n_out)] for n_in, n_out in zip(sizes, sizes[1:])]
    loss = None
    for _ in range(max(1, nodes // 90)):
        act: list = [rng.uniform(-1, 1) for _ in range(3)]
        target = rng.choice([-1.0, 1.0])
        for layer in layers:
            act = [sum((w * a for w, a in zip(ws, act)), b).tanh() for ws, b in layer]
        term = (act[0] - target) ** 2
        loss = term if loss is None else loss + term
    return loss, {f"w{i}": rng.uniform(-1, 1) for i in range(41)}


FAMILIES = {"deep chain": chain, "wide sum": wide, "MLP loss": mlp_loss}
