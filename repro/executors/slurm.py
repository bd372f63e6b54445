"""The slurm executor: one sbatch job per stage, waited for with ``sbatch --wait``.

The job runs ``repro stage-exec`` on the stage's request in the stage's image (Apptainer
``exec --nv`` on a .sif, or Enroot through pyxis' ``srun --container-image``) or on the host's
environment (``runtime: host``, e.g. a venv on a shared file system). The runs directory must be
on a file system the compute nodes share. ``HF_TOKEN`` reaches the job through sbatch's exported
environment; the script names it, never its value.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.executors.base import Executor, StageFailed, StageJob, StageResult, image_role, lock_image
from repro.executors.request import REQUEST_FILE, RESULT_FILE, observed_fields, take_result, write_json
from repro.executors.resources import stage_resources

RUNTIMES = ("apptainer", "enroot", "host")
CONTAINER_RUNS = "/workspace/runs"
CONTAINER_HF = "/cache/huggingface"

SCRIPT = """#!/bin/bash
# Rendered by repro's slurm executor: stage {name} ({kind}) of experiment {experiment},
# profile {profile}, cache key {key}.
#SBATCH --job-name=repro-{name}
{directives}
set -euo pipefail
export REPRO_GPUS_PER_NODE={gpus_per_node}
export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
{setup}
{command}
"""


def _q(value: Any) -> str:
    return shlex.quote(str(value))


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, settings: dict[str, Any], profile: str, run=subprocess.run):
        self.settings = settings
        self.profile = profile
        self.runtime = settings.get("runtime", "apptainer")
        if self.runtime not in RUNTIMES:
            raise InputError(f"executor slurm: runtime: {self.runtime!r}; one of {', '.join(RUNTIMES)}")
        self._run = run  # subprocess.run, replaceable in tests
        self.graph = bool(settings.get("graph", False))  # submit the whole graph (slurm_graph.py)
        self._probes: dict[str, dict] = {}

    # ------------------------------------------------------------------ rendering

    def image(self, role: str) -> str | None:
        if self.runtime == "host":
            return None
        ref = (self.settings.get("images") or {}).get(role)
        if not ref:
            raise InputError(f"executor slurm: no image for role {role!r} (settings images.{role})")
        return str(ref)

    def _hf_cache(self) -> Path | None:
        cache = self.settings.get("hf_cache")
        return Path(os.path.expanduser(str(cache))).resolve() if cache else None

    def _in_runtime(self, role: str, runs: Path | None, argv: list[str]) -> str:
        """``argv`` (a repro command) wrapped to run in the stage's image, with the runs
        directory (if any) and the Hugging Face cache mounted."""
        hf = self._hf_cache() if runs is not None else None
        if self.runtime == "host":
            return " ".join(_q(a) for a in argv)
        image = self.image(role)
        if self.runtime == "apptainer":
            binds = [f"--bind {_q(f'{runs}:{CONTAINER_RUNS}')}"] if runs is not None else []
            if hf:
                binds.append(f"--bind {_q(f'{hf}:{CONTAINER_HF}')}")
            # --cleanenv keeps the host's Python paths out; APPTAINERENV_* passes what is needed
            return ('APPTAINERENV_HF_TOKEN="${HF_TOKEN:-}" APPTAINERENV_HF_HOME=' + CONTAINER_HF + " "
                    f"apptainer exec --nv --cleanenv {' '.join(binds)} {_q(image)} "
                    + " ".join(_q(a) for a in argv))
        mounts = ",".join(m for m in (f"{runs}:{CONTAINER_RUNS}" if runs is not None else "",
                                       f"{hf}:{CONTAINER_HF}" if hf else "") if m)
        mount = f"--container-mounts={_q(mounts)} " if mounts else ""
        return (f"srun --ntasks=1 --container-image={_q(image)} {mount}"
                "--no-container-mount-home --container-env=HF_TOKEN "
                + " ".join(_q(a) for a in argv))

    def _paths(self, runs: Path) -> tuple[str, Path]:
        """(runs directory as the job sees it, host path)."""
        runs = runs.resolve()
        return (str(runs) if self.runtime == "host" else CONTAINER_RUNS), runs

    def directives(self, kind: str, params: dict, log: Path) -> tuple[list[str], Any]:
        res = stage_resources(kind, params, self.profile)
        s = self.settings
        lines = [f"--nodes={res.nodes}", "--ntasks-per-node=1"]
        if res.gpus_per_node:
            lines += [f"--gpus-per-node={res.gpus_per_node}",
                      f"--cpus-per-task={int(s['cpus_per_gpu']) * res.gpus_per_node}",
                      f"--mem={_scale(s['mem_per_gpu'], res.gpus_per_node)}"]
        else:
            lines += [f"--cpus-per-task={s['cpus_no_gpu']}", f"--mem={s['mem_no_gpu']}"]
        lines.append(f"--time={s['time']}")
        for key in ("partition", "account", "qos"):
            if s.get(key):
                lines.append(f"--{key}={s[key]}")
        lines.append(f"--output={log}")
        return [f"#SBATCH {line}" for line in lines], res

    def render(self, job: StageJob, log: Path) -> str:
        req = job.request
        job_runs, host_runs = self._paths(job.runs)
        rel = (job.build / REQUEST_FILE).resolve().relative_to(host_runs).as_posix()
        argv = ["repro", "stage-exec", "--runs-dir", job_runs, f"{job_runs}/{rel}"]
        return self.script(req, job.key, job.runs, log, argv)

    def script(self, req: dict, key: str, runs: Path, log: Path, argv: list[str]) -> str:
        """The job script running ``argv`` (a repro command) for the stage ``req`` describes
        (experiment, name, kind, params, profile) in its image, with its resources."""
        directives, res = self.directives(req["kind"], req["params"], log)
        return SCRIPT.format(
            name=req["name"], kind=req["kind"], experiment=req["experiment"], profile=req["profile"],
            key=key, directives="\n".join(directives), gpus_per_node=res.gpus_per_node,
            setup="\n".join(self.settings.get("setup") or []),
            command=self._in_runtime(image_role(req["kind"]), self._paths(runs)[1], argv))

    # ------------------------------------------------------------------ executor interface

    def probe(self, role: str) -> dict[str, Any]:
        if self.runtime == "host":
            from repro.executors.local import probe

            return probe()  # the job's environment is this one, on a shared file system
        image = self.image(role)
        if image not in self._probes:
            command = self._in_runtime(role, None, ["repro", "stage-probe"])
            done = self._run(["bash", "-c", command], capture_output=True, text=True)
            if done.returncode != 0:
                raise InputError(f"executor slurm: `repro stage-probe` in {image} failed "
                                 f"(exit {done.returncode}): {(done.stderr or '').strip()[-200:]}")
            self._probes[image] = json.loads(done.stdout)
        return self._probes[image]

    def run(self, job: StageJob) -> StageResult:
        req = job.request
        write_json(job.build / REQUEST_FILE, req)
        logs = job.runs / "logs" / "slurm"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / f"{req['experiment']}.{req['name']}.{job.key[:12]}.log").resolve()
        script = job.build / "stage.sbatch"
        script.write_text(self.render(job, log))
        job_id, returncode, stderr = self._submit(script)
        if returncode != 0 or not (job.build / RESULT_FILE).exists():
            tail = collections.deque(log.read_text(errors="replace").splitlines() if log.exists() else [],
                                     maxlen=int(self.settings.get("tail_lines", 30)))
            last = "\n".join(f"    {line}" for line in tail) or f"    {(stderr or '(no output)').strip()}"
            raise StageFailed(f"stage {req['name']!r}: SLURM job {job_id or '(not submitted)'} "
                              f"exit {returncode}; nothing was published; log {log}; last lines:\n{last}")
        result = take_result(job.build, cleanup=("stage.sbatch",))
        inside = result["observed"]
        role = image_role(req["kind"])
        execution = {"executor": self.name, "runtime": self.runtime, "job_id": job_id,
                     "host": inside["host"], **observed_fields(inside), "log": log.name,
                     "accounting": self._sacct(job_id)}
        if self.runtime != "host":
            execution["image"] = self._image_record(role)
        return StageResult(dependencies=result["dependencies"], protocol=result["protocol"],
                           started=result["started"], finished=result["finished"],
                           system=result["system"], execution=execution)

    def _submit(self, script: Path) -> tuple[str | None, int, str]:
        """``sbatch --parsable --wait``: the job id comes at submission, the exit code at the
        end. Interrupted here (Ctrl-C), the job is cancelled rather than left running."""
        proc = subprocess.Popen([self.settings.get("sbatch") or "sbatch", "--parsable", "--wait", str(script)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        job_id = proc.stdout.readline().strip().split(";")[0] or None
        try:
            _, stderr = proc.communicate()
        except KeyboardInterrupt:
            if job_id:
                self._run(["scancel", job_id], capture_output=True, text=True)
            proc.kill()
            raise
        return job_id, proc.returncode, stderr

    def _image_record(self, role: str) -> dict[str, Any]:
        ref = self.image(role)
        record: dict[str, Any] = {"ref": ref, "lock_image": lock_image(self.profile, role)}
        path = Path(os.path.expanduser(ref))
        if path.is_file():  # a .sif or .sqsh file: its content digest is its identity
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            record["id"] = f"sha256:{h.hexdigest()}"
        else:
            record["id"] = None  # a registry URI: the digest is whatever ref@sha256 names
        return record

    def _sacct(self, job_id: str | None) -> dict[str, Any] | str:
        if not job_id:
            return "no job id"
        try:
            done = self._run(["sacct", "-j", job_id, "-X", "-n", "-P",
                              "--format=State,ExitCode,NodeList,AllocTRES,Elapsed"],
                             capture_output=True, text=True)
        except OSError:
            return "sacct not available"
        fields = (done.stdout or "").strip().splitlines()[:1]
        if done.returncode != 0 or not fields:
            return "sacct returned nothing"
        return dict(zip(("state", "exit_code", "nodes", "tres", "elapsed"), fields[0].split("|")))

    def describe(self, kind: str, profile: str) -> dict[str, Any]:
        role = image_role(kind)
        return {"executor": self.name, "image": self.image(role), "role": role, "runtime": self.runtime,
                "lock_image": lock_image(profile, role) if self.runtime != "host" else None}


def _scale(mem: str, n: int) -> str:
    """'120G' x 4 -> '480G'."""
    digits = "".join(ch for ch in str(mem) if ch.isdigit())
    unit = str(mem)[len(digits):]
    if not digits:
        raise InputError(f"executor slurm: mem_per_gpu: {mem!r}; expected e.g. 120G")
    return f"{int(digits) * n}{unit}"
