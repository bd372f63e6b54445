"""``repro run``: run experiments, stage by stage, serving unchanged stages from the store."""

from __future__ import annotations

import time

import click

from repro.cli.options import executor_options, profile_option, runs_dir_option, set_option


@click.command("run")
@click.argument("experiments", nargs=-1, required=True)
@profile_option
@runs_dir_option
@set_option
@executor_options
@click.option("--verify/--no-verify", "then_verify", default=False, help="Run `repro verify` afterwards.")
def run_cmd(experiments, profile, runs_dir, overrides, executor_name, executor_config, then_verify):
    """Run EXPERIMENTS (see `repro list`)."""
    from repro.config.load import load_experiment
    from repro.executors import make_executor
    from repro.pipeline.lock import RunLock
    from repro.pipeline.runner import Runner

    loaded = [load_experiment(name, profile, overrides) for name in experiments]
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
        finally:
            runner.close()
    click.echo(f"done in {time.perf_counter() - t0:.1f}s")
    if then_verify:
        from repro.cli.verify import verify_paths

        verify_paths([m.parent for m in manifests], strict=False)


COMMANDS = [run_cmd]
