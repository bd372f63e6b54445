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

An entry is served only when ``check`` finds it whole: ``store/<key>`` and its ``out/`` are plain
directories holding only plain files (a symlink, FIFO or device anywhere is refused), its
statement is well-formed and agrees with ``<key>``, and every output byte, re-read, hashes to
the statement's subjects.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from repro.errors import InputError
from repro.pipeline.cache import key_problem
from repro.provenance.digest import DigestCache, digest_tree, sha256_json
from repro.provenance.record import read_json, statement_problem, subject_files, write_json_atomic

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
        """The entry's statement when it is readable, well-formed and agrees with ``key``; None
        otherwise (absent, or refused: ``check`` says why)."""
        statement, _ = self._statement(key)
        return statement

    def _statement(self, key: str) -> tuple[dict | None, str]:
        entry = self.entry(key)
        try:
            mode = os.lstat(entry).st_mode
        except FileNotFoundError:
            return None, ""
        if not stat.S_ISDIR(mode):
            return None, f"store entry {entry} is not a plain directory (a symbolic link?)"
        path = self.statement_path(key)
        try:
            statement = read_json(path, follow=False)
        except (InputError, OSError) as exc:
            return None, f"statement unreadable: {exc}"
        why = statement_problem(statement) or key_problem(statement, key)
        return (None, f"statement {path}: {why}") if why else (statement, "")

    def check(self, key: str, cache: DigestCache | None = None) -> tuple[dict | None, str]:
        """(statement, "") when ``store/<key>`` may be served; (None, "") when there is no
        entry; (None, why) when there is one but it is refused. Outputs are re-read in full
        unless a digest cache is given (``repro status`` only: a quick look, never a decision
        to serve or consume)."""
        statement, why = self._statement(key)
        if statement is None:
            return None, why
        try:
            found = digest_tree(self.out(key), cache)
        except FileNotFoundError:
            return None, "outputs missing"
        except (InputError, OSError) as exc:
            return None, f"outputs refused: {exc}"
        expected = subject_files(statement)
        for rel in sorted(set(found) | set(expected), key=str.encode):
            if found.get(rel) != expected.get(rel):
                what = "missing" if rel not in found else "added" if rel not in expected else "modified"
                return None, f"output file {rel} {what}"
        return statement, ""

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
        if self.tmp.is_symlink() or not self.tmp.is_dir():
            remove(self.tmp)
            return 1
        n = 0
        for child in self.tmp.iterdir():
            remove(child)
            n += 1
        return n

    def publish(self, build: Path, key: str) -> None:
        """Move a finished build into place in one rename; a stale entry is moved aside first."""
        final = self.entry(key)
        if os.path.lexists(final):  # a refused entry (a link is moved aside, never followed)
            trash = self.tmp / f"replaced.{key}.{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            remove(trash)
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


def remove(path: Path) -> None:
    """Remove a file, link or folder (a link itself, never what it points to)."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


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
