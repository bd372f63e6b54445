"""Real small filesystems for the disk-full and read-only tests: a tmpfs mounted by the test.

Mounting needs root (this machine and CI run as root) and a kernel that lets this process mount
(no unprivileged container without CAP_SYS_ADMIN); ``unavailable()`` says why not, and the
tests skip with that reason.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when a tmpfs can be mounted here; otherwise the reason, for ``pytest.skip``."""
    if os.geteuid() != 0:
        return f"mounting a small tmpfs needs root (uid {os.geteuid()})"
    with tempfile.TemporaryDirectory() as tmp:
        proc = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp)
        if proc.returncode != 0:
            return f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}"
        subprocess.run(["umount", tmp], check=True)
    return None


class SmallFs:
    def __init__(self, path: Path):
        self.path = path

    def remount(self, *options: str) -> None:
        proc = _mount("-o", ",".join(("remount",) + options), str(self.path))
        assert proc.returncode == 0, proc.stderr

    def resize(self, mib: int) -> None:
        self.remount(f"size={mib}m")

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, name: str = ".ballast", leave: int = 0) -> Path:
        """Write a ballast file until the filesystem is full (``leave`` bytes spare, rounded to
        pages), so the next write of the code under test hits a real ENOSPC."""
        ballast = self.path / name
        with open(ballast, "ab", buffering=0) as fh:
            for chunk in (1 << 20, 4096):
                try:
                    while self.free() - chunk >= leave:
                        fh.write(b"\0" * chunk)
                except OSError:
                    pass
        return ballast


@contextmanager
def tmpfs(path: Path, mib: int) -> Iterator[SmallFs]:
    """A ``mib`` MiB tmpfs mounted at ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    proc = _mount("-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path))
    assert proc.returncode == 0, proc.stderr
    try:
        yield SmallFs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
