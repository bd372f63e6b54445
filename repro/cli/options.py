"""Options shared by several commands."""

from pathlib import Path

import click

profile_option = click.option("--profile", type=click.Choice(["tiny", "paper"]), default="tiny",
                              show_default=True, help="Model/data sizes: tiny (CPU) or paper.")
runs_dir_option = click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
                               show_default=True, help="Where stage outputs and manifests live.")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a value, e.g. stage1.params.learning_rate=1e-3.")
