"""``repro env``: the system description (MLPerf field names) as JSON."""

import json

import click


@click.command("env")
def env_cmd():
    """Print this machine's system description and environment fingerprint as JSON."""
    from repro.provenance.system import describe_system, environment_fingerprint

    click.echo(json.dumps({"system": describe_system(), "fingerprint": environment_fingerprint()},
                          indent=2, sort_keys=True))


COMMANDS = [env_cmd]
