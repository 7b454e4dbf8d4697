"""Custom torch.autograd.Functions for softplus: one right, two subtly wrong.

- ``Softplus``: logaddexp(x, 0) forward, g * sigmoid(x) backward: right everywhere.
- ``SoftplusNoGuard``: the textbook derivative exp(x) / (1 + exp(x)), which is
  inf / inf = nan past x = 709.78 (sigmoid has the guard).
- ``SoftplusNoUpstream``: sigmoid(x) without the upstream gradient g: right only
  where the op is the last of the graph (g = 1).
"""
from __future__ import annotations

import torch


class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.logaddexp(x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


class SoftplusNoGuard(Softplus):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x) / (1 + torch.exp(x))


class SoftplusNoUpstream(Softplus):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.sigmoid(x)
