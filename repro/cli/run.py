"""``repro run``: run experiments, stage by stage, serving unchanged stages from the store."""

from __future__ import annotations

import dataclasses
import json
import time

import click

from repro.cli.options import executor_options, profile_option, runs_dir_option, set_option, signing_key_option
from repro.config.schema import CPU_PROFILES


jobs_option = click.option(
    "--jobs", type=click.IntRange(min=1), default=None,
    help="Stages run at once, each in a worker process (default 1: one after another in this "
         "process; with --gpus: one per GPU).")


@click.command("run")
@click.argument("experiments", nargs=-1, required=True)
@profile_option
@runs_dir_option
@set_option
@executor_options
@signing_key_option
@click.option("--verify/--no-verify", "then_verify", default=False, help="Run `repro verify` afterwards.")
@jobs_option
@click.option("--gpus", "gpu_list", default=None, metavar="0,1,2,3",
              help="GPUs to share out: each running stage gets its kind's GPUs as its own "
                   "CUDA_VISIBLE_DEVICES (default with --jobs > 1: the paper profile all visible, tiny none).")
@click.option("--on-failure", type=click.Choice(["finish", "cancel"]), default="finish", show_default=True,
              help="Concurrent runs: when a stage fails, let the running ones finish, or cancel them.")
def run_cmd(experiments, profile, runs_dir, overrides, executor_name, executor_config, signing_key, then_verify,
            jobs, gpu_list, on_failure):
    """Run EXPERIMENTS (see `repro list`)."""
    from repro.config.load import load_experiment
    from repro.pipeline.lock import RunLock
    from repro.pipeline.runner import Runner

    loaded = [load_experiment(name, profile, overrides) for name in experiments]
    signer = _signer(signing_key)
    t0 = time.perf_counter()
    with RunLock(runs_dir):
        executor, concurrent = _executor(executor_name, profile, executor_config, runs_dir, jobs, gpu_list)
        runner = Runner(runs_dir, echo=click.echo, executor=executor)
        manifests = []
        try:
            for exp in loaded:
                click.echo(f"== {exp.name} ({profile}) ==")
                manifests.append(_run_one(runner, exp, overrides, concurrent, on_failure))
                click.echo(f"manifest: {manifests[-1]}")
                _sign(signer, manifests[-1])
        finally:
            runner.close()
    click.echo(f"done in {time.perf_counter() - t0:.1f}s")
    if then_verify:
        from repro.cli.verify import verify_paths

        verify_paths([m.parent for m in manifests], strict=False)


@click.command("findings")
@profile_option
@runs_dir_option
@set_option
@executor_options
@signing_key_option
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@jobs_option
def findings_cmd(profile, runs_dir, overrides, executor_name, executor_config, signing_key, seeds, jobs):
    """Run the `findings` experiment once per seed and write RUNS_DIR/findings/findings.md: each
    of the paper's findings beside its claim, with the seeds it held on."""
    from repro.config.load import load_experiment
    from repro.errors import InputError
    from repro.pipeline.lock import RunLock
    from repro.pipeline.runner import Runner
    from repro.report import findings

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    signer = _signer(signing_key)
    measured = {}
    with RunLock(runs_dir):
        executor, concurrent = _executor(executor_name, profile, executor_config, runs_dir, jobs, None)
        runner = Runner(runs_dir, echo=click.echo, executor=executor)
        try:
            for seed in seed_list:
                sets = tuple(overrides) + (f"seed={seed}",)
                exp = dataclasses.replace(load_experiment("findings", profile, sets), name=f"findings-seed{seed}")
                table = exp.tables.get(findings.TABLE)
                findings.chain(table)  # a declaration that lacks a row fails before anything runs
                click.echo(f"== {exp.name} ({profile}) ==")
                manifest = _run_one(runner, exp, sets, concurrent)
                _sign(signer, manifest)
                measured[seed] = findings.scores(runs_dir, json.loads(manifest.read_text()), table)
        finally:
            runner.close()
    path, found = findings.write(runs_dir / "findings", profile, measured)
    for key, v in found.items():
        click.echo(f"finding {key:<6} {'holds' if v['holds'] else 'held on ' + str(len(v['held_on'])) + '/' + str(len(seed_list))}"
                   f"  ({v['claim']})")
    click.echo(f"findings: {path}")


def _executor(name, profile, config, runs_dir, jobs, gpu_list):
    """(executor, (jobs, GPUs) for a concurrent run or None)."""
    from repro.errors import InputError
    from repro.executors import make_executor
    from repro.pipeline.concurrent import parse_gpus, visible_gpus

    gpus = parse_gpus(gpu_list)
    if (jobs or 1) == 1 and gpus is None:
        return make_executor(name, profile, config), None
    if name != "local":
        raise InputError(f"--jobs/--gpus: the {name} executor runs one stage at a time here "
                         "(slurm: its job graph runs stages in parallel on the cluster); use --executor local")
    from repro.executors.workers import WorkerExecutor

    if gpus is None and profile not in CPU_PROFILES:
        gpus = visible_gpus()
    return WorkerExecutor(runs_dir), (jobs or max(1, len(gpus or [])), gpus)


def _run_one(runner, exp, overrides, concurrent=None, on_failure="finish"):
    """One experiment: stage by stage here, concurrently (``--jobs``/``--gpus``), or as a SLURM
    job graph (slurm setting ``graph``)."""
    if concurrent is not None:
        from repro.pipeline.concurrent import run_concurrent

        return run_concurrent(runner, exp, overrides, *concurrent, on_failure=on_failure)
    if getattr(runner.executor, "graph", False):
        from repro.pipeline.slurm_graph import run_experiment

        return run_experiment(runner, exp, overrides, click.echo)
    return runner.run(exp, overrides)


def _signer(signing_key):
    """Load the key before anything runs, so a bad key fails first."""
    if signing_key is None:
        return None
    from repro.provenance.signing import Signer

    return Signer(signing_key)


def _sign(signer, manifest) -> None:
    if signer is not None:
        files = signer.sign_run(manifest)
        click.echo(f"signatures: {len(files)} files by key {signer.keyid[:16]} (statements, model checkpoints, manifest)")


COMMANDS = [run_cmd, findings_cmd]
