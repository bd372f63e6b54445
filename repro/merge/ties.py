"""TIES merging (Yadav et al., 2023): trim, elect sign, disjoint mean.

For each tensor: every task vector ``t_i = w_i (M_i - base)`` keeps its ``density`` fraction of
largest-magnitude entries and zeroes the rest; the sign of each entry is elected by the summed
trimmed values (the sign with more total magnitude); the merged delta is the mean over the task
vectors whose (non-zero) entry has the elected sign; ``out = base + scale * delta``.

Param ``convention`` [choice, recorded] picks the details that tools disagree on
(docs/protocol-choices.md, "Merge conventions"):
- ``kit`` (default): keep the ``round(density * n)`` largest entries and every entry tied with
  the k-th magnitude (as the TIES reference code, ``prateeky2806/ties-merging``
  ``src/utils/merge_utils.py`` ``topk_values_mask``, keeps ties); an entry whose votes sum to zero
  elects no sign and stays at the base; the disjoint mean divides by the number of agreeing
  models (the reference code's ``disjoint_merge``).
- ``mergekit``: mergekit 0.1.5's ``ties`` (``generalized_task_arithmetic.py``, ``sparsify.py``):
  exactly ``max(1, floor(density * n))`` entries kept, ties at the threshold broken by
  ``torch.argsort`` order; a zero vote elects ``+`` (``sum >= 0``); the mean divides by the sum
  of the agreeing models' weights (``normalize``, its default), ``scale`` acts as its ``lambda``.
  With unit weights both divide by the same count.
"""

from __future__ import annotations

import math

from repro.errors import InputError
from repro.merge.task_arithmetic import model_roles, read_weights

CONVENTIONS = ("kit", "mergekit")


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


def trim_exact_k(delta, density: float):
    """mergekit's magnitude sparsification: exactly ``max(1, floor(density * n))`` entries, the
    first ``k`` of a descending ``torch.argsort`` of the magnitudes (float32 on CPU, as there)."""
    import torch

    if density >= 1:
        return delta
    n = delta.numel()
    if density <= 0 or n == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * n))
    mask = torch.zeros(n, dtype=delta.dtype)
    mask[torch.argsort(delta.abs().reshape(-1).float(), descending=True)[:k]] = 1
    return delta * mask.reshape_as(delta)


def ties(base, models: list, weights: list[float], density: float, scale: float = 1.0,
         convention: str = "kit"):
    import torch

    if convention == "mergekit":
        return _ties_mergekit(base, models, weights, density, scale)
    trimmed = [trim(m.sub(base), density).mul_(w) for m, w in zip(models, weights)]
    stacked = torch.stack(trimmed)
    elected = torch.sign(stacked.sum(0))
    agree = (torch.sign(stacked) == elected) & (stacked != 0)
    count = agree.sum(0).clamp_(min=1)
    delta = (stacked * agree).sum(0) / count
    return base.add_(delta, alpha=scale)


def _ties_mergekit(base, models: list, weights: list[float], density: float, scale: float):
    import torch

    stacked = torch.stack([trim_exact_k(m - base, density) for m in models])
    w = torch.tensor(weights, dtype=stacked.dtype).reshape(-1, *([1] * base.dim()))
    stacked.mul_(w)
    elected = (stacked.sum(0) >= 0).to(stacked.dtype) * 2 - 1
    agree = (stacked.sign() == elected).to(stacked.dtype)
    delta = (stacked * agree).sum(0)
    divisor = (w * agree).sum(0)
    divisor[divisor == 0] = 1
    delta /= divisor
    if scale != 1:
        delta *= scale
    return base + delta


def method(ctx) -> tuple[dict, callable]:
    roles = model_roles(ctx.inputs)
    weights = read_weights(ctx.param("weights", 1.0), roles)
    density = ctx.param("density", 0.2)  # TIES paper default: keep the top 20%
    scale = ctx.param("scale", 1.0)
    convention = ctx.param("convention", "kit")
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise InputError(f"params: density: expected a fraction in (0, 1], got {density!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise InputError(f"params: scale: expected a finite number, got {scale!r}")
    if convention not in CONVENTIONS:
        raise InputError(f"params: convention: {convention!r}; expected one of {', '.join(CONVENTIONS)}")

    def combine(key, tensors):
        return ties(tensors["base"], [tensors[r] for r in roles], weights, float(density), float(scale),
                    convention)

    kit = convention == "kit"
    return {"method": "ties", "convention": convention, "models": roles, "weights": weights,
            "trim_density": float(density), "scale": float(scale),
            "trim_size": "round(density * n)" if kit else "max(1, floor(density * n))",
            "trim_ties": "entries equal to the threshold magnitude are kept" if kit
            else "exactly k entries, ties broken by torch.argsort order",
            "sign_election": "sign of the summed trimmed task vectors" + (
                "; a zero sum elects none (entry stays at base)" if kit else "; a zero sum elects +"),
            "disjoint_mean": "divided by the number of agreeing models" if kit
            else "divided by the sum of the agreeing models' weights"}, combine
