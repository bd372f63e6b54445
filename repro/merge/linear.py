"""Linear interpolation of two checkpoints: ``out = (1 - w) * A + w * B``.

The paper's proposed fix (claim 7) sweeps ``w`` over a grid between the VL-adapted model (A) and
the safety-tuned model (B). The end points return an input unchanged, bit for bit: computing
``1 * a + 0 * b`` would turn -0.0 into +0.0 and an inf in B into NaN.
"""

from __future__ import annotations

import math

from repro.errors import InputError

ROLES = ("a", "b")


def check_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise InputError(f"params: weight: expected a number in [0, 1], got {weight!r}")
    if not 0.0 <= weight <= 1.0:  # a typo such as 50 for 0.5 must not extrapolate silently
        raise InputError(f"params: weight: {weight} is outside [0, 1]")
    return float(weight)


def linear(a, b, weight: float):
    """``(1 - weight) * a + weight * b`` in the inputs' (float32) dtype; ``a`` may be overwritten."""
    if weight == 0.0:
        return a
    if weight == 1.0:
        return b
    return a.mul_(1.0 - weight).add_(b, alpha=weight)


def method(ctx) -> tuple[dict, callable]:
    """Protocol record and ``combine(key, tensors)`` for the ``merge/linear`` stage."""
    weight = check_weight(ctx.param("weight", 0.5))

    def combine(key, tensors):
        return linear(tensors["a"], tensors["b"], weight)

    return {"method": "linear", "formula": "(1-w)*a + w*b", "weight": weight}, combine
