"""Image paths: refuse escapes from the dataset root, check images exist and parse, and write
inline images (parquet bytes, base64 TSV cells) to a content-addressed cache.

The load-time check opens each image's header (cheap even for 558K files): a missing, empty or
non-image file fails at load with file/row/path named. A body truncated after a valid header is
caught later by ``repro.models.images.open_image``, which every consumer uses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from repro.data.rows import row_error

CACHE_ENV = "REPRO_IMAGE_CACHE"


def default_cache_dir() -> Path:
    """Where inline images go when the caller names no folder; names are sha256, so sharing is safe."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "repro-image-cache")


def safe_path(root: Path, base: Path, rel: str, file: Path, n: int, field: str) -> Path:
    """``base/rel`` resolved, refused when ``rel`` is absolute, has ``..`` or resolves (through a
    symlink) outside ``root``."""
    if not rel.strip():
        raise row_error(file, n, field, "empty image path")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise row_error(file, n, field, f"absolute image path {rel!r} refused")
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        raise row_error(file, n, field, f"image path {rel!r} escapes the dataset root ('..')")
    path = (base / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise row_error(file, n, field, f"image path {rel!r} resolves outside the dataset root (symlink?)")
    return path


def _identify(data_or_path, file: Path, n: int, field: str, shown: str) -> str:
    """The image format PIL sees in the header; a row error when there is none."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(data_or_path) as img:
            return (img.format or "img").lower()
    except Image.DecompressionBombError:  # the header claims more pixels than PIL will allocate
        raise row_error(file, n, field, f"{shown}: header claims too many pixels (PIL's "
                        f"decompression-bomb limit is {2 * Image.MAX_IMAGE_PIXELS})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise row_error(file, n, field, f"{shown}: corrupt or not an image ({exc.__class__.__name__})") from None


class ImageChecker:
    """Checks each image file once per load (VLGuard and MME point several rows at one image)."""

    def __init__(self) -> None:
        self._seen: set[Path] = set()

    def __call__(self, path: Path, file: Path, n: int, field: str, rel: str) -> Path:
        if path in self._seen:
            return path
        if not path.is_file():
            raise row_error(file, n, field, f"image {rel!r} not found")
        if path.stat().st_size == 0:
            raise row_error(file, n, field, f"image {rel!r} is empty (0 bytes)")
        _identify(path, file, n, field, f"image {rel!r}")
        self._seen.add(path)
        return path


class InlineImages:
    """Writes inline image bytes to ``cache_dir/<sha256>.<format>`` and returns that path."""

    def __init__(self, cache_dir: Path | None):
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def store(self, data: bytes, file: Path, n: int, field: str) -> Path:
        if not data:
            raise row_error(file, n, field, "empty image (0 bytes)")
        ext = _identify(io.BytesIO(data), file, n, field, "inline image")
        target = self.dir / f"{hashlib.sha256(data).hexdigest()}.{ext}"
        if not target.is_file() or target.stat().st_size != len(data):
            self.dir.mkdir(parents=True, exist_ok=True)
            # write-then-rename: a concurrent reader never sees a half-written image
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".part-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        return target

    def from_hf(self, value, file: Path, n: int, field: str) -> Path:
        """An HF ``Image`` cell: ``{"bytes": ..., "path": ...}`` or raw bytes."""
        if isinstance(value, dict):
            value = value.get("bytes")
        if not isinstance(value, (bytes, bytearray)):
            raise row_error(file, n, field, f"expected image bytes, got {type(value).__name__}")
        return self.store(bytes(value), file, n, field)

    def from_base64(self, text: str, file: Path, n: int, field: str) -> Path:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise row_error(file, n, field, "not valid base64") from None
        return self.store(data, file, n, field)
