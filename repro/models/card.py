"""``repro_model.json``: the kit's description of a model checkpoint directory.

``{"architecture": "llava"|"causal_lm", "template": <chat template>, "image_preprocessing": ...}``
(see docs/ARCHITECTURE.md); downstream stages read it instead of guessing from config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.errors import InputError

REPRO_MODEL_FILE = "repro_model.json"
# What a checkpoint's config.json ``architectures`` means to the kit (anything else: causal_lm).
ARCHITECTURES = ("llava", "causal_lm", "image_text_to_text", "clip_vision")
CONFIG_ARCHITECTURES = {"LlavaForConditionalGeneration": "llava",
                        "MllamaForConditionalGeneration": "image_text_to_text"}


def write_model_card(out_dir: Path, **fields: Any) -> None:
    """Write ``repro_model.json`` (the kit's own description of a checkpoint directory)."""
    (out_dir / REPRO_MODEL_FILE).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


def read_model_card(model_dir: Path, expect: tuple[str, ...] | str | None = None) -> dict[str, Any]:
    """Read ``repro_model.json``, with a one-line error naming the file when missing or invalid,
    or when its architecture is not one of ``expect``."""
    path = Path(model_dir) / REPRO_MODEL_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing (not a model stage output)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise InputError(f"{path}: architecture: field missing")
    allowed = (expect,) if isinstance(expect, str) else expect
    if allowed and card["architecture"] not in allowed:
        raise InputError(f"{path}: architecture: expected {' or '.join(map(repr, allowed))}, "
                         f"got {card['architecture']!r}")
    return card
