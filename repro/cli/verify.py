"""``repro verify``: re-check a run's manifest, every output byte, the pins and, with trusted
keys, every signature."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from repro.cli.options import signing_key_option


def verify_paths(paths: list[Path], strict: bool, trusted: tuple[Path, ...] = (), signing_key: Path | None = None) -> None:
    from repro.provenance.signing import IN_TOTO, Signer, check_signatures, envelope_path
    from repro.provenance.verify import find_manifests, format_report, verify_manifest, write_verdict

    signer = Signer(signing_key) if signing_key else None
    worst = "PASSED"
    for path in paths:
        for manifest in find_manifests(path):
            v, data = verify_manifest(manifest, strict)
            signatures = check_signatures(v, manifest, data, list(trusted))
            click.echo(format_report(manifest, v, strict))
            click.echo(f"  {signatures}")
            if manifest.is_file():
                try:
                    verdict_path = write_verdict(manifest, v, strict)
                    if signer is not None:
                        signer.sign_file(verdict_path, IN_TOTO)
                    else:  # an envelope over an earlier verdict vouches for nothing now
                        envelope_path(verdict_path).unlink(missing_ok=True)
                except OSError as exc:  # read-only storage, disk full: the verdict still stands
                    where = exc.filename or manifest.parent / "verification.json"
                    click.echo(f"warning: could not write {where}: {exc.strerror or exc} (the verdict "
                               "above is not recorded)", err=True)
            verdict = v.verdict(strict)
            if verdict == "FAILED" or (verdict == "WARNED" and worst == "PASSED"):
                worst = verdict
    click.echo(f"verdict: {worst}")
    if worst == "FAILED":
        sys.exit(1)


@click.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--strict", is_flag=True, help="Treat warnings (unpinned inputs, partial runs) as failures.")
@click.option("--trusted-key", "trusted", multiple=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Public key (repeatable): every statement, model checkpoint and manifest must be "
                   "signed by one of these keys.")
@signing_key_option
def verify_cmd(paths, strict, trusted, signing_key):
    """Verify experiment directories (runs/<experiment>) or a whole runs directory."""
    verify_paths(list(paths), strict, tuple(trusted), signing_key)


COMMANDS = [verify_cmd]
