"""``repro keys generate``: an offline signing key pair (docs/provenance.md, "Signing")."""

from __future__ import annotations

import os
from pathlib import Path

import click


def default_key_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "repro"


@click.group("keys")
def keys_cmd():
    """Signing keys for statements, manifests and model checkpoints."""


@keys_cmd.command("generate")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Directory for repro-signing.key and repro-signing.pub [default: $XDG_CONFIG_HOME/repro "
                   "or ~/.config/repro].")
def generate_cmd(out_dir):
    """Write a new ECDSA P-256 key pair; the private key is encrypted with
    $REPRO_SIGNING_KEY_PASSWORD when that is set. An existing pair is never overwritten."""
    from repro.provenance.signing import PASSWORD_ENV, generate_keys, load_public_key

    key_path, pub_path = generate_keys(out_dir or default_key_dir())
    keyid = load_public_key(pub_path).keyid
    click.echo(f"private key: {key_path} (mode 0600; "
               f"{'encrypted with $' + PASSWORD_ENV if os.environ.get(PASSWORD_ENV) else 'not encrypted'}; "
               "keep it off shared disks, images and runs directories)")
    click.echo(f"public key:  {pub_path} (publish it; verifiers pass it to `repro verify --trusted-key`)")
    click.echo(f"key id:      {keyid}")


COMMANDS = [keys_cmd]
