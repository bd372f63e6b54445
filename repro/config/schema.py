"""Typed experiment declarations (frozen dataclasses) and the rules their values must meet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from repro.errors import InputError

PROFILES = ("tiny", "paper")
EXPERIMENT_KEYS = {"schema", "name", "description", "paper", "include", "seed", "recipes", "stages", "results"}
STAGE_KEYS = {"kind", "params", "inputs", "recipe", "seed", "description", "sweep", "gather"}
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # role -> upstream stage name
    seed: int = 0
    description: str | None = None


@dataclass(frozen=True)
class Experiment:
    name: str
    profile: str
    source: str  # the experiment file, for messages
    description: str
    stages: dict[str, StageSpec]  # topological order
    seed: int
    resolved: dict[str, Any]  # the fully resolved declaration, stored with the run
    results: tuple[str, ...] = ()


# Numeric params with a range: (lower bound, inclusive?). Checked for every stage that sets them,
# so a negative learning rate or a zero batch fails before anything runs.
_POSITIVE = (0, False)
_NON_NEGATIVE = (0, True)
PARAM_RULES: dict[str, tuple[type | tuple[type, ...], tuple[float, bool] | None]] = {
    "learning_rate": ((int, float), _POSITIVE),
    "num_train_epochs": ((int, float), _POSITIVE),
    "max_steps": (int, None),
    "per_device_train_batch_size": (int, (1, True)),
    "gradient_accumulation_steps": (int, (1, True)),
    "batch_size": (int, (1, True)),
    "max_length": (int, (1, True)),
    "max_new_tokens": (int, (1, True)),
    "warmup_ratio": ((int, float), _NON_NEGATIVE),
    "weight_decay": ((int, float), _NON_NEGATIVE),
    "temperature": ((int, float), _NON_NEGATIVE),
    "top_p": ((int, float), _POSITIVE),
    "beta": ((int, float), _POSITIVE),
    "save_steps": (int, (1, True)),
    "limit": (int, (1, True)),
}


def check_param(where: str, key: str, value: Any) -> None:
    rule = PARAM_RULES.get(key)
    if rule is None or value is None:
        return
    types, bound = rule
    if isinstance(value, bool) or not isinstance(value, types):
        raise InputError(f"{where}: param {key!r}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: param {key!r}: must be finite, got {value!r}")
    if key == "top_p" and value > 1:
        raise InputError(f"{where}: param 'top_p': must be in (0, 1], got {value!r}")
    if key == "warmup_ratio" and value > 1:
        raise InputError(f"{where}: param 'warmup_ratio': must be in [0, 1], got {value!r}")
    if bound is not None:
        low, inclusive = bound
        if value < low or (value == low and not inclusive):
            op = ">=" if inclusive else ">"
            raise InputError(f"{where}: param {key!r}: must be {op} {low}, got {value!r}")
