"""``repro lock --resolve``: fill manifest.lock's missing pins from the Hub.

For each Hub-hosted ``models``/``datasets`` entry: an unpinned revision becomes the default
branch's current commit (``HfApi().model_info/dataset_info(id).sha``), and every LFS file at that
revision gets its sha256 from the Hub's LFS metadata (the LFS oid *is* the file's sha256; small
non-LFS files only have a git blob sha1, so they are not recorded). An existing pin is never
changed: a recorded digest that disagrees with the Hub is reported as an error.
"""

from __future__ import annotations

import os

from repro.errors import InputError
from repro.fetch import hub
from repro.provenance import pins

SECTIONS = ("models", "datasets")


def unpinned(lock: dict) -> list[tuple[str, str, dict]]:
    """(kind, key, entry) for every entry without a revision."""
    return [(kind, key, e) for kind in SECTIONS for key, e in sorted(lock[kind].items())
            if e["revision"] is None]


def missing_digests(lock: dict) -> list[tuple[str, str, dict]]:
    """(kind, key, entry) for pinned Hub entries with no file sha256 at all."""
    return [(kind, key, e) for kind in SECTIONS for key, e in sorted(lock[kind].items())
            if e["revision"] is not None and not e["files"] and e.get("host", "huggingface") == "huggingface"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _lfs_digests(api, kind: str, key: str, repo_id: str, revision: str) -> dict[str, str]:
    with hub.hub_errors(kind, key, repo_id, revision):
        tree = api.list_repo_tree(repo_id, revision=revision, repo_type=hub.REPO_TYPES[kind], recursive=True)
        return {f.path: f.lfs.sha256 for f in tree if getattr(f, "lfs", None) is not None}


def resolve_entry(api, kind: str, key: str, entry: dict) -> list[str]:
    """Update ``entry`` in place; returns one line per change."""
    changes = []
    repo_type = hub.REPO_TYPES[kind]
    if entry["revision"] is None:
        with hub.hub_errors(kind, key, entry["id"], "main"):
            info = (api.model_info if kind == "models" else api.dataset_info)(entry["id"])
        entry.update(revision=info.sha, status="pinned",
                     source=f"{hub.hub_page(kind, entry['id'])}/tree/{info.sha}")
        changes.append(f"{kind}.{key}.revision: {info.sha} (default branch head)")
    lfs = _lfs_digests(api, kind, key, entry["id"], entry["revision"])
    for rel, sha in sorted(lfs.items()):
        have = entry["files"].get(rel)
        if have is None:
            entry["files"][rel] = sha
            changes.append(f"{kind}.{key}.files.{rel}: {sha}")
        elif have != sha:
            raise InputError(f"{hub.where(kind, key)}.files.{rel}: pinned sha256 {have} != Hub LFS sha256 {sha} "
                             f"at {entry['revision']} ({repo_type} {entry['id']})")
    return changes


def resolve_lock(lock: dict, keys=None, api=None) -> tuple[list[str], list[str]]:
    """Resolve Hub entries (all, or ``keys``); returns (changes, per-entry errors)."""
    from huggingface_hub import HfApi

    if _offline():
        raise InputError("repro lock --resolve: HF_HUB_OFFLINE is set; resolving pins needs the Hugging Face Hub")
    api = api or HfApi()
    targets = [(k, key) for k in SECTIONS for key in sorted(lock[k]) if not keys or key in keys]
    unknown = sorted(set(keys or ()) - {key for _, key in targets})
    if unknown:
        pins.find_pin(lock, "models" if unknown[0] in lock["models"] else "datasets", unknown[0])
    changes, errors = [], []
    for kind, key in targets:
        entry = lock[kind][key]
        if entry.get("host", "huggingface") != "huggingface":
            continue
        try:
            changes += resolve_entry(api, kind, key, entry)
        except InputError as exc:
            if "cannot reach the Hugging Face Hub" in str(exc):
                raise InputError(f"repro lock --resolve: {exc}") from None  # offline: stop at once
            errors.append(str(exc))
    return changes, errors
