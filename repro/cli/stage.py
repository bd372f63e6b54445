"""Commands an executor calls where a stage runs (in a container, in a SLURM job); hidden from
``repro --help`` because users never type them."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("stage-exec", hidden=True)
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The runs directory as this process sees it.")
@click.argument("request", type=click.Path(path_type=Path, dir_okay=False))
def stage_exec_cmd(runs_dir, request):
    """Run one stage from REQUEST (written by an executor) and write result.json beside it."""
    from dataclasses import asdict

    from repro.executors.local import run_request
    from repro.executors.request import RESULT_FILE, read_request, write_json

    result = run_request(read_request(request), runs_dir)
    data = asdict(result)
    data["observed"] = data.pop("execution")
    write_json(request.parent / RESULT_FILE, data)


@click.command("stage-run", hidden=True)
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The runs directory as this process sees it.")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
def stage_run_cmd(runs_dir, spec):
    """Key, build and publish the one stage of a SLURM graph job (SPEC: its job spec)."""
    from repro.executors.slurm_graph import run_in_job

    run_in_job(runs_dir, spec, click.echo)


@click.command("stage-worker", hidden=True)
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
def stage_worker_cmd(runs_dir):
    """Run stages sent by a concurrent `repro run`, one request path per line on stdin."""
    from repro.executors.workers import serve

    serve(runs_dir)


@click.command("stage-probe", hidden=True)
def stage_probe_cmd():
    """Print the code and environment fingerprints stages computed here are keyed by."""
    from repro.executors.local import probe

    click.echo(json.dumps(probe(), sort_keys=True))


COMMANDS = [stage_exec_cmd, stage_run_cmd, stage_worker_cmd, stage_probe_cmd]
