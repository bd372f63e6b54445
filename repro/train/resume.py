"""Training resumes only from state that was completely and verifiably written.

After the Trainer saved ``trainer/checkpoint-N`` and the export of a kept step was renamed into
``exports/step-N`` (``repro/train/common.py``), ``checkpoint-N/repro_complete.json`` is written
last (temp, fsync, rename) with the sha256 of every file of the checkpoint and of every kept
export. A rerun resumes from the newest checkpoint whose record is there and whose files all
re-hash to it, and publishes exactly the exports that record lists: a checkpoint whose export
failed (disk full) or was cut short (kill -9), or whose bytes changed, is skipped, so training
re-runs from the previous one and re-exports, publishing the same bytes as a clean run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from repro.errors import InputError
from repro.provenance.digest import digest_tree
from repro.provenance.record import read_json, write_json_atomic

log = logging.getLogger("repro.train")
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = "repro_complete.json"  # in checkpoint-N, written last: the digests of what it holds


def _checkpoint_files(checkpoint: Path) -> dict[str, str]:
    return {rel: sha for rel, sha in digest_tree(checkpoint).items()
            if rel != COMPLETE and not rel.startswith(f".{COMPLETE}.")}


def _resumable(checkpoint: Path, export_dir: Path) -> tuple[dict | None, str]:
    """(its completion record, "") when every file of ``checkpoint`` and of the exports it lists
    re-hashes to the record; (None, why) otherwise."""
    if not (checkpoint / COMPLETE).is_file():
        return None, "no completion record (its save or export did not finish)"
    try:
        record = read_json(checkpoint / COMPLETE, follow=False)
        if _checkpoint_files(checkpoint) != record["checkpoint"]:
            return None, "its files differ from its completion record"
        for step, files in sorted(record["exports"].items()):
            if not (export_dir / step).is_dir() or digest_tree(export_dir / step) != files:
                return None, f"export {step} is missing or differs from its completion record"
    except (InputError, OSError, KeyError, TypeError, AttributeError) as exc:
        return None, f"unreadable completion record or files ({exc})"
    return record, ""


def record_complete(checkpoint: Path, exports: dict[str, dict[str, str]]) -> None:
    """Mark ``checkpoint`` resumable: the digests of its files and of the kept ``exports``
    ({"step-N": {file: sha256}}), written last and atomically."""
    write_json_atomic(checkpoint / COMPLETE, {"checkpoint": _checkpoint_files(checkpoint), "exports": exports})


def latest_checkpoint(trainer_dir: Path, export_dir: Path) -> tuple[Path | None, dict]:
    """The newest checkpoint that was completely and verifiably written, and the exports its
    record lists ({"step-N": {file: sha256}}). Incomplete ones are skipped (not deleted: every
    rank calls this) and overwritten when training reaches their step again."""
    if not trainer_dir.is_dir():
        return None, {}
    found = sorted(((int(m.group(1)), p) for p in trainer_dir.iterdir()
                    if (m := CHECKPOINT_DIR.match(p.name)) and p.is_dir()), reverse=True)
    for _, path in found:
        record, why = _resumable(path, export_dir)
        if record is not None:
            return path, record["exports"]
        log.warning("not resuming from %s: %s", path.name, why)
    return None, {}
