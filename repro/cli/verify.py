"""``repro verify``: re-check a run's manifest, every output byte and the pins."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def verify_paths(paths: list[Path], strict: bool) -> None:
    from repro.provenance.verify import find_manifests, format_report, verify_manifest, write_verdict

    worst = "PASSED"
    for path in paths:
        for manifest in find_manifests(path):
            v, _ = verify_manifest(manifest, strict)
            click.echo(format_report(manifest, v, strict))
            if manifest.exists():
                write_verdict(manifest, v, strict)
            verdict = v.verdict(strict)
            if verdict == "FAILED" or (verdict == "WARNED" and worst == "PASSED"):
                worst = verdict
    click.echo(f"verdict: {worst}")
    if worst == "FAILED":
        sys.exit(1)


@click.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--strict", is_flag=True, help="Treat warnings (unpinned inputs, partial runs) as failures.")
def verify_cmd(paths, strict):
    """Verify experiment directories (runs/<experiment>) or a whole runs directory."""
    verify_paths(list(paths), strict)


COMMANDS = [verify_cmd]
