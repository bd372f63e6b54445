"""A full disk anywhere in a run becomes one line naming the path and what was being written.

Writers raise ENOSPC in different shapes: ``OSError`` with or without a file name (a plain
``write`` names none; ``shutil.copyfile`` names the *source* and puts the destination in
``filename2``), safetensors' ``SafetensorError("... os error 28 ...")``, torch's ``RuntimeError``
("PytorchStreamWriter failed writing file ...", which does not mention space at all). ``writing``
recognises all of them (an error whose chain says so, or any error while the filesystem being
written has less than ``NEARLY_FULL`` left) and re-raises ``DiskFull``. What was written before
stays unpublished: the runner's build folder is removed on the way out, and training resumes
only from checkpoints whose completion record verifies (``repro/train/resume.py``).
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from repro.errors import ReproError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_SAYS_NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded|os error (28|122)\b|StorageFull",
                            re.IGNORECASE)
NEARLY_FULL = 1 << 20  # bytes: an error with less than this left is taken as a full disk


class DiskFull(ReproError):
    exit_code = 1


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _free_bytes(path: Path) -> int | None:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _named(exc: BaseException, roots: tuple[Path, ...]) -> str | None:
    """The file being written: the one an OSError names (the destination where it names two);
    else, for writers whose errors name none (torch, safetensors), the innermost frame's argument
    that is a path below ``roots`` (a source argument is passed over)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and (e.filename2 or e.filename):
            return str(e.filename2 or e.filename)
    under = [str(Path(r)) + os.sep for r in roots]
    for e in _chain(exc):
        frames, tb = [], e.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            for name, value in frame.f_locals.items():
                if name in ("src", "source") or not isinstance(value, (str, os.PathLike)):
                    continue
                text = os.fspath(value)
                if isinstance(text, str) and any(text.startswith(u) for u in under):
                    return text
    return None


def diagnose(exc: BaseException, paths: tuple[Path, ...]) -> tuple[str, str] | None:
    """(the path, the writer's words when they do not say why) for a full disk; None if ``exc``
    is not about space."""
    said = any((isinstance(e, OSError) and e.errno in NO_SPACE) or _SAYS_NO_SPACE.search(str(e))
               for e in _chain(exc))
    full = [p for p in paths if (free := _free_bytes(p)) is not None and free < NEARLY_FULL]
    if not said and not full:
        return None
    where = _named(exc, paths) or (str(full[0]) if full else str(paths[0]) if paths else "?")
    words = "" if said else f" ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:160]})"
    return where, words


@contextmanager
def writing(what: str, *paths: Path) -> Iterator[None]:
    """Turn a full disk inside the block into ``DiskFull``: ``<path>: No space left on device
    while writing <what>``. ``paths``: where the block writes (named when the error names none)."""
    try:
        yield
    except (ReproError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        found = diagnose(exc, paths)
        if found is None:
            raise
        where, words = found
        raise DiskFull(f"{where}: No space left on device while writing {what}{words}; nothing "
                       "half-written was published: free space and run the same command again to "
                       "resume") from None
