"""Stage ``models/fetch``: a pinned checkpoint from manifest.lock -> a safetensors model directory.

Params: ``model`` (a ``models`` key of manifest.lock), ``template`` (chat template; required for
LLMs and LLaVA checkpoints), ``local_dir`` (a mirror; else ``$REPRO_LOCAL_<KEY>``, else the Hub),
``allow_unpinned`` (default false), ``allow_pickle`` (default false: convert pinned
``pytorch_model*.bin`` to safetensors). Output: the repository's files (weights as safetensors
only, hard-linked when possible) plus ``repro_model.json``. See docs/fetch.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.errors import InputError
from repro.fetch import convert, hub
from repro.models.card import REPRO_MODEL_FILE, write_model_card

KIND = "models"


def download_model(entry: dict, key: str, dest: Path, allow_unpinned: bool, allow_pickle: bool) -> hub.Source:
    """Safetensors first; the pickles are fetched only when there are none and they are allowed."""
    ignore = [f"*{s}" for s in hub.PICKLE_SUFFIXES] + list(hub.FOREIGN_WEIGHTS)
    src = hub.download(entry, KIND, key, dest, allow_unpinned=allow_unpinned, ignore_patterns=ignore)
    if any(r.endswith(".safetensors") for r in hub.list_tree(src.root)) or not allow_pickle:
        return src
    return hub.download(entry, KIND, key, dest, allow_unpinned=allow_unpinned, revision=src.revision,
                        allow_patterns=["pytorch_model*.bin", convert.BIN_INDEX])


def _plan(src: hub.Source, rels: list[str], entry: dict, allow_pickle: bool) -> tuple[list[str], list[str]]:
    """(files to link, pickle weight files to convert)."""
    def wanted(r: str) -> bool:
        top = "/" not in r and r in (REPRO_MODEL_FILE, "metrics.json")
        return not (top or hub.is_pickle(r) or hub.is_foreign(r))

    keep = [r for r in rels if wanted(r) and r != convert.BIN_INDEX]
    if any(r.endswith(".safetensors") for r in keep):
        return keep, []
    bins = convert.weight_bins(rels)
    label = f"{src.repo_id}@{src.revision or 'unpinned'} ({src.root})"
    if not bins and src.source == "hub" and not allow_pickle:
        raise InputError(f"{label}: no *.safetensors weights; pickle weights (pytorch_model*.bin) are not "
                         "downloaded unless param allow_pickle: true (their sha256 pinned in manifest.lock)")
    if not bins:
        raise InputError(f"{label}: no model weights (*.safetensors or pytorch_model*.bin) found")
    if not allow_pickle:
        raise InputError(f"{label}: ships only pickle weights ({', '.join(bins)}); refused unless param "
                         "allow_pickle: true (their sha256 pinned in manifest.lock; converted once to safetensors)")
    convert.require_pinned(bins, entry, hub.where(KIND, src.key))
    return keep, bins


def architecture(model_dir: Path) -> str:
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing (not a Hugging Face checkpoint)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    from repro.models.card import CONFIG_ARCHITECTURES

    archs = config.get("architectures") or []
    known = [CONFIG_ARCHITECTURES[a] for a in archs if a in CONFIG_ARCHITECTURES]
    if known:
        return known[0]
    if config.get("model_type") in ("clip", "clip_vision_model") or any(a.startswith("CLIP") for a in archs):
        return "clip_vision"
    return "causal_lm"


# transformers 5's LlamaTokenizer (the class Meta's and AllenAI's tokenizer_config.json name; the
# LLaVA checkpoints inherit it) keeps only the vocabulary and merges of tokenizer.json and rebuilds
# a Metaspace(prepend_scheme="first") pipeline: after "<s>" it encodes "[INST]" as "[" (29961)
# where SentencePiece, i.e. Llama 2's own training and LLaVA's, has "▁[" (518), and " Hello" as
# [15043], not [29871, 15043]. The generic fast class loads tokenizer.json as written.
SPM_TOKENIZER_CLASSES = ("LlamaTokenizer", "LlamaTokenizerFast")


def tokenizer_as_written(out: Path) -> str | None:
    """Make ``out`` load its ``tokenizer.json`` as written (``PreTrainedTokenizerFast``) where its
    ``tokenizer_config.json`` names a LLaMA tokenizer class; returns the class it named, or None
    (nothing changed). The config is rewritten as a new file: fetched files may be hard links
    into a mirror."""
    path = out / "tokenizer_config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    named = config.get("tokenizer_class")
    if named not in SPM_TOKENIZER_CLASSES:
        return None
    if not (out / "tokenizer.json").is_file():
        raise InputError(f"{path}: tokenizer_class {named} without a tokenizer.json: transformers 5 "
                         "would rebuild a pipeline that encodes unlike SentencePiece (docs/rehearsal.md)")
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.unlink()
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return named


def _card(out: Path, arch: str, template: str | None, key: str) -> dict:
    from repro.models.images import IMAGE_PREPROCESSING
    from repro.models.templates import get_template

    if arch == "clip_vision":
        return {"architecture": arch}
    if not template:
        raise InputError(f"models/fetch {key}: param template: required for a {arch} checkpoint "
                         "(llama2 for LLaMA-2-Chat, tulu for Tulu-2)")
    get_template(template)
    card = {"architecture": arch, "template": template}
    if arch == "llava":  # the released LLaVA checkpoints were trained with LLaVA's pad-to-square
        card["image_preprocessing"] = IMAGE_PREPROCESSING
    return card


def fetch_model(ctx_out: Path, entry: dict, key: str, src: hub.Source, *, allow_pickle: bool,
                template: str | None, log=None) -> dict:
    """Verify, link (and convert) ``src`` into ``ctx_out``; returns the dependency record."""
    from repro.provenance.digest import DIR_HASH, dir_hash

    rels = hub.list_tree(src.root)
    keep, bins = _plan(src, rels, entry, allow_pickle)
    digests = hub.sha256_many(src.root, keep + bins)
    # a pinned pickle is checked only when it is the one being converted (else it is not used)
    unused = {r for r in entry["files"] if (hub.is_pickle(r) or hub.is_foreign(r)) and r not in bins}
    verified = hub.verify_pins(entry, KIND, key, src.root, digests, unused)
    counts = hub.link_files(src.root, keep, ctx_out)
    converted = {}
    if bins:
        names = convert.convert_bins(src.root, bins, ctx_out)
        new = hub.sha256_many(ctx_out, names.values())
        converted = {b: {"sha256": digests[b], "safetensors": n, "safetensors_sha256": new[n]}
                     for b, n in names.items()}
    if log:
        log.info("models/fetch %s: %d files linked, %d copied, %d converted", key, counts["linked"],
                 counts["copied"], len(converted))
    card = _card(ctx_out, architecture(ctx_out), template, key)
    write_model_card(ctx_out, **card)
    return {"digest": {DIR_HASH: dir_hash(digests)}, "verified_files": verified,
            "converted_from_pickle": converted, "card": card, "files": len(keep),
            "tokenizer_class_replaced": tokenizer_as_written(ctx_out)}


def fetch_model_stage(ctx) -> None:
    key = ctx.param("model")
    entry = hub.lock_entry(ctx.lock, KIND, key)
    allow_unpinned = bool(ctx.param("allow_unpinned", False))
    allow_pickle = bool(ctx.param("allow_pickle", False))
    mirror = hub.local_mirror(key, ctx.param("local_dir", None))
    ctx.out.mkdir(parents=True, exist_ok=True)
    with hub.download_dir(ctx) as dest:
        if mirror is not None:
            src = hub.from_mirror(entry, KIND, key, mirror, allow_unpinned)
        else:
            src = download_model(entry, key, dest, allow_unpinned, allow_pickle)
        rec = fetch_model(ctx.out, entry, key, src, allow_pickle=allow_pickle,
                          template=ctx.param("template", None), log=ctx.log)
    hub.record_dependency(ctx, entry, KIND, key, src, rec["digest"],
                          verified_files=rec["verified_files"],
                          converted_from_pickle=rec["converted_from_pickle"])
    if rec["converted_from_pickle"]:
        ctx.protocol("pickle_conversion", "torch.load(weights_only=True) of digest-pinned .bin -> safetensors")
    if rec["tokenizer_class_replaced"]:
        ctx.protocol("tokenizer_loading", f"tokenizer.json as written (PreTrainedTokenizerFast), not "
                     f"transformers 5's {rec['tokenizer_class_replaced']} pipeline (tokenizer_config.json rewritten)")
    if "template" in rec["card"]:
        ctx.protocol("chat_template", rec["card"]["template"])
    ctx.write_metrics({"model": key, "id": entry["id"], "revision": src.revision, "pinned": src.pinned,
                       "architecture": rec["card"]["architecture"], "files": rec["files"],
                       "converted_from_pickle": sorted(rec["converted_from_pickle"])})
