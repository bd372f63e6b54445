"""Extra checkpoint points of a training stage's output: step 0 and the final step.

Figure 2 plots safety over stage 2; its x-axis starts at step 0 (stage 2's input, the stage-1
output) and ends at the final model, which a ``save_steps`` grid misses whenever the step count
is not a multiple of it (the paper's stage 2: 10,396 steps at batch 64, kept every 200). Both are
written as kept checkpoints (``checkpoints/step-N``, loadable directories like the others), so an
evaluation sweep over ``checkpoint`` reaches them. Files are hard links (a 7B model is not copied).
"""

from __future__ import annotations

from pathlib import Path

# files of a stage output that are records about the stage, not part of the model
NOT_MODEL_FILES = ("metrics.json",)


def _link_model_files(src: Path, dst: Path) -> None:
    from repro.train.common import _link_or_copy

    tmp = dst.parent / f".{dst.name}.tmp"
    tmp.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in NOT_MODEL_FILES:
            _link_or_copy(f, tmp / f.name)
    tmp.rename(dst)


def add_checkpoint_points(out: Path, model_dir: Path, steps: int, *, initial: bool,
                          final: bool) -> list[int]:
    """Add ``checkpoints/step-0`` (the input model) and/or ``checkpoints/step-<steps>`` (the
    final model in ``out``) unless present; returns the kept steps, sorted."""
    checkpoints = Path(out) / "checkpoints"
    if initial and not (checkpoints / "step-0").exists():
        _link_model_files(Path(model_dir), checkpoints / "step-0")
    if final and not (checkpoints / f"step-{steps}").exists():
        _link_model_files(Path(out), checkpoints / f"step-{steps}")
    if not checkpoints.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in checkpoints.glob("step-*"))
