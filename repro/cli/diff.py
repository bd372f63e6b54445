"""``repro diff``: two runs of an experiment side by side (stages, metrics, samples)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("diff")
@click.argument("run_a", type=click.Path(path_type=Path, exists=True))
@click.argument("run_b", type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (for tools).")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0),
              help="Changed samples shown per evaluation.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when the runs differ (as `git diff --exit-code`).")
def diff_cmd(run_a, run_b, as_json, examples, exit_code):
    """Compare RUN_A and RUN_B (runs/<experiment> directories or manifest files): per stage,
    whether keys and outputs differ and why; per metric, both values and the delta; per
    benchmark, the samples whose response or verdict changed."""
    from repro.pipeline.diff import diff_runs, format_diff

    result = diff_runs(run_a, run_b, examples)
    click.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else format_diff(result))
    if exit_code and not result["identical"]:
        sys.exit(1)


COMMANDS = [diff_cmd]
