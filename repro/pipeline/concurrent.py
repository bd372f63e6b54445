"""``repro run --jobs N --gpus 0,1,2,3``: the stages of an experiment run concurrently, each as
soon as the stages it reads from are done, within the job slots and GPUs given.

Which ready stage starts, and on which GPUs, is the policy of ``schedule.py`` (the one ``repro
plan`` simulates). Everything else is the runner's, unchanged: each stage is keyed, served from
the store or built in its own build directory and published by one rename (``Runner._stage``),
called here from one thread per running stage; the stage function itself runs in a worker
process (``repro/executors/workers.py``) whose ``CUDA_VISIBLE_DEVICES`` is the GPUs it was
given. Two stages with the same key never build at once: the second waits and is then served.
Stages already in the store are served here without a worker.

On a failure no new stage starts; with ``on_failure="finish"`` (default) the running stages
finish and are published, with ``"cancel"`` their workers are stopped (nothing of theirs is
published; training scratch stays, so a rerun resumes). Then the first failure is raised, naming
its stage. Terminal output: one line per stage start and end, each ending with the progress
``running R, done D/N, left L``; the end lines keep the sequential runner's format.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from pathlib import Path

from repro.errors import InputError
from repro.executors.request import now
from repro.executors.resources import GpuPool, stage_resources
from repro.pipeline import cache
from repro.pipeline.diskfull import writing
from repro.pipeline.store import RESERVED
from repro.pipeline.schedule import pick, priority_order
from repro.provenance.record import output_digest

ON_FAILURE = ("finish", "cancel")


def visible_gpus() -> list[int]:
    """GPU indices this process may use: ``CUDA_VISIBLE_DEVICES`` (numeric), else ``nvidia-smi -L``."""
    import shutil
    import subprocess

    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(g) for g in env.split(",") if g.strip().isdigit()]
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        return list(range(sum(1 for line in out.splitlines() if line.startswith("GPU "))))
    return []


def parse_gpus(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ids = [int(g) for g in value.split(",") if g.strip()]
    except ValueError:
        raise InputError(f"--gpus {value!r}: expected GPU indices, e.g. 0,1,2,3") from None
    if len(set(ids)) != len(ids) or any(g < 0 for g in ids):
        raise InputError(f"--gpus {value!r}: each GPU index once, none negative")
    return ids


def _hours(exp) -> dict[str, float]:
    """Per stage, the cost model's hours (paper profile): the priority of the longest path."""
    if exp.profile == "tiny":
        return {}
    from repro.report.estimates import estimate
    from repro.report.wallclock import stage_hours

    return {n: stage_hours(estimate(exp, s).gpu_hours, stage_resources(s.kind, s.params, exp.profile))
            for n, s in exp.stages.items()}


