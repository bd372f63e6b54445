"""Run the ``repro`` command with one fault at an exact point (a test driver, not kit code).

    python faults.py ACTION POINT NTH BALLAST -- repro-args...

At the NTH time the run reaches POINT, ACTION happens:
- ``fill``: write the file BALLAST until its filesystem is full, then carry on, so the kit's own
  next write there fails with a real ENOSPC from the kernel;
- ``kill``: SIGKILL the whole process group (like the OOM killer or ``kill -9``).

Points (where the kit writes what a resume or a publish depends on):
- ``export-start``: a training checkpoint saved by the Trainer, its export not yet begun;
- ``export-copied``: the export's files written to its temporary folder, not yet renamed;
- ``export-recorded``: the export renamed into place, the checkpoint's completion record not
  yet written;
- ``optimizer``: the Trainer about to save the optimizer and scheduler of a checkpoint;
- ``data``: a synthetic dataset about to be written;
- ``statement``: the runner about to write a stage statement;
- ``manifest``: the runner about to write the manifest.
Points are patched by name: a point whose function no longer exists fails loudly.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def fill(path: Path) -> None:
    with open(path, "ab", buffering=0) as fh:
        for chunk in (1 << 20, 4096, 512):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:
                pass


def main() -> None:
    action, point, nth, ballast = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    args = sys.argv[sys.argv.index("--") + 1:]
    seen = {"n": 0}

    def hit() -> None:
        seen["n"] += 1
        if seen["n"] != nth:
            return
        print(f"[faults] {action} at {point} #{nth}", flush=True)
        if action == "kill":
            os.killpg(0, signal.SIGKILL)
        fill(ballast)

    patch(point, hit)
    from repro.cli import main as repro_main

    repro_main(args)


def _before(owner, name: str, hit, when=lambda *a, **k: True) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            hit()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def patch(point: str, hit) -> None:
    import repro.pipeline.runner as runner
    import repro.train.common as common

    if point == "export-start":
        _before(common, "save_model_dir", hit, lambda dst, job, src=None: src is not None)
    elif point == "export-copied":
        original = common.save_model_dir

        def copied(dst, job, src=None):
            original(dst, job, src)
            if src is not None:
                hit()

        common.save_model_dir = copied
    elif point == "export-recorded":
        if not hasattr(common, "record_complete"):
            raise SystemExit("faults: this code writes no checkpoint completion record")
        _before(common, "record_complete", hit)
    elif point == "optimizer":
        from transformers import Trainer

        _before(Trainer, "_save_optimizer_and_scheduler", hit)
    elif point == "data":
        import repro.data.synthetic as synthetic

        _before(synthetic, "generate", hit)
    elif point in ("statement", "manifest"):
        name = "statement.json" if point == "statement" else "manifest.json"
        _before(runner, "write_json_atomic", hit, lambda path, *a, **k: Path(path).name == name)
    else:
        raise SystemExit(f"faults: unknown point {point!r}")


if __name__ == "__main__":
    main()
