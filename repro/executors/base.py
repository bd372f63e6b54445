"""The executor interface: where a stage runs.

The runner keys, hashes, records and publishes; an executor only runs the stage function on a
prepared build directory and reports back. Every executor answers three questions:

- ``probe(role)``: which code and environment will compute a stage of that image role? Those
  enter the stage's cache key, so a stage computed in a container is keyed by the container's
  code and packages, inspected there rather than assumed from the host.
- ``run(job)``: run the stage, or raise ``StageFailed`` (nothing is published then).
- ``describe(kind, profile)``: where a stage of this kind would run, for ``repro plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repro.errors import ReproError


class StageFailed(ReproError):
    """A stage's process died or exited non-zero; the message carries its last log lines."""


def image_role(kind: str) -> str:
    """Which image a stage kind runs in, as its descriptor declares (``repro/stages/``): the eval
    image carries vLLM and the judges; what trains, merges, fetches or analyses weights runs in
    the train image (DeepSpeed, nvcc)."""
    from repro.stages import describe

    return describe(kind).image


# The manifest.lock image (images.<name>) each role must be built from, per profile: the tiny
# profile and the rehearsal (the paper's declarations on a CPU) run both roles in the CPU image.
LOCK_IMAGE = {"paper": {"train": "train", "eval": "eval"}, "tiny": {"train": "cpu", "eval": "cpu"},
              "rehearsal": {"train": "cpu", "eval": "cpu"}}


def lock_image(profile: str, role: str) -> str:
    return LOCK_IMAGE.get(profile, LOCK_IMAGE["paper"])[role]


def image_bases(profile: str) -> dict[str, str]:
    """Per image role: the manifest.lock base image its image is built from, with its digest
    ("digest unpinned" until one is set), for ``repro plan``."""
    from repro.provenance.pins import load_lock

    images = load_lock().get("images") or {}
    out = {}
    for role in ("train", "eval"):
        entry = images.get(lock_image(profile, role)) or {}
        if entry.get("ref"):
            out[role] = f"{entry['ref']}@{entry['digest']}" if entry.get("digest") else f"{entry['ref']} (digest unpinned)"
    return out


@dataclass
class StageJob:
    """One stage to run: the request (see ``request.py``), and where its build lives."""

    request: dict[str, Any]
    build: Path  # <runs>/store/.tmp/<key>.<pid>.<rand>; outputs go to build/out
    runs: Path
    key: str
    echo: Callable[[str], None] = print
    shared: dict[str, Any] = field(default_factory=dict)  # per-process cache (local executor only)

    @property
    def role(self) -> str:
        return image_role(self.request["kind"])


@dataclass
class StageResult:
    dependencies: list[dict]
    protocol: dict[str, Any]
    started: str
    finished: str
    system: dict[str, Any]  # describe_system() of the machine that ran the stage
    execution: dict[str, Any]  # executor, host, GPUs, image (ref, id, digests), container/job id


class Executor:
    name = "?"

    def probe(self, role: str) -> dict[str, Any]:
        """{"code": fingerprint, "environment": fingerprint, "git": {...}, "lock_sha256": ...}."""
        raise NotImplementedError

    def run(self, job: StageJob) -> StageResult:
        raise NotImplementedError

    def describe(self, kind: str, profile: str) -> dict[str, Any]:
        return {"executor": self.name}

    def close(self) -> None:
        pass
