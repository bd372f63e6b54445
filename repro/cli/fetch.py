"""``repro fetch``, ``repro data check``, ``repro lock``, ``repro doctor``: getting inputs ready."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from repro.cli.options import executor_options, profile_option, runs_dir_option


def _find(lock: dict, name: str) -> tuple[str, str]:
    """A lock key (or ``models/KEY``, ``datasets/KEY``) -> (section, key)."""
    from repro.errors import InputError
    from repro.provenance import pins

    if "/" in name:
        kind, key = name.split("/", 1)
        pins.find_pin(lock, kind, key)
        return kind, key
    hits = [k for k in ("models", "datasets") if name in lock[k]]
    if len(hits) > 1:
        raise InputError(f"manifest.lock: {name}: in both models and datasets; say models/{name} or datasets/{name}")
    if not hits:
        pins.find_pin(lock, "models" if name in lock["models"] else "datasets", name)  # raises, with a hint
    return hits[0], name


@click.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Download into DIR/<key> (a mirror for REPRO_LOCAL_<KEY>) instead of the HF cache.")
@click.option("--allow-unpinned", is_flag=True, help="Fetch entries without a pinned revision (recorded, flagged).")
def fetch_cmd(names, to, allow_unpinned):
    """Download pinned models/datasets (manifest.lock keys) and check their pinned sha256."""
    from repro.fetch import hub
    from repro.models.fetch import download_model
    from repro.provenance import pins

    lock = pins.load_lock()
    for name in names:
        kind, key = _find(lock, name)
        entry = lock[kind][key]
        dest = to / key if to else None
        if kind == "models":
            src = download_model(entry, key, dest, allow_unpinned, allow_pickle=True)
        else:
            src = hub.download(entry, kind, key, dest, allow_unpinned=allow_unpinned)
        present = set(hub.list_tree(src.root))
        digests = hub.sha256_many(src.root, [r for r in entry["files"] if r in present])
        skipped = {r for r in entry["files"] if r not in present and (hub.is_pickle(r) or hub.is_foreign(r))}
        verified = hub.verify_pins(entry, kind, key, src.root, digests, skipped)
        flag = "" if src.pinned else "  (UNPINNED: resolved now)"
        click.echo(f"{kind}.{key}: {entry['id']}@{src.revision} -> {src.root} "
                   f"({len(verified)} pinned digests checked){flag}")
        click.echo(f"  export {hub.env_var(key)}={src.root}")


@click.group("data")
def data_group():
    """Dataset utilities."""


@data_group.command("check")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", "splits", multiple=True, help="Split(s) to read (default: the loader's default).")
def data_check_cmd(name, path, splits):
    """Read a local copy of dataset NAME (a loader name) at PATH: counts per split and category.
    MM-SafetyBench, SEED-Bench, SIUO and MME are read from their official release layout or
    their Hugging Face mirror, whichever PATH holds (the layout is printed)."""
    from repro.data.fetch import check_dataset, layout_note

    counts = check_dataset(path, name, list(splits) or None)
    for layout in layout_note(path, name).values():
        click.echo(f"{name}: {layout} layout")
    for split, c in counts.items():
        click.echo(f"{name} {split}: {c['n']} records")
        for category, n in c["categories"].items():
            click.echo(f"  {category}: {n}")


@click.command("lock")
@click.argument("names", nargs=-1)
@click.option("--resolve", is_flag=True, help="Resolve unpinned revisions and LFS sha256 from the Hub "
                                              "and rewrite manifest.lock.")
@click.option("--lock", "lock_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The lock file (default: $REPRO_LOCK or the repository's manifest.lock).")
def lock_cmd(names, resolve, lock_file):
    """List unpinned entries of manifest.lock; with --resolve, pin them from the Hub."""
    from repro.fetch.resolve import missing_digests, resolve_lock, unpinned
    from repro.provenance import pins

    path = lock_file or pins.lock_path()
    lock = pins.load_lock(path)
    if not resolve:
        rows = [r for r in unpinned(lock) if not names or r[1] in names]
        for kind, key, entry in rows:
            click.echo(f"unpinned   {kind}.{key:<26} {entry['id']}")
        for kind, key, entry in missing_digests(lock):
            if not names or key in names:
                click.echo(f"no-sha256  {kind}.{key:<26} {entry['id']}")
        click.echo(f"{len(rows)} unpinned; `repro lock --resolve` pins them from the Hub")
        return
    changes, errors = resolve_lock(lock, list(names) or None)
    if changes:
        pins.write_lock(lock, path)
    for line in changes:
        click.echo(line)
    click.echo(f"{len(changes)} change(s) written to {path}" if changes else "nothing to change")
    for line in errors:
        click.echo(f"error: {line}", err=True)
    if errors:
        sys.exit(1)


@click.command("doctor")
@click.argument("experiments", nargs=-1)
@profile_option
@runs_dir_option
@executor_options
def doctor_cmd(experiments, profile, runs_dir, executor_name, executor_config):
    """Check GPUs, disk, HF token and access, lock pins, packages and the executor (daemon,
    images, sbatch) for EXPERIMENTS (default: all)."""
    from repro.doctor import run_checks

    checks, need = run_checks(list(experiments) or None, profile, runs_dir, executor=executor_name,
                              executor_config=executor_config)
    for check in checks:
        click.echo(check.line())
    failed = [c for c in checks if c.level == "FAIL"]
    click.echo(need)
    if failed:
        click.echo(f"{len(failed)} requirement(s) not met", err=True)
        sys.exit(1)


COMMANDS = [fetch_cmd, data_group, lock_cmd, doctor_cmd]
