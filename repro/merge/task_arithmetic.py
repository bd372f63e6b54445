"""Task arithmetic against a common base: ``out = base + sum_i w_i (M_i - base)``.

Inputs are ``base`` and ``m1``, ``m2``, ... (every model fine-tuned from ``base``); ``weights``
is one number per model (or one number for all), default 1.0 each (plain task-vector addition).
"""

from __future__ import annotations

import math
import re

from repro.errors import InputError

MODEL_ROLE = re.compile(r"^m([1-9][0-9]*)$")


def model_roles(inputs) -> list[str]:
    """``m1..mN`` in order; the numbering must be complete and ``base`` present."""
    if "base" not in inputs:
        raise InputError(f"inputs: 'base' missing (got {sorted(inputs)}); task vectors need a base")
    roles = sorted((r for r in inputs if MODEL_ROLE.match(r)), key=lambda r: int(r[1:]))
    extra = sorted(set(inputs) - set(roles) - {"base"})
    if extra:
        raise InputError(f"inputs: unexpected role(s) {extra}; expected base, m1, m2, ...")
    if not roles or roles != [f"m{i}" for i in range(1, len(roles) + 1)]:
        raise InputError(f"inputs: models must be m1..mN with no gap, got {roles or 'none'}")
    return roles


def read_weights(value, roles: list[str]) -> list[float]:
    values = [value] * len(roles) if isinstance(value, (int, float)) else value
    if not isinstance(values, list) or len(values) != len(roles):
        raise InputError(f"params: weights: expected one number per model {roles}, got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"params: weights: {v!r} is not a finite number")
    return [float(v) for v in values]


def task_arithmetic(base, models: list, weights: list[float]):
    """``base + sum w_i (m_i - base)``; ``base`` is overwritten (it is a float32 working copy)."""
    delta = None
    for m, w in zip(models, weights):
        part = m.sub(base).mul_(w)
        delta = part if delta is None else delta.add_(part)
    return base.add_(delta)


def method(ctx) -> tuple[dict, callable]:
    roles = model_roles(ctx.inputs)
    weights = read_weights(ctx.param("weights", 1.0), roles)

    def combine(key, tensors):
        return task_arithmetic(tensors["base"], [tensors[r] for r in roles], weights)

    return {"method": "task_arithmetic", "formula": "base + sum_i w_i (m_i - base)",
            "models": roles, "weights": weights}, combine
