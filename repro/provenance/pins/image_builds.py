"""The pins as docker builds see them: each image's build args (`python -m repro.provenance.pins
build-args`), the compose .env lines (`compose-env`), and the default build args the Dockerfiles
and docker-compose.yml repeat, checked by `check` and rewritten by `sync-locks`/`set-digest`.

The Dockerfiles' and docker-compose.yml's default build args mirror the images' pins, so a plain
`docker build` or `docker compose build` takes the pinned bases.
"""

from __future__ import annotations

import re
from pathlib import Path

from repro.errors import InputError
from repro.io import write_text_atomic
from repro.provenance.pins import IMAGE_DIGEST, find_pin, repo_root

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
# An unpinned image's default digest: not a valid digest, so `FROM ref@digest` stops the build.
UNSET_DIGEST = "sha256:unset-see-manifest.lock-and-docs/containers.md"
# The label an offline build (base made locally, used by image ID) carries: the pinned ref@digest
# its base stands in for. `repro verify` warns on such an image instead of failing it.
STAND_IN_LABEL = "org.repro.base.stand-in-for"


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
    if not ref or not IMAGE_DIGEST.match(digest):
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
            write_text_atomic(path, new)
            changed.append(path)
    return changed
