"""Training resumes only from a checkpoint that was completely and verifiably written (issue 19,
item 1): its completion record is there and every file of the checkpoint and of the exports it
lists re-hashes to it. The whole path (a real disk full, kill -9 during an export) is tested
through the command in tests/func/test_disk_full.py and tests/func/test_crash.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from repro.provenance.digest import digest_tree
from repro.train.resume import latest_checkpoint, record_complete


def _checkpoints(work: Path, steps: list[int]) -> tuple[Path, Path]:
    """trainer/checkpoint-N and exports/step-N for each step, each recorded complete in turn."""
    trainer, exports = work / "trainer", work / "exports"
    kept: dict[str, dict[str, str]] = {}
    for step in steps:
        ckpt = trainer / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "optimizer.pt").write_bytes(bytes([step]) * 1000)
        (ckpt / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
        export = exports / f"step-{step}"
        export.mkdir(parents=True)
        (export / "model.safetensors").write_bytes(bytes([step + 1]) * 500)
        kept[export.name] = digest_tree(export)
        record_complete(ckpt, dict(kept))
    return trainer, exports


def test_newest_verified_checkpoint_is_resumed_with_its_exports(tmp_path):
    trainer, exports = _checkpoints(tmp_path, [2, 4])
    resume, kept = latest_checkpoint(trainer, exports)
    assert resume == trainer / "checkpoint-4" and sorted(kept) == ["step-2", "step-4"]


def test_a_checkpoint_without_its_record_is_skipped(tmp_path):
    """The Trainer saved checkpoint-6 (its trainer_state.json is there), but the export failed."""
    trainer, exports = _checkpoints(tmp_path, [2, 4])
    shutil.copytree(trainer / "checkpoint-4", trainer / "checkpoint-6")
    (trainer / "checkpoint-6" / "repro_complete.json").unlink()
    resume, kept = latest_checkpoint(trainer, exports)
    assert resume == trainer / "checkpoint-4" and sorted(kept) == ["step-2", "step-4"]


def test_a_changed_file_or_a_missing_export_is_skipped(tmp_path):
    trainer, exports = _checkpoints(tmp_path, [2, 4, 6])
    data = bytearray((trainer / "checkpoint-6" / "optimizer.pt").read_bytes())
    data[500] ^= 1
    (trainer / "checkpoint-6" / "optimizer.pt").write_bytes(bytes(data))  # torn or edited
    shutil.rmtree(exports / "step-4")  # listed by checkpoint-4's record
    resume, kept = latest_checkpoint(trainer, exports)
    assert resume == trainer / "checkpoint-2" and sorted(kept) == ["step-2"]
    (trainer / "checkpoint-2" / "repro_complete.json").write_text("{")
    assert latest_checkpoint(trainer, exports) == (None, {})
