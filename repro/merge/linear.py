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


def linear(a, b, weight: float, out=None):
    """``(1 - weight) * a + weight * b``, evaluated as ``torch.lerp`` (``a + w (b - a)``).

    For bf16/fp16 tensors torch computes lerp in float32 and rounds once to the storage dtype,
    which is the float32 compute we want in a single pass over memory (no float32 copies: the
    merge then runs near file-copy speed). ``out`` may be given (same shape and dtype).
    """
    import torch

    if weight in (0.0, 1.0):
        src = a if weight == 0.0 else b
        return src if out is None else out.copy_(src)
    return torch.lerp(a, b, weight, out=out) if out is not None else torch.lerp(a, b, weight)


def make_combine(weight: float):
    """``combine(key, tensors, out)`` for ``merge_dirs``."""
    weight = check_weight(weight)

    def combine(key, tensors, out):
        return linear(tensors["a"], tensors["b"], weight, out=out)

    combine.native = True  # takes storage-dtype tensors and writes ``out`` itself (see stage.py)
    return combine


def method(ctx) -> tuple[dict, callable]:
    """Protocol record and ``combine`` for the ``merge/linear`` stage."""
    weight = check_weight(ctx.param("weight", 0.5))
    combine = make_combine(weight)
    return {"method": "linear", "formula": "(1-w)*a + w*b as torch.lerp(a, b, w) = a + w*(b-a), "
            "float32 arithmetic, one rounding to the storage dtype", "weight": weight}, combine
