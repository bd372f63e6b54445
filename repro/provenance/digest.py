"""File and directory digests.

A directory digest is ``dirHash`` (its in-toto DigestSet name; older records of this kit say
``dirHash1`` and are still read): sha256 over ``sha256sum``-style lines (``<hex>  <path>\\n``)
of every file below it, sorted bytewise by relative path. Per-file digests are kept too, so a
model directory stays checkable file by file.

Speed: files are read in large chunks and hashed in parallel threads (hashlib releases the GIL
on large buffers). ``DigestCache`` skips re-reading a file whose (size, mtime, inode) is
unchanged; it serves cache-key computation only. ``repro verify`` always re-reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The DigestSet key of a directory digest: the algorithm's name in in-toto/attestation
# spec/v1/digest_set.md and in its Go and Rust validators (go/v1/resource_descriptor.go). The
# spec's example still says "dirHash1", which this kit wrote until now: read, never written.
DIR_HASH = "dirHash"
LEGACY_DIR_HASH = "dirHash1"
CHUNK = 8 << 20  # 8 MiB reads keep syscall overhead negligible against hashing
MAX_WORKERS = max(2, min(8, os.cpu_count() or 2))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
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

    Symlinks are listed as files of their own name and never followed out of the tree: a link
    in an output directory is an error at publish time (see ``runner``), so none get here.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            out.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(out, key=lambda p: p.encode())


def dir_digest(digest_set: dict) -> str | None:
    """The directory digest in a DigestSet, under its current or its old name."""
    return digest_set.get(DIR_HASH) or digest_set.get(LEGACY_DIR_HASH)


def dir_hash(files: dict[str, str]) -> str:
    """dirHash over ``{relpath: sha256}``."""
    lines = "".join(f"{files[p]}  {p}\n" for p in sorted(files, key=lambda p: p.encode()))
    return sha256_bytes(lines.encode())


class DigestCache:
    """(path, size, mtime_ns, inode) -> sha256, persisted as JSON. For cache keys only."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._data: dict[str, list] = {}
        self._dirty = False
        if path and path.exists():
            try:
                self._data = json.loads(path.read_text())
            except (OSError, ValueError):
                self._data = {}  # a broken cache only costs a re-read

    def get(self, file: Path) -> str:
        st = file.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = str(file.resolve())
        hit = self._data.get(key)
        if hit and hit[:3] == stamp:
            return hit[3]
        digest = sha256_file(file)
        self._data[key] = stamp + [digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if self.path and self._dirty:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data))
            os.replace(tmp, self.path)
            self._dirty = False


def digest_tree(root: Path, cache: DigestCache | None = None) -> dict[str, str]:
    """``{relpath: sha256}`` for every file below ``root``, hashed in parallel."""
    rels = list_files(root)
    hasher = cache.get if cache else sha256_file
    if len(rels) <= 1:
        return {r: hasher(root / r) for r in rels}
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        digests = list(pool.map(lambda r: hasher(root / r), rels))
    return dict(zip(rels, digests))
