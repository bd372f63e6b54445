"""Files from a package registry (PyPI), pinned under ``packages:`` in manifest.lock.

Some real artefacts the kit needs ship inside ordinary packages: llama-cpp-python's sdist carries
llama.cpp's vocabulary-only GGUF files (Llama 2, Llama 3) with reference encodings, and
mistral-common's wheel carries Mistral's SentencePiece models. ``download`` fetches the pinned
file with pip into a cache folder (the make step ``make fetch-packages`` and the tests call it);
``locate`` is what stages use: it finds the file there, checks its size and sha256, and never
touches the network. Members are read straight from the archive, each checked against its pin.

    python -m repro.fetch.packages download [KEY...]    # all pinned packages by default
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from repro.errors import InputError

KIND = "packages"
CACHE_ENV = "REPRO_PACKAGE_CACHE"
FETCH_TARGET = "make fetch-packages"


def cache_dir() -> Path:
    """``$REPRO_PACKAGE_CACHE``, else ``~/.cache/repro/packages``: outside any checkout."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "repro" / "packages"


def pip_command(entry: dict, dest: Path) -> list[str]:
    """The pip call that fetches exactly the pinned file: an sdist stays an sdist (no build)."""
    kind = ["--no-binary", ":all:"] if entry["file"].endswith((".tar.gz", ".zip")) else ["--only-binary", ":all:"]
    return [sys.executable, "-m", "pip", "download", "--no-deps", *kind,
            f"{entry['name']}=={entry['version']}", "--dest", str(dest)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, entry: dict, key: str) -> None:
    size = path.stat().st_size
    if size != entry["size"]:
        raise InputError(f"{path}: {size} bytes, manifest.lock packages.{key}.size pins {entry['size']}")
    got = _sha256(path)
    if got != entry["sha256"]:
        raise InputError(f"{path}: sha256 {got} != manifest.lock packages.{key}.sha256 {entry['sha256']}")


def locate(entry: dict, key: str, folder: Path | None = None) -> Path:
    """The verified pinned file in ``folder`` (default: the cache); offline, one-line errors."""
    path = Path(folder or cache_dir()) / entry["file"]
    if not path.is_file():
        raise InputError(f"{path}: missing; run `{FETCH_TARGET}` (pip download of "
                         f"{entry['name']}=={entry['version']} into {path.parent})")
    verify_file(path, entry, key)
    return path


def download(entry: dict, key: str, folder: Path | None = None) -> Path:
    """Fetch the pinned file with pip unless a verified copy is already there; returns its path."""
    folder = Path(folder or cache_dir())
    path = folder / entry["file"]
    if path.is_file():
        verify_file(path, entry, key)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(pip_command(entry, folder), capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"pip download {entry['name']}=={entry['version']}: failed ({tail[0]})")
    try:
        verify_file(path, entry, key)
    except InputError:
        path.unlink()  # never leave an unverified file where `locate` would find it
        raise
    return path


def read_members(path: Path, entry: dict, key: str, names: list[str]) -> dict[str, bytes]:
    """The bytes of each named member of a .tar.gz or wheel/zip, each checked against its pin."""
    out: dict[str, bytes] = {}
    for name in names:
        if name not in entry["members"]:
            raise InputError(f"manifest.lock: packages.{key}.members: {name!r} is not pinned")
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as tar:
            for name in names:
                try:
                    fh = tar.extractfile(name)
                except KeyError:
                    fh = None
                if fh is None:
                    raise InputError(f"{path}: member {name}: missing (or not a regular file)")
                out[name] = fh.read()
    else:
        with zipfile.ZipFile(path) as zf:
            for name in names:
                try:
                    out[name] = zf.read(name)
                except KeyError:
                    raise InputError(f"{path}: member {name}: missing") from None
    for name, data in out.items():
        got = hashlib.sha256(data).hexdigest()
        if got != entry["members"][name]:
            raise InputError(f"{path}: member {name}: sha256 {got} != manifest.lock "
                             f"packages.{key}.members pin {entry['members'][name]}")
    return out


def main(argv: list[str] | None = None) -> int:
    from repro.provenance import pins

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "download":
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        lock = pins.load_lock()
        keys = args[1:] or sorted(lock.get(KIND) or {})
        for key in keys:
            print(download(pins.find_pin(lock, KIND, key), key))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
