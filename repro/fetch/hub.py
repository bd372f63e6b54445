"""A ``manifest.lock`` entry -> a local directory, with every pinned file digest checked.

Sources, in order: a local mirror (param ``local_dir`` or ``$REPRO_LOCAL_<KEY>``, for clusters
without internet), else ``huggingface_hub.snapshot_download`` at the pinned revision. The token
is whatever huggingface_hub finds itself (``$HF_TOKEN`` or its login); this module never reads,
logs or writes it. Downloads resume: huggingface_hub keeps partial files in the target folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import InputError
from repro.io import sha256_file
from repro.provenance import pins
from repro.provenance.digest import MAX_WORKERS

REPO_TYPES = {"models": "model", "datasets": "dataset"}
# download bookkeeping and VCS data are not part of a model or dataset
SKIP_DIRS = {".cache", ".git", ".huggingface"}
# pickle-format weights: never downloaded or linked unless a pickle conversion needs them
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# other frameworks' copies of the same weights: never needed by the kit
FOREIGN_WEIGHTS = ("*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.gguf", "*.mlmodel")


@dataclass
class Source:
    """Where an entry's files are: ``root`` (read-only to us) and how they got there."""
    kind: str
    key: str
    repo_id: str
    root: Path
    source: str  # "hub" | "local"
    revision: str | None  # the commit the files are at (pinned, or resolved when unpinned)
    pinned: bool
    annotations: dict = field(default_factory=dict)


def env_var(key: str) -> str:
    return f"REPRO_LOCAL_{key.upper()}"


def hub_page(kind: str, repo_id: str) -> str:
    return "https://huggingface.co/" + ("datasets/" if kind == "datasets" else "") + repo_id


def dep_uri(entry: dict) -> str:
    if entry.get("host", "huggingface") == "github":
        return f"git+https://github.com/{entry['id']}"
    return f"hf://{entry['id']}"


def where(kind: str, key: str) -> str:
    return f"manifest.lock: {kind}.{key}"


def check_pinned(entry: dict, kind: str, key: str, allow_unpinned: bool) -> None:
    """An unpinned entry (revision null) is refused unless the caller explicitly allows it."""
    if entry["revision"] is None and not allow_unpinned:
        raise InputError(f"{where(kind, key)}.revision: unpinned; pin it (`repro lock --resolve {key}`) "
                         "or set param allow_unpinned: true (the resolved revision is then recorded and flagged)")


def local_mirror(key: str, local_dir: str | Path | None) -> Path | None:
    """The mirror named by param ``local_dir`` or ``$REPRO_LOCAL_<KEY>``; None when neither is set."""
    given, origin = (local_dir, "param local_dir") if local_dir else (os.environ.get(env_var(key)), env_var(key))
    if not given:
        return None
    path = Path(given).expanduser()
    if not path.is_dir():
        raise InputError(f"{origin}: {path}: not a directory")
    return path


