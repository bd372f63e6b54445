"""TIES merging (Yadav et al., 2023): trim, elect sign, disjoint mean.

For each tensor: every task vector ``t_i = w_i (M_i - base)`` keeps its ``density`` fraction of
largest-magnitude entries (entries tied with the threshold are all kept) and zeroes the rest; the
sign of each entry is elected by the summed trimmed values (the sign with more total magnitude);
the merged delta is the mean over only the task vectors whose (non-zero) entry has the elected
sign; ``out = base + scale * delta``.
"""

from __future__ import annotations

import math

from repro.errors import InputError
from repro.merge.task_arithmetic import model_roles, read_weights


def trim(delta, density: float):
    """Zero all but the ``round(density * n)`` largest-magnitude entries (threshold ties kept)."""
    import torch

    n = delta.numel()
    k = int(round(density * n))
    if k >= n:
        return delta
    if k <= 0:
        return torch.zeros_like(delta)
    magnitude = delta.abs().reshape(-1)
    threshold = magnitude.kthvalue(n - k + 1).values  # the k-th largest magnitude
    return delta * (delta.abs() >= threshold)


def ties(base, models: list, weights: list[float], density: float, scale: float = 1.0):
    import torch

    trimmed = [trim(m.sub(base), density).mul_(w) for m, w in zip(models, weights)]
    stacked = torch.stack(trimmed)
    elected = torch.sign(stacked.sum(0))
    agree = (torch.sign(stacked) == elected) & (stacked != 0)
    count = agree.sum(0).clamp_(min=1)
    delta = (stacked * agree).sum(0) / count
    return base.add_(delta, alpha=scale)


def method(ctx) -> tuple[dict, callable]:
    roles = model_roles(ctx.inputs)
    weights = read_weights(ctx.param("weights", 1.0), roles)
    density = ctx.param("density", 0.2)  # TIES paper default: keep the top 20%
    scale = ctx.param("scale", 1.0)
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise InputError(f"params: density: expected a fraction in (0, 1], got {density!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise InputError(f"params: scale: expected a finite number, got {scale!r}")

    def combine(key, tensors):
        return ties(tensors["base"], [tensors[r] for r in roles], weights, float(density), float(scale))

    return {"method": "ties", "models": roles, "weights": weights, "trim_density": float(density),
            "scale": float(scale), "sign_election": "sign of the summed trimmed task vectors",
            "trim_ties": "entries equal to the threshold magnitude are kept"}, combine
