"""File and directory digests.

A directory digest is ``dirHash`` (its in-toto DigestSet name; older records of this kit say
``dirHash1`` and are still read): sha256 over ``sha256sum``-style lines (``<hex>  <path>\\n``)
of every file below it, sorted bytewise by relative path. Per-file digests are kept too, so a
model directory stays checkable file by file.

Only plain files and directories are hashed: a symlink, FIFO, socket or device below a hashed
tree is refused (``NotRegularFile``), and files are opened non-blocking and checked with
``fstat`` after opening, so a FIFO swapped in after listing cannot hang a run or ``verify``.

Speed: files are read in large chunks and hashed in parallel threads (hashlib releases the GIL
on large buffers). An interrupt (Ctrl-C, SIGTERM) stops every worker within one chunk.
``DigestCache`` skips re-reading a file whose (size, mtime, inode) is unchanged; it serves
``repro status`` only: the runner and ``repro verify`` always re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from repro.errors import InputError

# The DigestSet key of a directory digest: the algorithm's name in in-toto/attestation
# spec/v1/digest_set.md and in its Go and Rust validators (go/v1/resource_descriptor.go). The
# spec's example still says "dirHash1", which this kit wrote until now: read, never written.
DIR_HASH = "dirHash"
LEGACY_DIR_HASH = "dirHash1"
CHUNK = 8 << 20  # 8 MiB reads keep syscall overhead negligible against hashing
MAX_WORKERS = max(2, min(8, os.cpu_count() or 2))
_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory"}


class NotRegularFile(InputError):
    """A path that must be a plain file (or a plain directory) is something else."""

    def __init__(self, path, kind: str, expected: str = "only plain files are accepted"):
        super().__init__(f"{path}: is {kind}; {expected}")
        self.path, self.kind = str(path), kind


class _Stopped(Exception):
    """A hashing worker stopped because its caller was interrupted (the caller's exception wins)."""


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: Path, follow: bool = True) -> int:
    """A read-only descriptor of ``path``, refused unless it is a regular file. Non-blocking
    open: opening a FIFO returns at once instead of waiting for a writer. ``follow=False``
    refuses a symlink too (O_NOFOLLOW)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError:
        if not follow and os.path.islink(path):
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, _kind(mode))
    return fd


def read_regular(path: Path, follow: bool = True) -> bytes:
    fd = open_regular(path, follow)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def sha256_file(path: Path, stop: threading.Event | None = None, follow: bool = True) -> str:
    h = hashlib.sha256()
    fd = open_regular(path, follow)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            if stop is not None and stop.is_set():
                raise _Stopped
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_json(obj) -> str:
    return sha256_bytes(canonical_json(obj))


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of every regular file below ``root``, sorted bytewise.

    ``root`` must be a real directory, and everything below it a plain file or directory: a
    symlink (to a file or a folder), FIFO, socket or device raises ``NotRegularFile``. Links are
    never followed, so nothing outside the tree is ever read.
    """
    mode = os.lstat(root).st_mode
    if not stat.S_ISDIR(mode):
        raise NotRegularFile(root, _kind(mode), "expected a plain directory")
    out: list[str] = []
    pending = [("", str(root))]
    while pending:
        rel, path = pending.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                sub = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    pending.append((sub + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    out.append(sub)
                else:
                    raise NotRegularFile(entry.path, _kind(entry.stat(follow_symlinks=False).st_mode))
    return sorted(out, key=lambda p: p.encode())


def dir_digest(digest_set: dict) -> str | None:
    """The directory digest in a DigestSet, under its current or its old name."""
    return digest_set.get(DIR_HASH) or digest_set.get(LEGACY_DIR_HASH)


def dir_hash(files: dict[str, str]) -> str:
    """dirHash over ``{relpath: sha256}``."""
    lines = "".join(f"{files[p]}  {p}\n" for p in sorted(files, key=lambda p: p.encode()))
    return sha256_bytes(lines.encode())


class DigestCache:
    """(path, size, mtime_ns, inode) -> sha256, persisted as JSON. For ``repro status`` only."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._data: dict[str, list] = {}
        self._dirty = False
        if path and os.path.lexists(path):
            try:
                self._data = json.loads(read_regular(path, follow=False))
            except (OSError, ValueError, RecursionError):
                self._data = {}  # a broken cache only costs a re-read

    def get(self, file: Path, stop: threading.Event | None = None) -> str:
        st = os.lstat(file)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = str(file.resolve())
        hit = self._data.get(key)
        if isinstance(hit, list) and hit[:3] == stamp:
            return hit[3]
        digest = sha256_file(file, stop, follow=False)
        self._data[key] = stamp + [digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        from repro.provenance.record import write_json_atomic

        if self.path and self._dirty:
            write_json_atomic(self.path, self._data, indent=None)
            self._dirty = False


def digest_tree(root: Path, cache: DigestCache | None = None) -> dict[str, str]:
    """``{relpath: sha256}`` for every file below ``root``, hashed in parallel; refuses
    anything but plain files and directories (``list_files``)."""
    rels = list_files(root)
    hasher: Callable[..., str] = cache.get if cache else (
        lambda path, stop=None: sha256_file(path, stop, follow=False))
    if len(rels) <= 1:
        return {r: hasher(root / r) for r in rels}
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=MAX_WORKERS)
    try:
        futures = [pool.submit(hasher, root / r, stop) for r in rels]
        digests = [f.result() for f in futures]
    except BaseException:
        # Ctrl-C/SIGTERM or an error: stop every worker within a chunk and drop queued files,
        # instead of letting the pool finish hashing (minutes for a large checkpoint)
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return dict(zip(rels, digests))
