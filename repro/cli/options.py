"""Options shared by several commands."""

from pathlib import Path

import click

from repro.config.schema import PROFILES

profile_option = click.option("--profile", type=click.Choice(list(PROFILES)), default="tiny", show_default=True,
                              help="Model/data sizes: tiny (CPU), paper, or rehearsal (the paper's "
                                   "declarations at reduced sizes, CPU; docs/rehearsal.md).")
runs_dir_option = click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
                               show_default=True, help="Where stage outputs and manifests live.")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a value, e.g. stage1.params.learning_rate=1e-3.")


def executor_options(fn):
    """``--executor`` and ``--executor-config`` (where stages run; configs/executors.yaml)."""
    fn = click.option("--executor-config", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                      default=None, help="YAML overriding configs/executors.yaml.")(fn)
    return click.option("--executor", "executor_name", type=click.Choice(["local", "docker", "slurm"]),
                        default="local", show_default=True,
                        help="Where stages run: this process, their Docker image, or SLURM jobs.")(fn)


signing_key_option = click.option(
    "--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), envvar="REPRO_SIGNING_KEY",
    show_envvar=True, default=None,
    help="Private key (`repro keys generate`) to sign statements, manifests and model checkpoints "
         "with (docs/provenance.md); a passphrase comes from $REPRO_SIGNING_KEY_PASSWORD.")
