"""Hostile or unlucky inputs to `repro run` and `repro verify` (issue 19, items 3, 8 and 11):
they never hang, never print a traceback, and never stop the verdict from being given.

Cases work on a copy of the session's tiny run; the read-only case mounts a real tmpfs and
remounts it read-only (root only: skipped elsewhere, saying why).
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

import smallfs
from conftest import REPO, copy_runs, repro, repro_cmd, repro_env, stage_lines


def _entry(runs: Path, stage: str, experiment: str = "smoke") -> Path:
    key = json.loads((runs / experiment / "manifest.json").read_text())["stages"][stage]["key"]
    return runs / "store" / key


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def runs(smoke_run, tmp_path) -> Path:
    return copy_runs(smoke_run.runs, tmp_path / "runs")


# --- item 3: a FIFO inside the store hangs neither verify nor run ------------------------------

def test_fifo_in_the_store_hangs_neither_verify_nor_run(runs):
    out = _entry(runs, "table") / "out"
    os.mkfifo(out / "pipe")
    proc = repro("verify", runs / "smoke", timeout=120)
    assert proc.returncode == 1 and "verdict: FAILED" in proc.stdout, proc.stdout + proc.stderr
    assert any("pipe" in line and "a FIFO" in line for line in proc.stdout.splitlines()), proc.stdout
    proc = repro("run", "smoke", "--runs-dir", runs, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = {s.name: s.status for s in stage_lines(proc.stdout)}
    assert status["table"] == "ran" and list(status.values()).count("ran") == 1, proc.stdout
    assert repro("verify", runs / "smoke").returncode == 0


def test_sigterm_stops_verify_while_it_hashes(runs):
    """A 64 GiB sparse file in an entry: hashing it takes a minute; SIGTERM stops it at once
    (the hashing threads stop within one chunk instead of finishing their files)."""
    big = _entry(runs, "llm") / "out" / "huge.bin"
    with open(big, "wb") as fh:
        fh.truncate(64 << 30)
    proc = subprocess.Popen(repro_cmd("verify", runs / "smoke"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=repro_env(), cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while _bytes_read(proc.pid) < (1 << 30) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "verify ended before it hashed 1 GiB"
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        proc.wait(timeout=20)
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and stopped < 5, (proc.returncode, stopped)


def _bytes_read(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("rchar")))


# --- item 8: verify on read-only storage still gives its verdict -------------------------------

def test_verify_on_read_only_storage_gives_the_verdict(smoke_run, tmp_path):
    if smallfs.unavailable():
        pytest.skip(smallfs.unavailable())
    with smallfs.tmpfs(tmp_path / "ro", 64) as fs:
        runs = copy_runs(smoke_run.runs, fs.path / "runs")
        (runs / "smoke" / "verification.json").unlink(missing_ok=True)
        fs.remount("ro")
        proc = repro("verify", runs / "smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "verdict: PASSED"
    assert "could not write" in proc.stderr and "verification.json" in proc.stderr
    assert "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr


# --- item 11 (runtime): one line, never a traceback ---------------------------------------------

def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("make, needle", [
    (lambda m, r: m.write_text("[]"), "malformed: a JSON list"),
    (lambda m, r: m.write_text('{"stages": 5}'), "malformed: key 'experiment'"),
    (lambda m, r: m.write_text(m.read_text()[:500]), "not valid JSON"),
    (lambda m, r: m.write_text(_nested(10 ** 6)), "nested too deeply"),
    (lambda m, r: _edit(m, lambda d: d["stages"]["table"].update(statement="../../../etc/passwd")),
     "must be store/<key>/statement.json"),
    (lambda m, r: _edit(m, lambda d: d["stages"]["table"].pop("key")), "stage 'table': key 'key'"),
    (lambda m, r: _forge_statement(m, r, "{}"), "statement not an in-toto Statement v1"),
    (lambda m, r: _forge_statement(m, r, _nested(10 ** 6)), "nested too deeply"),
])
def test_malformed_records_fail_verify_in_one_line(runs, make, needle):
    make(runs / "smoke" / "manifest.json", runs)
    proc = repro("verify", runs / "smoke", timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "verdict: FAILED"
    assert needle in proc.stdout, proc.stdout


def _write(path: Path, text: str) -> None:
    path.chmod(0o644)
    path.write_text(text)


def _edit(manifest: Path, change) -> None:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))


def _forge_statement(manifest: Path, runs: Path, text: str) -> None:
    """Replace the table's statement and make the manifest vouch for it (digest, reseal), so
    verify has to read the statement itself."""
    import hashlib

    from repro.provenance.record import seal

    _write(_entry(runs, "table") / "statement.json", text)
    data = json.loads(manifest.read_text())
    data["stages"]["table"]["statement_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    manifest.write_text(json.dumps(seal(data)))


def test_unreadable_statement_is_rebuilt_by_the_next_run(runs):
    _write(_entry(runs, "table") / "statement.json", '{"_type": "https://in-toto.io/Sta')
    proc = repro("run", "smoke", "--runs-dir", runs, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert {s.name: s.status for s in stage_lines(proc.stdout)}["table"] == "ran"
    assert repro("verify", runs / "smoke").returncode == 0


def _bomb_png() -> bytes:
    """A valid 2x2 PNG whose header claims 20000 x 20000 pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, 20000, 20000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _sorry_not_utf8(root: Path) -> None:
    path = root / "question.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"', b'"\xff\xfe', 1) + b"".join(lines[2:]))


def _llava_nested(root: Path) -> None:
    (root / "llava_v1_5_mix665k.json").write_text(_nested(10 ** 6))


def _llava_bomb(root: Path) -> None:
    rows = json.loads((root / "llava_v1_5_mix665k.json").read_text())
    image = next(r["image"] for r in rows if r.get("image"))
    (root / image).write_bytes(_bomb_png())


@pytest.mark.parametrize("dataset, corrupt, needles", [
    ("sorry_bench", _sorry_not_utf8, ["question.jsonl", "row 2", "not UTF-8"]),
    ("llava_instruct", _llava_nested, ["llava_v1_5_mix665k.json", "nested too deeply"]),
    ("llava_instruct", _llava_bomb, ["too many pixels"]),
])
def test_hostile_dataset_files_fail_in_one_line(tmp_path, dataset, corrupt, needles):
    from repro.data.synthetic import generate

    root = tmp_path / dataset
    generate(dataset, root, 0, 1)
    corrupt(root)
    proc = repro("data", "check", dataset, root, timeout=300)
    assert proc.returncode != 0
    line = _one_error_line(proc)
    assert all(n in line for n in needles), line
