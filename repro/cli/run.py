"""``repro run``: run experiments, stage by stage, serving unchanged stages from the store."""

from __future__ import annotations

import time

import click

from repro.cli.options import (executor_options, profile_option, runs_dir_option, set_option,
                               signing_key_option)


@click.command("run")
@click.argument("experiments", nargs=-1, required=True)
@profile_option
@runs_dir_option
@set_option
@executor_options
@signing_key_option
@click.option("--verify/--no-verify", "then_verify", default=False, help="Run `repro verify` afterwards.")
def run_cmd(experiments, profile, runs_dir, overrides, executor_name, executor_config, signing_key, then_verify):
    """Run EXPERIMENTS (see `repro list`)."""
    from repro.config.load import load_experiment
    from repro.executors import make_executor
    from repro.pipeline.lock import RunLock
    from repro.pipeline.runner import Runner

    loaded = [load_experiment(name, profile, overrides) for name in experiments]
    signer = _signer(signing_key)
    t0 = time.perf_counter()
    with RunLock(runs_dir):
        executor = make_executor(executor_name, profile, executor_config)
        runner = Runner(runs_dir, echo=click.echo, executor=executor)
        manifests = []
        try:
            for exp in loaded:
                click.echo(f"== {exp.name} ({profile}) ==")
                manifests.append(runner.run(exp))
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
def findings_cmd(profile, runs_dir, overrides, executor_name, executor_config, signing_key, seeds):
    """Run the `findings` experiment once per seed and write RUNS_DIR/findings/findings.md: each
    of the paper's findings beside its claim, with the seeds it held on."""
    import dataclasses
    import json

    from repro.config.load import load_experiment
    from repro.errors import InputError
    from repro.executors import make_executor
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
        runner = Runner(runs_dir, echo=click.echo, executor=make_executor(executor_name, profile, executor_config))
        try:
            for seed in seed_list:
                exp = load_experiment("findings", profile, tuple(overrides) + (f"seed={seed}",))
                exp = dataclasses.replace(exp, name=f"findings-seed{seed}")
                table = exp.tables.get(findings.TABLE)
                findings.chain(table)  # a declaration that lacks a row fails before anything runs
                click.echo(f"== {exp.name} ({profile}) ==")
                manifest = runner.run(exp)
                _sign(signer, manifest)
                measured[seed] = findings.scores(runs_dir, json.loads(manifest.read_text()), table)
        finally:
            runner.close()
    path, found = findings.write(runs_dir / "findings", profile, measured)
    for key, v in found.items():
        click.echo(f"finding {key:<6} {'holds' if v['holds'] else 'held on ' + str(len(v['held_on'])) + '/' + str(len(seed_list))}"
                   f"  ({v['claim']})")
    click.echo(f"findings: {path}")


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
