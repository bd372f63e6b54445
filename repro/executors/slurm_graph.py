"""SLURM as a job graph: every stage still to run is submitted at once, each job held by
``--dependency=afterok:`` on the jobs of the stages it reads, so the cluster's own scheduler runs
independent stages in parallel (``graph: true`` in the slurm settings, the default).

A stage's cache key depends on its inputs' output digests, which exist only once those ran, so
a job cannot be handed a prepared build the way the one-job-at-a-time path does. Each job runs
the runner itself for its one stage (``repro stage-run``): it keys the stage's inputs (already
published: afterok), builds the stage in its own build directory and publishes it by rename, as
every run does; an input that is not in the store fails the job rather than being rebuilt there.
The submitting ``repro run`` holds the run lock throughout, prints one line per job event,
cancels the queued dependents of a failed job (``scancel``; each job also carries
``--kill-on-invalid-dep=yes``), and, once the queue is empty, writes the manifest from the store
or names the stage that failed. The job ids are kept in ``<runs>/<experiment>/slurm-jobs.json``
for ``repro status``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from repro.errors import ReproError
from repro.executors.base import StageFailed, image_role
from repro.executors.local import LocalExecutor
from repro.executors.request import write_json

JOBS_FILE = "slurm-jobs.json"
JOB_DIR = ".slurm"  # <runs>/<experiment>/.slurm/<stage>.{json,sbatch}: what each job runs
FAILED = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def ancestors(specs: dict, name: str) -> list[str]:
    """``name`` and every stage it reads from, directly or not, in topological order."""
    need, stack = {name}, [name]
    while stack:
        for up in specs[stack.pop()].inputs.values():
            if up not in need:
                need.add(up)
                stack.append(up)
    return [n for n in specs if n in need]


def job_spec(exp, name: str, execution: dict) -> dict[str, Any]:
    """What a job needs to key and build its stage: the stage and its ancestors, resolved, and
    what its execution record says of where it runs (runtime, image: known to the submitter)."""
    return {"experiment": exp.name, "profile": exp.profile, "stage": name, "execution": execution,
            "stages": {n: {"kind": s.kind, "params": s.params, "inputs": s.inputs, "seed": s.seed}
                       for n, s in ((n, exp.stages[n]) for n in ancestors(exp.stages, name))}}


def _call(executor, argv: list[str]):
    return executor._run(argv, capture_output=True, text=True)


def submit(exp, executor, runs: Path, todo: list[str], echo: Callable[[str], None]) -> dict[str, str]:
    """sbatch every stage of ``todo`` (topological order) with afterok on its inputs' jobs."""
    jobs: dict[str, str] = {}
    job_dir = runs / exp.name / JOB_DIR
    job_dir.mkdir(parents=True, exist_ok=True)
    logs = runs / "logs" / "slurm"
    logs.mkdir(parents=True, exist_ok=True)
    job_runs = executor._paths(runs)[0]
    for name in todo:
        spec = exp.stages[name]
        after = list(dict.fromkeys(jobs[u] for u in spec.inputs.values() if u in jobs))
        execution = {"runtime": executor.runtime}
        if executor.runtime != "host":
            execution["image"] = executor._image_record(image_role(spec.kind))
        write_json(job_dir / f"{name}.json", job_spec(exp, name, execution))
        argv = ["repro", "stage-run", "--runs-dir", job_runs, f"{job_runs}/{exp.name}/{JOB_DIR}/{name}.json"]
        req = {"experiment": exp.name, "name": name, "kind": spec.kind, "params": spec.params, "profile": exp.profile}
        log = (logs / f"{exp.name}.{name}.%j.log").resolve()
        script = job_dir / f"{name}.sbatch"
        script.write_text(executor.script(req, "computed in the job (its inputs' outputs enter it)", runs, log, argv))
        cmd = [executor.settings.get("sbatch") or "sbatch", "--parsable"]
        if after:
            cmd += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
        done = _call(executor, cmd + [str(script)])
        if done.returncode != 0:
            cancel(executor, list(jobs.values()))
            raise StageFailed(f"stage {name!r}: sbatch exit {done.returncode}: {(done.stderr or '').strip()[-300:]}; "
                              f"the {len(jobs)} job(s) submitted before it were cancelled")
        jobs[name] = done.stdout.strip().split(";")[0]
        echo(f"submitted {name:<24} job {jobs[name]}" + (f" after {','.join(after)}" if after else ""))
        write_json(runs / exp.name / JOBS_FILE, jobs)  # after each, so status sees every id
    return jobs


def job_ids(runs: Path, experiment: str) -> dict[str, str]:
    """Stage -> job id of the last graph submitted for ``experiment`` ({} if none)."""
    from repro.provenance.record import read_json

    path = runs / experiment / JOBS_FILE
    return read_json(path) if path.exists() else {}


def cancel(executor, ids: list[str]) -> None:
    if ids:
        _call(executor, ["scancel", *ids])


def _queued(executor, ids: set[str]) -> dict[str, str]:
    done = _call(executor, ["squeue", "-h", "-o", "%i %T", "-j", ",".join(sorted(ids))])
    if done.returncode != 0:  # squeue answers an error for ids that already left the queue
        return {}
    rows = (line.split() for line in (done.stdout or "").splitlines() if line.strip())
    return {r[0]: r[1] for r in rows if len(r) >= 2 and r[0] in ids}


def _final_state(executor, job_id: str) -> str | None:
    try:
        done = _call(executor, ["sacct", "-j", job_id, "-X", "-n", "-P", "--format=State"])
    except OSError:
        return None  # no accounting: --kill-on-invalid-dep still cancels the dependents
    lines = (done.stdout or "").split()
    return lines[0] if done.returncode == 0 and lines else None


