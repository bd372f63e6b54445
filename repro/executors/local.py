"""The local executor: the stage function runs in this process (tiny profile, development, and
inside a container or SLURM job, where ``repro stage-exec`` calls ``run_request``)."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any

from repro.executors.base import Executor, StageJob, StageResult
from repro.executors.request import now


@functools.lru_cache(maxsize=1)
def machine() -> tuple[dict, dict]:
    """(system description, what a stage's execution record says of this machine)."""
    from repro.provenance.system import IMAGE_ENV, describe_system, gpu_inventory

    observed = {"host": socket.gethostname(), "gpus": gpu_inventory(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "image_env": os.environ.get(IMAGE_ENV)}
    return describe_system(), observed


def probe() -> dict[str, Any]:
    """The code and environment this process computes with (they key its stages); read once
    per process, like the code fingerprint it holds. A copy: callers may annotate it."""
    import copy

    return copy.deepcopy(_probe())


@functools.lru_cache(maxsize=1)
def _probe() -> dict[str, Any]:
    from repro.pipeline import cache
    from repro.provenance import pins
    from repro.provenance.digest import sha256_file
    from repro.provenance.system import environment_fingerprint

    lock = pins.lock_path()
    return {"code": cache.code_fingerprint(), "environment": environment_fingerprint(),
            "git": cache.git_revision(), "lock_sha256": sha256_file(lock) if lock.exists() else None}


# Stages of the CPU profiles use one torch intra-op thread: their matrices are so small that
# torch's default (a thread per core) spends its time handing work between threads, 5x slower
# for the smoke run and 10x for a judge's generation on a loaded 2-core machine (measured,
# docs/executors.md); the other cores go to other stages (`--jobs N`). GPU profiles keep torch's default.
CPU_PROFILE_THREADS = 1


def stage_threads(profile: str) -> int | None:
    """Set (CPU profiles) and return the torch intra-op threads a stage of ``profile`` runs with."""
    from repro.config.schema import CPU_PROFILES

    if profile not in CPU_PROFILES:
        return None
    import torch

    torch.set_num_threads(CPU_PROFILE_THREADS)
    return CPU_PROFILE_THREADS


def run_request(request: dict, runs: Path, shared: dict | None = None) -> StageResult:
    """Rebuild the stage's context from ``request`` (paths relative to ``runs``) and run it."""
    from repro.pipeline.context import StageContext
    from repro.provenance import pins
    from repro.stages import STAGE_KINDS

    fn = STAGE_KINDS.get(request["kind"])  # imports the stage module before seeding (torch)
    ctx = StageContext(
        experiment=request["experiment"], name=request["name"], kind=request["kind"],
        params=dict(request["params"]),
        inputs={role: runs / rel for role, rel in request["inputs"].items()},
        out=runs / request["out"], seed=request["seed"], profile=request["profile"],
        lock=pins.load_lock(), scratch=runs / request["scratch"] if request.get("scratch") else None,
        shared=shared if shared is not None else {})
    threads = stage_threads(request["profile"])
    ctx.seed_everything()
    started = now()
    fn(ctx)
    finished = now()
    system, observed = machine()
    return StageResult(dependencies=ctx.dependencies, protocol=ctx.protocol_choices,
                       started=started, finished=finished, system=system,
                       execution={"executor": "local", **observed, "torch_threads": threads})


class LocalExecutor(Executor):
    name = "local"

    def probe(self, role: str) -> dict[str, Any]:
        return probe()

    def run(self, job: StageJob) -> StageResult:
        return run_request(job.request, job.runs, job.shared)

    def describe(self, kind: str, profile: str) -> dict[str, Any]:
        return {"executor": self.name, "image": None, "where": "this process"}