def mirror_revision(root: Path) -> str | None:
    """The commit a mirror says it holds: huggingface_hub's local-dir metadata, an HF cache
    snapshot folder (``.../snapshots/<sha>``) or a git HEAD."""
    if root.parent.name == "snapshots" and len(root.name) == 40:
        return root.name
    meta_dir = root / ".cache" / "huggingface" / "download"
    if meta_dir.is_dir():
        shas = set()
        for meta in meta_dir.rglob("*.metadata"):
            with contextlib.suppress(OSError, IndexError):
                shas.add(meta.read_text().splitlines()[0].strip())
        if len(shas) == 1:
            return shas.pop()
    head = root / ".git" / "HEAD"
    with contextlib.suppress(OSError):
        text = head.read_text().strip()
        if not text.startswith("ref: "):
            return text
        ref = text[5:]
        loose = root / ".git" / ref
        if loose.is_file():
            return loose.read_text().strip()
        for line in (root / ".git" / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def from_mirror(entry: dict, kind: str, key: str, mirror: Path, allow_unpinned: bool) -> Source:
    check_pinned(entry, kind, key, allow_unpinned)
    seen = mirror_revision(mirror)
    pinned = entry["revision"] is not None
    if pinned and seen and seen != entry["revision"] and entry.get("host", "huggingface") == "huggingface":
        raise InputError(f"{mirror}: holds revision {seen}, but {where(kind, key)}.revision pins "
                         f"{entry['revision']}")
    ann = {"mirror_revision": seen} if seen else {}
    if not pinned:
        ann["unpinned"] = True
    return Source(kind, key, entry["id"], mirror, "local", entry["revision"] if pinned else seen, pinned, ann)


# --------------------------------------------------------------------------- Hub downloads


def _http_status(exc) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


@contextlib.contextmanager
def hub_errors(kind: str, key: str, repo_id: str, revision: str | None):
    """Turn huggingface_hub's exceptions into one-line InputErrors that say what to do."""
    from huggingface_hub import errors

    page = hub_page(kind, repo_id)
    local = f"or point {env_var(key)} at a local mirror"
    try:
        yield
    except errors.GatedRepoError:
        raise InputError(f"{repo_id}: gated repository: accept its terms at {page} and set HF_TOKEN "
                         f"to a token of that account ({where(kind, key)})") from None
    except errors.RevisionNotFoundError:
        raise InputError(f"{repo_id}: revision {revision} not found on the Hub ({where(kind, key)}.revision)") from None
    except errors.RepositoryNotFoundError:
        raise InputError(f"{repo_id}: repository not found or private (401): check the id at {page} "
                         f"and that HF_TOKEN is set ({where(kind, key)}.id)") from None
    except errors.HfHubHTTPError as exc:
        status = _http_status(exc)
        if status in (401, 403):
            raise InputError(f"{repo_id}: access denied (HTTP {status}): accept its terms at {page} and set "
                             "HF_TOKEN to a token of that account") from None
        raise InputError(f"{repo_id}: Hub request failed (HTTP {status}) {local}") from None
    except errors.LocalEntryNotFoundError:
        raise InputError(f"{repo_id}: cannot reach the Hugging Face Hub (offline?); download it where "
                         f"there is network (`repro fetch {key} --to DIR`) {local}") from None
    except OSError as exc:
        network = isinstance(exc, (ConnectionError, TimeoutError)) or exc.__class__.__module__.startswith(
            ("httpx", "httpcore", "requests", "urllib3"))
        if not network:
            raise
        raise InputError(f"{repo_id}: cannot reach the Hugging Face Hub ({exc.__class__.__name__}) {local}") from None


def resolve_head(kind: str, key: str, repo_id: str) -> str:
    """The current commit of the default branch (for an explicitly allowed unpinned fetch)."""
    from huggingface_hub import HfApi

    with hub_errors(kind, key, repo_id, "main"):
        return HfApi().repo_info(repo_id, repo_type=REPO_TYPES[kind]).sha


def download(entry: dict, kind: str, key: str, dest: Path | None, *, allow_unpinned: bool = False,
             revision: str | None = None, allow_patterns=None, ignore_patterns=None) -> Source:
    """``snapshot_download`` at the pinned revision into ``dest`` (None: the HF cache)."""
    from huggingface_hub import snapshot_download

    if entry.get("host", "huggingface") != "huggingface":
        raise InputError(f"{where(kind, key)}: {entry['id']} is hosted on {entry['host']} ({entry['source']}), "
                         f"not the Hub: clone it at {entry['revision']} and set {env_var(key)} (or param "
                         "local_dir) to the clone")
    check_pinned(entry, kind, key, allow_unpinned)
    revision = revision or entry["revision"] or resolve_head(kind, key, entry["id"])
    with hub_errors(kind, key, entry["id"], revision):
        path = snapshot_download(entry["id"], revision=revision, repo_type=REPO_TYPES[kind],
                                 local_dir=str(dest) if dest is not None else None,
                                 allow_patterns=allow_patterns, ignore_patterns=ignore_patterns)
    ann = {} if entry["revision"] else {"unpinned": True}
    return Source(kind, key, entry["id"], Path(path), "hub", revision, entry["revision"] is not None, ann)


@contextlib.contextmanager
def download_dir(ctx):
    """Where a stage downloads: its scratch (survives a crash, so downloads resume), else a
    temporary folder beside ``ctx.out`` (same filesystem, so files hard-link)."""
    if ctx.scratch is not None:
        path = Path(ctx.scratch) / "download"
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=".download-", dir=Path(ctx.out).parent) as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------- files and digests


def list_tree(root: Path) -> list[str]:
    """Relative POSIX paths of the files under ``root`` (symlinks followed, bookkeeping skipped)."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        out += [(rel / n).as_posix() for n in filenames if os.path.isfile(os.path.join(dirpath, n))]
    return sorted(out, key=str.encode)


def sha256_many(root: Path, rels) -> dict[str, str]:
    rels = list(rels)
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        return dict(zip(rels, pool.map(lambda r: sha256_file(root / r), rels)))


def verify_pins(entry: dict, kind: str, key: str, root: Path, digests: dict[str, str],
                not_fetched: set[str] = frozenset()) -> dict[str, str]:
    """Check every file digest the lock pins; returns the verified ``{path: sha256}``."""
    verified = {}
    for rel, want in sorted(entry["files"].items()):
        if rel in not_fetched:
            continue
        if rel not in digests:
            raise InputError(f"{root / rel}: missing, but {where(kind, key)}.files pins it")
        if digests[rel] != want:
            raise InputError(f"{root / rel}: sha256 {digests[rel]} != pinned {want} ({where(kind, key)}.files)")
        verified[rel] = want
    return verified


def link_files(src: Path, rels, dst: Path) -> dict[str, int]:
    """Hard-link ``src/rel`` to ``dst/rel`` (a 13 GB checkpoint is not copied); copy when linking
    fails (another filesystem, no permission). Symlinks are resolved: outputs hold plain files."""
    counts = {"linked": 0, "copied": 0}
    for rel in rels:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = os.path.realpath(src / rel)
        try:
            os.link(source, target)
            counts["linked"] += 1
        except OSError:
            shutil.copyfile(source, target)
            counts["copied"] += 1
    return counts


def is_pickle(rel: str) -> bool:
    return rel.endswith(PICKLE_SUFFIXES)


def is_foreign(rel: str) -> bool:
    return rel.endswith(tuple(p[1:] for p in FOREIGN_WEIGHTS))


def record_dependency(ctx, entry: dict, kind: str, key: str, src: Source, digest: dict,
                      **extra) -> None:
    """Record a fetched model/dataset: the lock key and kind that `repro verify` checks against
    manifest.lock, where it came from, and any non-empty extras (verified files, ...)."""
    ann = {"lock_key": key, "lock_kind": kind, "source": src.source, **src.annotations}
    ann.update({k: v for k, v in extra.items() if v})
    ctx.add_dependency(entry["id"], uri=dep_uri(entry), revision=src.revision, digest=digest, **ann)


def lock_entry(lock: dict | None, kind: str, key: str) -> dict:
    """``lock[kind][key]``; the repository's manifest.lock when the caller has none loaded."""
    return pins.find_pin(lock if lock else pins.load_lock(), kind, key)
