"""Small file helpers every layer uses: timestamps, atomic writes, JSON reads, sha256 digests.

Writes are atomic: a file appears complete or not at all (temp file beside it, fsync, rename).
The temp name carries the process and thread, so two writers of one record (the concurrent
scheduler's threads writing the system description) never rename each other's file. A write
error that names no file (ENOSPC from write or fsync) is re-raised naming the target, so the
one-line message says where. Reads of records open regular files only: a symlink (when
``follow=False``), FIFO, socket or device is refused (``NotRegularFile``), and a FIFO never
blocks the reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

from repro.errors import InputError

CHUNK = 8 << 20  # 8 MiB reads keep syscall overhead negligible against hashing
_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory"}


# ------------------------------------------------------------------ time
def timestamp() -> str:
    """Now, in UTC, as records write it: ``2025-01-31T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------ regular files only
class NotRegularFile(InputError):
    """A path that must be a plain file (or a plain directory) is something else."""

    def __init__(self, path, kind: str, expected: str = "only plain files are accepted"):
        super().__init__(f"{path}: is {kind}; {expected}")
        self.path, self.kind = str(path), kind


class Stopped(Exception):
    """A hashing worker stopped because its caller was interrupted (the caller's exception wins)."""


def file_kind(mode: int) -> str:
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
        raise NotRegularFile(path, file_kind(mode))
    return fd


def read_regular(path: Path, follow: bool = True) -> bytes:
    fd = open_regular(path, follow)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


# ------------------------------------------------------------------ sha256
def sha256_file(path: Path, stop: threading.Event | None = None, follow: bool = True) -> str:
    """The file's sha256, read in large chunks; ``stop`` set: raise ``Stopped`` within a chunk."""
    h = hashlib.sha256()
    fd = open_regular(path, follow)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            if stop is not None and stop.is_set():
                raise Stopped
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def sha256_bytes(data) -> str:
    """sha256 of bytes (or any buffer: a memoryview of tensor bytes)."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ atomic writes
def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so ``path`` appears complete or not at all (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename:
            raise
        # write/fsync errors (ENOSPC) name no file; add it so the one-line message says where
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON (sorted keys, UTF-8, a final newline) atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path, follow: bool = True) -> Any:
    """Parse a JSON record; a one-line ``InputError`` naming the file when it is missing, not a
    regular file (a FIFO never blocks: ``read_regular``), not UTF-8, not JSON or nested too
    deeply for the parser. ``follow=False`` refuses a symlink (store entries)."""
    try:
        data = read_regular(path, follow)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (checkpoints of a 7B model are large; a link costs
    nothing), or a copy where linking fails (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