def wait(exp, executor, jobs: dict[str, str], echo: Callable[[str], None], poll: float) -> list[str]:
    """Until no job is queued; a job that ends FAILED (or cancelled, timed out ...) has its
    queued dependents cancelled. Returns the stages whose jobs failed."""
    from repro.pipeline.graph import downstream

    stage_of = {j: s for s, j in jobs.items()}
    active, failed, cancelled, last = set(jobs.values()), [], set(), None
    while active:
        queued = _queued(executor, active)
        for job_id in sorted(active - set(queued), key=lambda j: list(jobs.values()).index(j)):
            active.discard(job_id)
            state = _final_state(executor, job_id) or "ended"
            name = stage_of[job_id]
            echo(f"job {job_id:<10} {name:<24} {state}")
            if state.split()[0] in FAILED and job_id not in cancelled:
                failed.append(name)
                hit = [jobs[d] for d in downstream(exp.stages, {name}) if d != name and jobs.get(d) in active]
                if hit:
                    cancel(executor, hit)
                    cancelled.update(hit)
                    echo(f"  cancelled {len(hit)} dependent job(s) of {name}: {', '.join(hit)}")
        running = sum(1 for s in queued.values() if s == "RUNNING")
        progress = (f"[slurm] running {running}, queued {len(queued) - running}, "
                    f"ended {len(jobs) - len(active)}/{len(jobs)}")
        if progress != last and active:
            echo(progress)
            last = progress
        if active:
            time.sleep(poll)
    return failed


def run_experiment(runner, exp, overrides: tuple[str, ...], echo: Callable[[str], None],
                   poll: float | None = None) -> Path:
    """Submit, wait, then write the manifest from the store (every stage served)."""
    from repro.pipeline.status import experiment_status

    executor, runs = runner.executor, runner.store.root
    runner.store.clean_stale_builds()  # under the run lock, before any job builds
    todo = [st.name for st in experiment_status(exp, runs, executor) if st.state != "done"]
    if todo:
        jobs = submit(exp, executor, runs, todo, echo)
        try:
            poll = float(executor.settings.get("poll_seconds", 30)) if poll is None else poll
            failed = wait(exp, executor, jobs, echo, poll)
        except KeyboardInterrupt:
            cancel(executor, list(jobs.values()))
            raise
        left = [st for st in experiment_status(exp, runs, executor) if st.state != "done"]
        if left:
            _raise_failed(exp, executor, runs, jobs, failed, left)
    return runner.run(exp, overrides)


def _raise_failed(exp, executor, runs: Path, jobs: dict[str, str], failed: list[str], left: list) -> None:
    """Name the failed stage(s), their jobs and the last lines of the first one's log."""
    named = failed or [st.name for st in left if not any(r.startswith("upstream") for r in st.reasons)]
    log = runs / "logs" / "slurm" / f"{exp.name}.{named[0]}.{jobs.get(named[0])}.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    tail = lines[-int(executor.settings.get("tail_lines", 30)):]
    ids = ", ".join(jobs[n] for n in named if n in jobs)
    raise StageFailed(
        f"stage {', '.join(repr(n) for n in named)} failed (SLURM job {ids}); "
        f"{len(left) - len(named)} stage(s) downstream not run; nothing of theirs was published; log {log}; "
        "last lines:\n" + "\n".join(f"    {line}" for line in tail))


# ------------------------------------------------------------------ inside a job


class JobExecutor(LocalExecutor):
    """Runs the job's own stage in this process and records it as a SLURM job; any other stage
    (an input not in the store) is refused: its own job publishes it."""

    name = "slurm"

    def __init__(self, stage: str, execution: dict):
        self.stage, self.where = stage, execution

    def run(self, job):
        name = job.request["name"]
        if name != self.stage:
            raise StageFailed(f"stage {name!r}: not in the store, though job {self.stage!r} depends on it "
                              "(afterok); was it removed while the graph ran?")
        result = super().run(job)
        observed = result.execution
        result.execution = {**observed, "executor": "slurm", "runtime": self.where.get("runtime"),
                            "graph": True, "job_id": os.environ.get("SLURM_JOB_ID"),
                            **({"image": self.where["image"]} if self.where.get("image") else {})}
        return result


def run_in_job(runs: Path, spec_path: Path, echo: Callable[[str], None]) -> None:
    """``repro stage-run``: key the job's stage from its inputs in the store, build, publish."""
    from repro.config.schema import Experiment, StageSpec
    from repro.pipeline.graph import topological_order
    from repro.pipeline.runner import Runner
    from repro.provenance.record import read_json

    data = read_json(spec_path)
    try:
        stages = {n: StageSpec(n, s["kind"], s["params"], s["inputs"], s["seed"]) for n, s in data["stages"].items()}
        stages = {n: stages[n] for n in topological_order(spec_path, stages)}  # JSON keys come sorted
        exp = Experiment(data["experiment"], data["profile"], str(spec_path), "", stages, 0, {})
        stage, execution = data["stage"], dict(data["execution"])
    except (KeyError, TypeError) as exc:
        raise ReproError(f"{spec_path}: not a stage-run job spec ({exc})") from None

    class JobRunner(Runner):
        def _write_manifest(self, *args, **kwargs):  # the submitting run writes it, once
            return spec_path

    runner = JobRunner(runs, echo=echo, executor=JobExecutor(stage, execution))
    runner.store.clean_stale_builds = lambda: 0  # other jobs are building beside this one
    try:
        runner.run(exp)
    finally:
        runner.close()