class Scheduler:
    def __init__(self, runner, exp, jobs: int, gpus: list[int] | None, on_failure: str = "finish",
                 affinity: bool = True, overrides: tuple[str, ...] = ()):
        if on_failure not in ON_FAILURE:
            raise InputError(f"--on-failure {on_failure!r}: one of {', '.join(ON_FAILURE)}")
        self.runner, self.exp, self.jobs, self.on_failure = runner, exp, max(1, jobs), on_failure
        self.affinity = affinity  # send a stage to the worker that last served its model (item 2)
        self.overrides = tuple(overrides)  # the --set items, recorded in the manifest
        self.echo = runner.echo
        self.res = {n: stage_resources(s.kind, s.params, exp.profile, on_gpus=gpus is not None)
                    for n, s in exp.stages.items()}
        self.pool = GpuPool([gpus or []])
        for name, r in self.res.items():
            if not self.pool.fits_ever(r):
                raise InputError(f"stage {name!r} ({exp.stages[name].kind}) needs {r.gpus} GPU(s); "
                                 f"--gpus gives {len(gpus or [])} ({','.join(map(str, gpus or [])) or 'none'})")
        self.order = priority_order(exp.stages, _hours(exp))
        self.done: "queue.Queue[tuple]" = queue.Queue()
        self.running: dict[str, tuple] = {}  # name -> (slot, GPUs taken, key, t0)
        self.cpu_free = list(range(self.jobs))
        self.keys: dict[str, str] = {}

    def _progress(self, ndone: int) -> str:
        total = len(self.exp.stages)
        return f"running {len(self.running)}, done {ndone}/{total}, left {total - ndone - len(self.running)}"

    def _key(self, name: str, digests: dict) -> str:
        if name not in self.keys:
            from repro.pipeline.runner import key_components

            spec = self.exp.stages[name]
            comps, _ = key_components(self.runner.executor, spec, {r: digests[u] for r, u in spec.inputs.items()})
            self.keys[name] = cache.stage_key(comps)
        return self.keys[name]

    def _work(self, name: str, digests: dict, invocation: str) -> None:
        try:
            outcome, statement = self.runner._stage(self.exp, self.exp.stages[name], digests, invocation)
            self.done.put((name, outcome, statement, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduling thread
            self.done.put((name, None, None, exc))

    def _start(self, name: str, taken: list, digests: dict, invocation: str, ndone: int) -> None:
        spec, executor = self.exp.stages[name], self.runner.executor
        model = spec.inputs.get("model")
        if taken:
            slot = ("gpu", tuple(taken[0][1]))
        else:
            affine = [s[1] for s in executor.affine(model) if s[0] == "cpu" and s[1] in self.cpu_free
                      and self.affinity]
            slot = ("cpu", (affine or self.cpu_free)[0])
            self.cpu_free.remove(slot[1])
        executor.assign(name, slot, model)
        self.running[name] = (slot, taken, self.keys[name], time.perf_counter())
        where = f" on GPU {','.join(map(str, slot[1]))}" if taken else ""
        self.echo(f"start {name:<24} {spec.kind}{where}  ({self._progress(ndone)})")
        threading.Thread(target=self._work, args=(name, dict(digests), invocation), daemon=True).start()

    def _ready(self, waiting: dict, digests: dict) -> list[str]:
        building, ready = {r[2] for r in self.running.values()}, []
        for name in self.order:
            if name in waiting and not waiting[name] and self._key(name, digests) not in building:
                building.add(self.keys[name])  # one of several stages with one key: the others wait
                ready.append(name)
        return ready

    def _serve_cached(self, ready: list[str], waiting: dict, digests: dict, invocation: str) -> list[tuple]:
        """Stages whose key is in the store: served here, in order, without a worker."""
        served = []
        for name in ready:
            if self.runner.store.statement(self.keys[name]) is not None:
                del waiting[name]
                served.append((name, *self.runner._stage(self.exp, self.exp.stages[name], digests, invocation), None))
        return served

    def run(self) -> Path:
        if self.exp.name in RESERVED:
            raise InputError(f"experiment name {self.exp.name!r} is reserved for the runs directory")
        with writing("the runs directory", self.runner.store.root):
            return self._run()

    def _run(self) -> Path:
        runner, exp = self.runner, self.exp
        removed = runner.store.clean_stale_builds()
        if removed:
            self.echo(f"removed {removed} half-built stage(s) left by an interrupted run")
        started, invocation = now(), uuid.uuid4().hex
        runner._keys = {}
        waiting = {n: set(s.inputs.values()) for n, s in exp.stages.items()}
        digests: dict[str, str] = {}
        entries: dict[str, dict] = {}
        failure: BaseException | None = None
        ndone = 0
        try:
            while ndone < len(exp.stages) and not (failure and not self.running):
                events = []
                if failure is None:
                    ready = self._ready(waiting, digests)
                    events = self._serve_cached(ready, waiting, digests, invocation)
                    if not events:
                        prefer = {n: [g for s in runner.executor.affine(exp.stages[n].inputs.get("model"))
                                      if s[0] == "gpu" and len(s[1]) == 1 for g in s[1]]
                                  for n in ready} if self.affinity else {}
                        for name, taken in pick(ready, self.res, self.pool, self.jobs - len(self.running), prefer):
                            del waiting[name]
                            self._start(name, taken, digests, invocation, ndone)
                if not events:
                    if not self.running:
                        raise InputError(f"{exp.source}: no stage can start (a cycle?)")  # guarded by the loader
                    events = [self._next()]
                for name, outcome, statement, exc in events:
                    ndone, failure = self._finish(name, outcome, statement, exc, waiting, digests, entries,
                                                  ndone, failure)
        except KeyboardInterrupt:
            runner.executor.stop(None)
            self._drain()
            raise
        if failure is not None:
            raise failure
        return runner._write_manifest(exp, entries, started, invocation, self.overrides)

    def _next(self) -> tuple:
        while True:
            try:
                return self.done.get(timeout=0.5)  # a timeout keeps Ctrl-C/SIGTERM responsive
            except queue.Empty:
                continue

    def _drain(self) -> None:
        while self.running:
            name = self._next()[0]
            self._release(name)

    def _release(self, name: str) -> float:
        slot, taken, _, t0 = self.running.pop(name, (None, [], None, time.perf_counter()))
        self.pool.give(taken)
        if slot and slot[0] == "cpu":
            self.cpu_free.append(slot[1])
        return time.perf_counter() - t0

    def _finish(self, name, outcome, statement, exc, waiting, digests, entries, ndone, failure):
        seconds = self._release(name)
        spec = self.exp.stages[name]
        if exc is not None:
            if failure is None:
                failure = exc
                self.echo(f"FAILED {name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                self._stop_after_failure()
            else:
                self.echo(f"stopped {name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return ndone, failure
        ndone += 1
        digests[name] = output_digest(statement)
        entries[name] = self.runner._entry(spec, outcome.key, statement)
        with writing(f"the link to stage {name!r}", self.runner.store.root / self.exp.name):
            self.runner.store.link_stage(self.exp.name, name, outcome.key)
        for deps in waiting.values():
            deps.discard(name)
        tail = f" ({outcome.note})" if outcome.note else ""
        self.echo(f"[{ndone}/{len(self.exp.stages)}] {name:<24} {outcome.status:<6} "
                  f"{seconds if outcome.status == 'ran' else 0.0:6.1f}s  {spec.kind}{tail}  ({self._progress(ndone)})")
        return ndone, failure

    def _stop_after_failure(self) -> None:
        names = sorted(self.running)
        if not names:
            self.echo("stopping: no new stages start")
        elif self.on_failure == "cancel":
            self.echo(f"stopping: no new stages start; cancelling {len(names)} running: {', '.join(names)}")
            self.runner.executor.stop([self.running[n][0] for n in names])
        else:
            self.echo(f"stopping: no new stages start; {len(names)} running finish first: {', '.join(names)}")


def run_concurrent(runner, exp, overrides: tuple[str, ...], jobs: int, gpus: list[int] | None,
                   on_failure: str = "finish") -> Path:
    return Scheduler(runner, exp, jobs, gpus, on_failure, overrides=overrides).run()
