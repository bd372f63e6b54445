"""The ``repro`` command: thin click adapters over the library. Heavy imports stay inside commands."""

from __future__ import annotations

import signal
import sys

import click

from repro import __version__
from repro.errors import ReproError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="repro")
def cli() -> None:
    """Reproduce "How Does Vision-Language Adaptation Impact the Safety of VLMs?" (ICLR 2025)."""


def _register() -> None:
    from repro.cli import diff, env, fetch, inspect, keys, run, stage, verify

    for module in (run, inspect, diff, verify, keys, env, fetch, stage):
        for command in module.COMMANDS:
            cli.add_command(command)


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    import os

    if not sys.stderr.isatty():
        # progress bars of transformers/hub (tqdm) would flood CI logs; stage lines say enough
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _register()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(args=argv, prog_name="repro", standalone_mode=False)
    except ReproError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        # click turns Ctrl-C/SIGTERM (KeyboardInterrupt) into Abort when it is raised in a command
        click.echo("interrupted: completed stages are kept in the store; run the same command "
                   "again to resume (an interrupted training stage resumes from its last checkpoint)",
                   err=True)
        sys.exit(130)
    except OSError as exc:
        # disk full, permission denied ...: one line naming the file, nothing half-published
        where = exc.filename2 or exc.filename
        click.echo(f"error: {f'{where}: ' if where else ''}{exc.strerror or exc}", err=True)
        sys.exit(1)
