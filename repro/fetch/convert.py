"""The kit's one use of pickle weights: ``pytorch_model*.bin`` -> safetensors, once, at fetch.

tulu-2-7b and clip-vit-large-patch14-336 ship only pickles. A pickle can run code when loaded,
so a ``.bin`` is read only when (1) its sha256 is pinned in manifest.lock, (2) the file on disk
matches that pin (checked before loading), and (3) through ``torch.load(weights_only=True)``.
Shards keep their split: ``pytorch_model-00001-of-00002.bin`` -> ``model-00001-of-00002.safetensors``
with a ``model.safetensors.index.json`` whose weight map points at the new names.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

from repro.errors import InputError

BIN_INDEX = "pytorch_model.bin.index.json"
ST_INDEX = "model.safetensors.index.json"
_WEIGHT_BIN = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")


def weight_bins(rels) -> list[str]:
    """The transformers pickle weight files among ``rels`` (top level only)."""
    return sorted(r for r in rels if _WEIGHT_BIN.match(r))


def safetensors_name(bin_name: str) -> str:
    return "model" + bin_name[len("pytorch_model"):-len(".bin")] + ".safetensors"


def require_pinned(bins: list[str], entry: dict, where: str) -> None:
    """Refuse to unpickle any file whose sha256 the lock does not pin."""
    for rel in bins:
        if rel not in entry["files"]:
            raise InputError(f"{where}.files.{rel}: no sha256 pinned; pin the digest first "
                             "(`repro lock --resolve` reads it from the Hub's LFS metadata) before "
                             "allow_pickle may load it")


def _unshare(state: dict) -> dict:
    """safetensors refuses tensors sharing storage (tied weights in a pickle): give each its own."""
    seen, out = set(), {}
    for name, tensor in state.items():
        if not hasattr(tensor, "untyped_storage"):
            raise InputError(f"{name}: not a tensor ({type(tensor).__name__}); not a weights file")
        ptr = tensor.untyped_storage().data_ptr()
        tensor = tensor.contiguous()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out


def load_bin(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{path}: not loadable with weights_only=True ({first[:200]})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def convert_bins(src: Path, bins: list[str], dst: Path) -> dict[str, str]:
    """Write ``dst/<safetensors name>`` for each ``.bin`` (and the index); returns bin -> new name."""
    from safetensors.torch import save_file

    names = {b: safetensors_name(b) for b in bins}
    key_file: dict[str, str] = {}
    total = 0
    for rel in bins:
        state = _unshare(load_bin(src / rel))
        save_file(state, str(dst / names[rel]), metadata={"format": "pt"})
        for k, t in state.items():
            key_file[k] = names[rel]
            total += t.numel() * t.element_size()
        del state
    if len(bins) > 1 or (src / BIN_INDEX).is_file():
        _write_index(src, dst, names, key_file, total)
    return names


def _write_index(src: Path, dst: Path, names: dict[str, str], key_file: dict[str, str], total: int) -> None:
    index_path = src / BIN_INDEX
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
            old_map = index["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{index_path}: weight_map: missing or not valid JSON") from None
        unknown = sorted(set(old_map.values()) - set(names))
        if unknown:
            raise InputError(f"{index_path}: weight_map names {unknown[0]!r}, "
                             "which is not among the fetched .bin files")
        missing = sorted(set(old_map) ^ set(key_file))
        if missing:
            raise InputError(f"{index_path}: weight_map and the shards disagree on tensor {missing[0]!r}")
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(key_file.items()))}
    (dst / ST_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
