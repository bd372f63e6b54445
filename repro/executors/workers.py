"""Stages run concurrently on this machine, each in a worker process (``repro stage-worker``).

Stage functions seed the process-wide random generators and may load models into a per-process
cache, so two stages cannot share one process at the same time. Each worker is one long-lived
process bound to a slot: a set of GPUs (its ``CUDA_VISIBLE_DEVICES``, fixed when it starts, as
CUDA reads it once) or, for stages without GPUs, a CPU slot (``CUDA_VISIBLE_DEVICES`` empty, so
such a stage cannot take a GPU another stage holds). A worker runs one stage at a time, and
keeps its model cache between stages, as the single-process run does: the scheduler sends a
stage, where it can, to the worker that last served the same model (``last_model``).

The protocol is the one containers use (``request.py``): the runner writes ``request.json`` in
the stage's build directory; the worker reads a line with its path on stdin, runs the stage,
writes ``result.json`` beside it and answers one JSON line on its own channel (its stdout; the
stage's prints go to stderr, the terminal). A worker dies with the run (``PR_SET_PDEATHSIG``),
so a ``kill -9`` of the run leaves no stage running behind it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from repro.errors import InputError, ReproError
from repro.executors.base import StageFailed, StageJob, StageResult
from repro.executors.local import LocalExecutor
from repro.executors.request import REQUEST_FILE, take_result, write_json

Slot = tuple  # ("gpu", (0, 1)) or ("cpu", 0)
KIND_MODULES = "REPRO_KIND_MODULES"  # extra modules declaring stage kinds, imported by workers


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the process that started it ends (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the worker then ends when its stdin closes, after its stage


class Worker:
    def __init__(self, slot: Slot, runs: Path):
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot[1])) if slot[0] == "gpu" else ""
        env["PYTHONUNBUFFERED"] = "1"
        self.slot, self.last_model = slot, None
        self.proc = subprocess.Popen([sys.executable, "-m", "repro", "stage-worker", "--runs-dir", str(runs)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=_die_with_parent)
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, request: Path) -> dict | None:
        """Run one stage; its answer, or None if the worker died."""
        with self.lock:
            try:
                self.proc.stdin.write(f"{request}\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except (BrokenPipeError, ValueError):
                return None
            return json.loads(line) if line else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.proc.send_signal(sig)


class WorkerExecutor(LocalExecutor):
    """The local executor, each stage in the worker of the slot the scheduler gave it."""

    name = "local"

    def __init__(self, runs: Path):
        self.runs = runs
        self.workers: dict[Slot, Worker] = {}
        self.assigned: dict[str, Slot] = {}  # stage name -> slot, set by the scheduler

    def assign(self, stage: str, slot: Slot, model: str | None) -> None:
        """Called by the scheduler (main thread: a worker dies with the thread that started it)."""
        worker = self.workers.get(slot)
        if worker is None or not worker.alive():
            self.workers[slot] = worker = Worker(slot, self.runs)
        worker.last_model = model
        self.assigned[stage] = slot

    def affine(self, model: str | None) -> list[Slot]:
        """Slots whose worker last served ``model`` (its cache may hold it)."""
        return [s for s, w in self.workers.items() if model and w.last_model == model and w.alive()]

    def run(self, job: StageJob) -> StageResult:
        name = job.request["name"]
        slot = self.assigned.pop(name, None)
        if slot is None:  # a stored entry found broken while being served: rebuilt here, in order
            return super().run(job)
        write_json(job.build / REQUEST_FILE, job.request)
        answer = self.workers[slot].ask((job.build / REQUEST_FILE).resolve())
        if answer is None:
            code = self.workers[slot].proc.wait()
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            raise StageFailed(f"stage {name!r}: its worker process ended ({how}); nothing was published")
        if not answer["ok"]:
            if answer.get("input_error"):
                raise InputError(answer["error"])
            raise StageFailed(f"stage {name!r}: {answer['error']} (traceback above); nothing was published")
        result = take_result(job.build)
        gpus = list(slot[1]) if slot[0] == "gpu" else []
        execution = {"executor": "local", **result["observed"],
                     "worker": {"pid": self.workers[slot].proc.pid, "gpus_given": gpus,
                                "models_loaded": answer["loaded"], "models_reused": answer["reused"]}}
        return StageResult(dependencies=result["dependencies"], protocol=result["protocol"],
                           started=result["started"], finished=result["finished"],
                           system=result["system"], execution=execution)

    def stop(self, slots: list[Slot] | None = None) -> None:
        """Stop the workers of ``slots`` (all if None): the stages they run fail, publishing nothing."""
        for slot, worker in list(self.workers.items()):
            if slots is None or slot in slots:
                worker.stop()

    def close(self) -> None:
        for worker in self.workers.values():
            if worker.alive():
                worker.proc.stdin.close()
        for worker in self.workers.values():
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.stop(signal.SIGKILL)
        self.workers.clear()


class _Tracked(dict):
    """A worker's model cache that notes which entries a stage read (to record reuse)."""

    def __init__(self):
        super().__init__()
        self.read: set = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def serve(runs: Path) -> None:
    """The worker's loop (``repro stage-worker``): one request path per line on stdin."""
    import importlib
    import traceback
    from dataclasses import asdict

    from repro.executors.local import run_request
    from repro.executors.request import RESULT_FILE, read_request

    for module in filter(None, os.environ.get(KIND_MODULES, "").split(",")):
        importlib.import_module(module)
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what stages print goes to stderr; stdout carries the answers only
    sys.stdout = sys.stderr
    shared = _Tracked()
    for line in sys.stdin:
        path = Path(line.strip())
        before = set(shared)
        shared.read.clear()
        try:
            data = asdict(run_request(read_request(path), runs, shared))
            data["observed"] = data.pop("execution")
            write_json(path.parent / RESULT_FILE, data)
            # what the stage loaded into this worker's cache, and what it found there already
            answer = {"ok": True, "loaded": len(set(shared) - before), "reused": len(before & shared.read)}
        except Exception as exc:  # noqa: BLE001 - reported to the runner, which fails the stage
            traceback.print_exc()
            answer = {"ok": False, "error": str(exc) or exc.__class__.__name__,
                      "input_error": isinstance(exc, ReproError)}
        channel.write(json.dumps(answer) + "\n")
        channel.flush()
