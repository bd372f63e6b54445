"""DARE (Yu et al., 2024): drop task-vector entries with probability ``p``, rescale by 1/(1-p).

``out = base + sum_i w_i * mask_i * (M_i - base) / (1 - p)``. The mask of each tensor comes from
its own generator seeded by (stage seed, role, key), so a result does not depend on the order in
which tensors or shards are processed.
"""

from __future__ import annotations

import hashlib

from repro.errors import InputError
from repro.merge.task_arithmetic import model_roles, read_weights


def mask_seed(seed: int, role: str, key: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{role}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def keep_mask(shape, drop: float, seed: int, role: str, key: str):
    """True where an entry is kept (probability ``1 - drop``), reproducible from the seed."""
    import torch

    generator = torch.Generator().manual_seed(mask_seed(seed, role, key))
    return torch.rand(shape, generator=generator) >= drop


def dare(base, models: dict, weights: list[float], drop: float, seed: int, key: str):
    delta = None
    for (role, m), w in zip(models.items(), weights):
        part = m.sub(base).mul_(keep_mask(m.shape, drop, seed, role, key)).mul_(w / (1.0 - drop))
        delta = part if delta is None else delta.add_(part)
    return base.add_(delta)


def method(ctx) -> tuple[dict, callable]:
    roles = model_roles(ctx.inputs)
    weights = read_weights(ctx.param("weights", 1.0), roles)
    drop = ctx.param("drop", 0.9)  # DARE paper: up to 90% dropped with little loss
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1:
        raise InputError(f"params: drop: expected a probability in [0, 1), got {drop!r}")
    seed = int(ctx.seed)

    def combine(key, tensors):
        return dare(tensors["base"], {r: tensors[r] for r in roles}, weights, float(drop), seed, key)

    return {"method": "dare", "models": roles, "weights": weights, "drop_prob": float(drop),
            "seed": seed, "mask_rng": "torch.Generator per tensor, seeded by sha256(seed, role, key)",
            "rescale": "1/(1-p)"}, combine
