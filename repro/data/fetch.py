"""Stage ``data/fetch``: a pinned dataset from manifest.lock -> its official on-disk layout.

Params: ``dataset`` (a ``datasets`` key of manifest.lock), ``loader`` (the loader name written to
``DATASET.json``; default: the key), ``local_dir`` (a mirror; else ``$REPRO_LOCAL_<KEY>``, else
the Hub; GitHub-hosted entries need a mirror), ``allow_unpinned`` (default false), ``extract``
(``{archive.zip: subdir}`` to unpack, e.g. LLaVA-Pretrain's ``images.zip`` -> ``images/``),
``keep_archives`` (default false), ``check_splits`` (splits to read back; default the loader's),
``allow_patterns``/``ignore_patterns`` (Hub downloads only: skip files the kit does not read).
The result is read back with the registered loader, so a broken mirror fails here.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from repro.errors import InputError
from repro.fetch import hub

KIND = "datasets"
# archives the official instructions say to unzip, and where (the loaders read the unpacked form)
DEFAULT_EXTRACT = {"llava_pretrain": {"images.zip": "images"}}
_OWN_FILES = ("DATASET.json", "metrics.json")


def loader_for(key: str, loader: str | None) -> str:
    from repro.data import DATASETS

    name = loader or key
    if name not in DATASETS:
        raise InputError(f"data/fetch {key}: param loader: no dataset loader named {name!r}; "
                         f"known: {', '.join(DATASETS.names())}")
    return name


def _extract_zip(archive: Path, dest: Path) -> int:
    """Unpack ``archive`` under ``dest``, refusing members that would land outside it."""
    n = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename.replace("\\", "/")
                parts = PurePosixPath(name).parts
                if info.is_dir() or not parts or parts[0] == "__MACOSX":
                    continue
                if name.startswith("/") or ".." in parts or ":" in parts[0]:
                    raise InputError(f"{archive}: member {info.filename!r} escapes the extraction folder")
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 8 << 20)
                n += 1
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a valid zip archive ({exc})") from None
    return n


def fetch_dataset(out: Path, entry: dict, key: str, src: hub.Source, extract: dict, keep_archives: bool) -> dict:
    """Verify pinned digests, link the files into ``out``, unpack archives; returns what to record."""
    from repro.provenance.digest import DIR_HASH, dir_hash

    rels = [r for r in hub.list_tree(src.root) if r not in _OWN_FILES]
    if not rels:
        raise InputError(f"{src.root}: no files ({entry['id']} @ {src.revision})")
    if not isinstance(extract, dict):
        raise InputError(f"data/fetch {key}: param extract: expected a mapping archive -> folder, got {extract!r}")
    for archive, sub in extract.items():
        if archive not in rels:
            raise InputError(f"{src.root / archive}: missing (param extract names it)")
        if not str(archive).endswith(".zip"):
            raise InputError(f"data/fetch {key}: param extract: {archive}: only .zip archives are supported")
        if ".." in PurePosixPath(str(sub)).parts or str(sub).startswith("/"):
            raise InputError(f"data/fetch {key}: param extract: {archive}: folder {sub!r} escapes the output")
    digests = hub.sha256_many(src.root, rels)
    verified = hub.verify_pins(entry, KIND, key, src.root, digests)
    linked = rels if keep_archives else [r for r in rels if r not in extract]
    hub.link_files(src.root, linked, out)
    unpacked = {a: _extract_zip(src.root / a, out / sub) for a, sub in sorted(extract.items())}
    return {"digest": {DIR_HASH: dir_hash(digests)}, "verified_files": verified, "files": len(rels),
            "unpacked": unpacked}


def _category(record) -> str:
    meta = getattr(record, "meta", {}) or {}
    if meta.get("safe_image") is True:  # VLGuard: safe images carry no harmful_category
        return "safe image"
    return (getattr(record, "category", None) or meta.get("harmful_category")
            or meta.get("category") or "(none)")


def check_dataset(root: Path, loader: str, splits=None, cache_dir: Path | None = None) -> dict:
    """Read ``root`` with ``loader``: ``{split: {"n": count, "categories": {name: count}}}``
    (and ``"layout": official|mirror`` for a dataset read from either, ``repro.data.layouts``)."""
    from repro.data import Dataset, DATASETS

    DATASETS.get(loader)  # an unknown name fails with the registry's suggestion
    dataset = Dataset(loader, Path(root), {}, cache_dir)
    counts = {}
    for split in splits or [None]:
        records = dataset.records(split)
        label = split or "default"
        if not records:
            raise InputError(f"{root}: dataset {loader}: split {label}: no records")
        cats = Counter(_category(r) for r in records)
        counts[label] = {"n": len(records), "categories": dict(sorted(cats.items()))}
    return counts


def layout_note(root: Path, loader: str) -> dict:
    """``{"layout": ...}`` for a two-layout dataset (repro.data.layouts), else ``{}``."""
    from repro.data.layouts import layout_of

    layout = layout_of(loader, Path(root))
    return {"layout": layout} if layout else {}


def fetch_dataset_stage(ctx) -> None:
    key = ctx.param("dataset")
    entry = hub.lock_entry(ctx.lock, KIND, key)
    loader = loader_for(key, ctx.param("loader", None))
    allow_unpinned = bool(ctx.param("allow_unpinned", False))
    splits = ctx.param("check_splits", None)
    mirror = hub.local_mirror(key, ctx.param("local_dir", None))
    ctx.out.mkdir(parents=True, exist_ok=True)
    with hub.download_dir(ctx) as dest:
        if mirror is not None:
            src = hub.from_mirror(entry, KIND, key, mirror, allow_unpinned)
        else:
            src = hub.download(entry, KIND, key, dest, allow_unpinned=allow_unpinned,
                               allow_patterns=ctx.param("allow_patterns", None),
                               ignore_patterns=ctx.param("ignore_patterns", None))
        rec = fetch_dataset(ctx.out, entry, key, src, ctx.param("extract", DEFAULT_EXTRACT.get(key, {})),
                            bool(ctx.param("keep_archives", False)))
    marker = {"dataset": loader, "source": src.source, "id": entry["id"], "revision": src.revision,
              "lock_key": key, **layout_note(ctx.out, loader)}
    (ctx.out / "DATASET.json").write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    counts = check_dataset(ctx.out, loader, splits if isinstance(splits, list) else ([splits] if splits else None))
    hub.record_dependency(ctx, entry, KIND, key, src, rec["digest"],
                          verified_files=rec["verified_files"], unpacked=rec["unpacked"])
    ctx.write_metrics({"dataset": loader, "lock_key": key, "id": entry["id"], "revision": src.revision,
                       "pinned": src.pinned, "files": rec["files"], "counts": counts,
                       **layout_note(ctx.out, loader)})
