"""The runs directory: a content-addressed store of stage outputs, and per-experiment views.

    runs/
      .lock                      one run at a time (pipeline/lock.py)
      store/<key>/out/           a stage's outputs, published by one atomic rename
      store/<key>/statement.json its in-toto/SLSA statement
      store/.tmp/                stages being built (removed at the next run if a run died)
      scratch/<key>/             resumable training state; deleted once the stage publishes
      systems/<sha256>.json      system descriptions, referenced from statements by digest
      <experiment>/manifest.json the experiment's manifest (stage keys, results, system)
      <experiment>/stages/<name> symlink to store/<key>/out, for people
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from repro.provenance.digest import DigestCache, sha256_json
from repro.provenance.record import read_json, write_json_atomic

RESERVED = {"store", "scratch", "systems"}


class Store:
    def __init__(self, runs_dir: Path):
        self.root = runs_dir
        self.store = runs_dir / "store"
        self.tmp = self.store / ".tmp"
        self.digests = DigestCache(runs_dir / ".digest-cache.json")

    def entry(self, key: str) -> Path:
        return self.store / key

    def out(self, key: str) -> Path:
        return self.store / key / "out"

    def statement_path(self, key: str) -> Path:
        return self.store / key / "statement.json"

    def statement(self, key: str) -> dict | None:
        path = self.statement_path(key)
        return read_json(path) if path.exists() else None

    def scratch(self, key: str) -> Path:
        path = self.root / "scratch" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_build_dir(self, key: str) -> Path:
        path = self.tmp / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        (path / "out").mkdir(parents=True)
        return path

    def clean_stale_builds(self) -> int:
        """Remove half-built stages left by a killed run (called under the run lock)."""
        if not self.tmp.exists():
            return 0
        n = 0
        for child in self.tmp.iterdir():
            shutil.rmtree(child, ignore_errors=True)
            n += 1
        return n

    def publish(self, build: Path, key: str) -> None:
        """Move a finished build into place in one rename; a stale entry is moved aside first."""
        final = self.entry(key)
        if final.exists():
            trash = self.tmp / f"replaced.{key}.{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        _fsync_tree(build)
        os.replace(build, final)
        _fsync_dir(final.parent)
        shutil.rmtree(self.root / "scratch" / key, ignore_errors=True)

    def save_system(self, system: dict) -> str:
        digest = sha256_json(system)
        path = self.root / "systems" / f"{digest}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, system)
        return digest

    def link_stage(self, experiment: str, stage: str, key: str) -> None:
        link_dir = self.root / experiment / "stages"
        link_dir.mkdir(parents=True, exist_ok=True)
        link = link_dir / stage
        tmp = link_dir / f".{stage}.{os.getpid()}.lnk"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.relpath(self.out(key), link_dir), tmp)
        os.replace(tmp, link)


def _fsync_path(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # fsync's error (ENOSPC, EIO) names no file; add it so the one-line message says where
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_path(path)


def _fsync_tree(root: Path) -> None:
    # Data must be on disk before the rename that publishes it, or a power loss could publish
    # a complete-looking directory of empty files.
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(os.path.join(dirpath, name))
        _fsync_dir(Path(dirpath))
