"""``repro list``, ``repro status``, ``repro plan``, ``repro ls``: look without running."""

from __future__ import annotations

import json

import click

from repro.cli.options import profile_option, runs_dir_option, set_option


@click.command("list")
@profile_option
def list_cmd(profile):
    """List experiments and their stages."""
    from repro.config.load import list_experiments, load_experiment

    for name in list_experiments():
        exp = load_experiment(name, profile)
        click.echo(f"{name}: {exp.description}")
        for spec in exp.stages.values():
            ins = ", ".join(f"{r}<-{u}" for r, u in spec.inputs.items())
            click.echo(f"  {spec.name:<24} {spec.kind:<22} {ins}")


@click.command("status")
@click.argument("experiment")
@profile_option
@runs_dir_option
@set_option
def status_cmd(experiment, profile, runs_dir, overrides):
    """Per stage: done, stale (and why) or missing."""
    from repro.config.load import load_experiment
    from repro.pipeline.status import experiment_status

    exp = load_experiment(experiment, profile, overrides)
    for st in experiment_status(exp, runs_dir):
        why = f"  ({'; '.join(st.reasons)})" if st.reasons else ""
        click.echo(f"{st.name:<24} {st.state:<8}{why}")


@click.command("plan")
@click.argument("experiment")
@profile_option
@set_option
def plan_cmd(experiment, profile, overrides):
    """Show every stage with its resolved params, without running anything."""
    from repro.config.load import load_experiment

    exp = load_experiment(experiment, profile, overrides)
    click.echo(f"{exp.name} ({profile}) from {exp.source}")
    for spec in exp.stages.values():
        click.echo(f"- {spec.name}: {spec.kind} seed={spec.seed} inputs={json.dumps(spec.inputs)}")
        for key, value in sorted(spec.params.items()):
            click.echo(f"    {key}: {json.dumps(value)}")


@click.command("ls")
@click.argument("kind", type=click.Choice(["stages", "experiments"]), default="stages")
def ls_cmd(kind):
    """List a registry: stage kinds (with where they are defined) or experiments."""
    if kind == "stages":
        from repro.stages import STAGE_KINDS

        for name in STAGE_KINDS.names():
            click.echo(f"{name:<26} {STAGE_KINDS.origin(name)}")
    else:
        from repro.config.load import list_experiments

        click.echo("\n".join(list_experiments()))


COMMANDS = [list_cmd, status_cmd, plan_cmd, ls_cmd]
