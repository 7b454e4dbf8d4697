"""PyTorch float64 autograd as an oracle, batched over points.

One graph is built with one tensor per variable holding every point, so the per-op
overhead of torch is paid once per expression rather than once per point. Points
do not interact, so the gradient of the sum is each point's gradient.

Example:
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> result = evaluate(compile_program(parse("x * x")), [[3.0], [0.5]])
    >>> result.value.tolist(), result.gradient.tolist()
    ([9.0, 0.25], [[6.0], [1.0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from verifier.expr import Program, merge
from verifier.ops import OPS

__all__ = ["TorchResult", "evaluate", "evaluate_many"]


@dataclass(frozen=True)
class TorchResult:
    """Values (points,) and gradients (points, variables); nan where torch gave nan."""

    value: np.ndarray
    gradient: np.ndarray


def _build(program: Program, rows: Sequence[Any]) -> list[Any]:
    """Every node of the program, built with torch from one tensor per variable."""
    built: list[Any] = []
    for op, args, param in zip(program.ops, program.args, program.params):
        if op == "var":
            built.append(rows[param])
        elif op == "const":
            built.append(param)
        else:
            argv = [built[j] for j in args]
            if OPS[op].method or all(isinstance(a, float) for a in argv):
                argv = [torch.tensor(a, dtype=torch.float64) if isinstance(a, float) else a for a in argv]
            built.append(OPS[op].torch(*argv, param))
    return built


def evaluate(program: Program, points: Sequence[Sequence[float]]) -> TorchResult:
    """Value and gradient of ``program`` at every point, in torch float64."""
    return evaluate_many([program], [points])[0]


def evaluate_many(programs: Sequence[Program], points: Sequence[Sequence[Sequence[float]]]) -> list[TorchResult]:
    """:func:`evaluate` of each program at its own points: one graph and one backward
    pass for them all, side by side (:func:`verifier.expr.merge`), when each has as
    many points."""
    arrays = [np.asarray(p, dtype=float).reshape(-1, len(program.variables)) for program, p in zip(programs, points)]
    if len({a.shape[0] for a in arrays}) > 1:
        return [evaluate_many([program], [a])[0] for program, a in zip(programs, arrays)]
    merged = merge(programs)
    count = arrays[0].shape[0]
    # One leaf tensor (variables x points); each variable is a row of it.
    leaf = torch.tensor(np.concatenate(arrays, axis=1).T, dtype=torch.float64, requires_grad=True)
    built = _build(merged.program, list(leaf.unbind(0)))
    outputs = [torch.as_tensor(built[o], dtype=torch.float64).expand(count) for o in merged.outputs]
    value = torch.stack(outputs)
    # Programs do not interact: the gradient of the sum is each program's gradient.
    total = value.sum()
    grad = torch.autograd.grad(total, leaf, allow_unused=True)[0] if total.requires_grad else None
    grad = np.zeros((leaf.shape[0], count)) if grad is None else grad.numpy()
    value = value.detach().numpy().astype(float)
    starts = merged.variable_starts
    return [TorchResult(value=value[b].copy(), gradient=grad[starts[b]:starts[b + 1]].T.copy()) for b in range(len(programs))]


def hessian(program: Program, point: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """The Hessian of ``program`` at one point by torch's double backward
    (``create_graph=True``, then the gradient of each partial).

    Example:
        >>> from verifier.parsing import parse
        >>> from verifier.expr import compile_program
        >>> hessian(compile_program(parse("x * x * y")), [3.0, 2.0])
        ((4.0, 6.0), (6.0, 0.0))
    """
    leaves = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in point]
    out = _build(program, leaves)[-1]
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        return tuple((0.0,) * len(leaves) for _ in leaves)
    grads = torch.autograd.grad(out, leaves, create_graph=True, allow_unused=True)
    rows = []
    for g in grads:
        if g is None or not g.requires_grad:  # a constant partial: its row is 0
            rows.append((0.0,) * len(leaves))
            continue
        second = torch.autograd.grad(g, leaves, retain_graph=True, allow_unused=True)
        rows.append(tuple(0.0 if s is None else float(s) for s in second))
    return tuple(rows)
