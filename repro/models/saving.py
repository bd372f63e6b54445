"""Saving a tokenizer or processor so that its files depend on the model alone, not the machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# transformers writes loading kwargs that follow the environment into tokenizer_config.json
# (``local_files_only`` is HF_HUB_OFFLINE's value), so the same stage would publish other bytes
# on a machine set offline; they are dropped after saving.
ENVIRONMENT_KEYS = ("local_files_only",)


def save_processing(obj: Any, out_dir: Path) -> None:
    """``obj.save_pretrained(out_dir)`` for a tokenizer or processor, minus ENVIRONMENT_KEYS."""
    obj.save_pretrained(out_dir)
    path = Path(out_dir) / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if any(k in config for k in ENVIRONMENT_KEYS):
        for key in ENVIRONMENT_KEYS:
            config.pop(key, None)
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
