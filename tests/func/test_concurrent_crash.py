"""kill -9 in the middle of a concurrent run (`repro run smoke --jobs 2`, two stages running),
then rerun: nothing half-published, no worker left behind, completed stages served, and the
same output digests as the uninterrupted one-at-a-time session run (the kill -9 harness of
test_crash.py, for the scheduler of repro/pipeline/concurrent.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import REPO, manifest_digests, repro, repro_cmd, repro_env, stage_lines, store_problems
from test_crash import _wait_for, _wait_for_build


def _workers_of(runs: Path) -> list[int]:
    """Live `repro stage-worker` processes serving ``runs``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stage-worker" in cmd and str(runs).encode() in cmd:
            found.append(int(proc.name))
    return found


def test_kill9_mid_concurrent_run_then_rerun_matches_the_clean_run(smoke_run, tmp_path):
    import queue
    import threading

    runs = tmp_path / "runs"
    proc = subprocess.Popen(repro_cmd("run", "smoke", "--profile", "tiny", "--runs-dir", runs, "--jobs", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=repro_env(),
                            cwd=REPO, start_new_session=True)
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
    seen: list[str] = []
    try:
        # after the SFT model is trained, wait until two stages run at once, then kill the run's
        # main process only: its workers must die with it
        while not any(s.name == "llm" for s in stage_lines(seen[-1] if seen else "")):
            assert _wait_for(lines, seen, "["), "".join(seen)[-3000:]
        while "(running 2," not in seen[-1] or not seen[-1].startswith("start"):
            assert _wait_for(lines, seen, "start"), "".join(seen)[-3000:]
        assert _wait_for_build(runs, proc)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while _workers_of(runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers_of(runs), "worker processes outlived the killed run"
    assert not store_problems(runs)
    completed = [s.name for s in stage_lines("".join(seen))]
    final = repro("run", "smoke", "--profile", "tiny", "--runs-dir", runs, "--jobs", "2")
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    status = {s.name: s.status for s in stage_lines(final.stdout)}
    assert all(status[n] == "cached" for n in completed), (completed, status)
    assert any(s == "ran" for s in status.values())  # the kill landed before the end
    got, want = manifest_digests(runs), smoke_run.digests
    assert sorted(n for n in want if got.get(n) != want[n]) == []
    verdict = repro("verify", runs / "smoke")
    assert verdict.returncode == 0 and "verdict: PASSED" in verdict.stdout, verdict.stdout
