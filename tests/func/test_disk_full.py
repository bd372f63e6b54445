"""A full disk, on a real small filesystem (issue 19, items 1 and 7).

Each test mounts a tmpfs, copies the session run into it and runs the ``mini`` experiment (a
data stage and a checkpointing training stage) through the ``repro`` command. ENOSPC comes
from the kernel: either the filesystem is simply too small, or ``faults.py`` fills it with a
ballast file at an exact point (a checkpoint export, an optimizer save, a statement ...) so
that the kit's own next write fails. Every failure must be one line naming the path and what
was being written, publish nothing half-made, and a rerun with space must publish exactly the
bytes of a clean run. Root only (mounting): skipped elsewhere, saying why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import smallfs
from conftest import (MINI, REPO, copy_runs, manifest_digests, repro, stage_lines,
                      store_problems)

_UNAVAILABLE = smallfs.unavailable()
pytestmark = pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or "")
FAULTS = Path(__file__).with_name("faults.py")


def faulted(mini_run, runs: Path, point: str, nth: int, ballast: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(FAULTS), "fill", point, str(nth), str(ballast), "--",
           "run", MINI, "--runs-dir", str(runs)]
    return subprocess.run(cmd, capture_output=True, text=True, env=mini_run.env(), cwd=REPO,
                          timeout=900)


def assert_disk_full_line(proc: subprocess.CompletedProcess, runs: Path, *needles: str) -> str:
    """Exit non-zero, no traceback, exactly one error line naming a path under ``runs`` (and
    ``needles``); nothing half-published: every store entry whole, no manifest, no build left."""
    out = proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, out
    line = errors[0]
    assert line.startswith(f"error: {runs}/") and "No space left on device while writing" in line, line
    assert all(n in line for n in needles), (needles, line)
    assert not store_problems(runs), store_problems(runs)
    assert not (runs / MINI / "manifest.json").exists()
    tmp = runs / "store" / ".tmp"
    assert not (tmp.is_dir() and list(tmp.iterdir())), list(tmp.iterdir())
    return line


def finish_like_a_clean_run(mini_run, runs: Path) -> None:
    proc = repro("run", MINI, "--runs-dir", runs, env=mini_run.env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = manifest_digests(runs, MINI)
    differ = sorted(n for n in mini_run.digests if got.get(n) != mini_run.digests[n])
    assert not differ, f"published digests differ from the clean run's for {differ}"
    proc = repro("verify", runs / MINI, env=mini_run.env())
    assert proc.returncode == 0 and "verdict: PASSED" in proc.stdout, proc.stdout


def test_full_disk_during_checkpoint_export_then_resume_publishes_clean_bytes(smoke_run, mini_run, tmp_path):
    """Item 1: the Trainer's checkpoint-2 is saved, its export fails with ENOSPC. The rerun must
    not resume from that checkpoint (its export never completed): it publishes every kept
    checkpoint, byte for byte as a clean run."""
    with smallfs.tmpfs(tmp_path / "fs", 64) as fs:
        runs = copy_runs(smoke_run.runs, fs.path / "runs")
        ballast = fs.path / ".ballast"
        proc = faulted(mini_run, runs, "export-start", 1, ballast)
        assert "[faults] fill at export-start #1" in proc.stdout, proc.stdout[-2000:]
        assert_disk_full_line(proc, runs, "stage 'sft'")
        ballast.unlink()
        finish_like_a_clean_run(mini_run, runs)
        assert sorted(p.name for p in (runs / MINI / "stages" / "sft" / "checkpoints").iterdir()) == \
            ["step-2", "step-4", "step-6"]


# (point, nth time it is reached, what the one line must say)
# (A checkpoint export: the test above.)
CHAIN = [("data", 1, "stage 'sorry' (data/synthetic)"),
         ("optimizer", 2, "stage 'sft' (train/text_sft): its outputs or checkpoints"),
         ("statement", 1, "stage 'sft': its statement"),
         ("manifest", 1, "the manifest of 'mini'")]


def test_every_full_disk_is_one_line_and_a_rerun_with_space_succeeds(smoke_run, mini_run, tmp_path):
    """Item 7: the disk fills at each kind of writer in turn (a stage's own output, the Trainer's
    torch.save, the runner's statement and manifest), each in the rerun after the previous
    failure, space freed in between; then the last rerun completes."""
    with smallfs.tmpfs(tmp_path / "fs", 64) as fs:
        runs = copy_runs(smoke_run.runs, fs.path / "runs")
        ballast = fs.path / ".ballast"
        for point, nth, what in CHAIN:
            proc = faulted(mini_run, runs, point, nth, ballast)
            assert f"[faults] fill at {point} #{nth}" in proc.stdout, (point, proc.stdout[-2000:])
            line = assert_disk_full_line(proc, runs, what)
            print(f"  full at {point:<13} -> {line}")
            ballast.unlink()
        finish_like_a_clean_run(mini_run, runs)


def test_a_filesystem_too_small_for_the_run(smoke_run, mini_run, tmp_path):
    """The issue's own case, no fault driver: the runs dir on a filesystem with 3 MiB left after
    the session run's store; the mini run fails wherever it runs out, in one line; with more
    space the rerun completes with a clean run's bytes."""
    with smallfs.tmpfs(tmp_path / "fs", 64) as fs:
        runs = copy_runs(smoke_run.runs, fs.path / "runs")
        used = (64 << 20) - fs.free()
        fs.resize((used >> 20) + 3)
        proc = repro("run", MINI, "--runs-dir", runs, env=mini_run.env())
        assert_disk_full_line(proc, runs)
        assert "sft" not in [s.name for s in stage_lines(proc.stdout)]
        fs.resize(64)
        finish_like_a_clean_run(mini_run, runs)
