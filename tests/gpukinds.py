"""Stage kinds for the concurrent-scheduler tests, declared with GPU needs like real kinds
(``one``; ``launch`` with an accelerate config) and imported by the worker processes too
(``REPRO_KIND_MODULES=gpukinds``). Each writes what it was given (``CUDA_VISIBLE_DEVICES``)
and when it ran; a rendezvous makes concurrency observable rather than timed."""

import json
import os
import time
from pathlib import Path

from repro.errors import InputError
from repro.stages import KINDS, declare
from repro.stages.kind import Kind, P


def probe(ctx):
    """Records its GPUs and interval; with ``meet``, first waits until ``meet`` stages of the
    same ``room`` have arrived (a stage that never meets the others fails after 120 s)."""
    t0 = time.time()
    room, meet = ctx.param("room", None), ctx.param("meet", 0)
    if room:
        Path(room, ctx.name).touch()
        while len(list(Path(room).iterdir())) < meet:
            if time.time() - t0 > 120:
                raise InputError(f"stage {ctx.name}: only {len(list(Path(room).iterdir()))} of {meet} met")
            time.sleep(0.05)
    time.sleep(ctx.param("sleep", 0.0))
    (ctx.out / "ran.json").write_text(json.dumps({"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                                  "start": t0, "end": time.time(), "pid": os.getpid()}))


def fail(ctx):
    time.sleep(ctx.param("sleep", 0.0))
    raise InputError(f"stage {ctx.name}: failed on purpose")


_PARAMS = (P("sleep", float, 0.0), P("room", str), P("meet", int, 0), P("launch", str), P("tag", str))
if "test/gpu_one" not in KINDS:
    declare(Kind("test/gpu_one", "gpukinds:probe", _PARAMS, gpus="one"),
            Kind("test/gpu_launch", "gpukinds:probe", _PARAMS, gpus="launch"),
            Kind("test/cpu_probe", "gpukinds:probe", _PARAMS),
            Kind("test/fail", "gpukinds:fail", (P("sleep", float, 0.0),)))
