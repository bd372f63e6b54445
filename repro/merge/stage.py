"""Merge stages: stream full checkpoints tensor by tensor into one complete checkpoint directory.

Each method module gives a protocol record and ``combine(key, {role: float32 tensor})``; this
module does everything else: key-set/shape/dtype checks (mergekit once silently dropped the
whole language model of a LLaVA checkpoint), the frozen vision tower copied and checked
identical, float32 compute stored back in the input dtype, shards written in the first input's
layout, and config/tokenizer/processor files copied from the first input.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path
from typing import Callable

from repro.errors import InputError
from repro.io import sha256_bytes
from repro.merge.task_arithmetic import model_roles
from repro.models.stream import (FLOAT_DTYPES, INDEX_FILE, Checkpoint, bytes_to_tensor, check_same_layout,
                                 nbytes, write_safetensors)

DEFAULT_FROZEN = ["vision_tower."]
# files that make the output a loadable checkpoint; taken from the first input
AUX_PATTERNS = ("config.json", "generation_config.json", "repro_model.json", "tokenizer*",
                "special_tokens_map.json", "added_tokens.json", "processor_config.json",
                "preprocessor_config.json", "chat_template.*", "vocab.*", "merges.txt")
# config fields that must agree for a merge to make sense (top level and text/vision sub-configs)
ARCH_FIELDS = ("architectures", "model_type", "hidden_size", "intermediate_size",
               "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
               "vocab_size", "image_size", "patch_size", "image_token_index", "image_seq_length",
               "tie_word_embeddings", "hidden_act", "vision_feature_layer",
               "vision_feature_select_strategy")
METHODS = {
    "linear": "repro.merge.linear",
    "task_arithmetic": "repro.merge.task_arithmetic",
    "ties": "repro.merge.ties",
    "dare": "repro.merge.dare",
}


def _arch_view(config: dict) -> dict:
    view = {k: config[k] for k in ARCH_FIELDS if k in config}
    for sub in ("text_config", "vision_config"):
        if isinstance(config.get(sub), dict):
            view[sub] = _arch_view(config[sub])
    return view


def _flatten(view: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in view.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def check_configs(dirs: dict[str, Path]) -> None:
    """config.json architecture fields and repro_model.json architecture/template must agree."""
    (first_role, first), *rest = dirs.items()

    def read(d: Path, name: str) -> dict:
        try:
            return json.loads((d / name).read_text())
        except FileNotFoundError:
            raise InputError(f"{d / name}: missing (not a model stage output)") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{d / name}: invalid JSON ({exc.msg})") from None

    ref_cfg, ref_card = _flatten(_arch_view(read(first, "config.json"))), read(first, "repro_model.json")
    for role, d in rest:
        cfg = _flatten(_arch_view(read(d, "config.json")))
        for field in sorted(set(ref_cfg) | set(cfg)):
            if ref_cfg.get(field) != cfg.get(field):
                raise InputError(f"{d / 'config.json'}: {field}: {cfg.get(field)!r} != "
                                 f"{ref_cfg.get(field)!r} in {first_role}")
        card = read(d, "repro_model.json")
        for field in ("architecture", "template"):
            if card.get(field) != ref_card.get(field):
                raise InputError(f"{d / 'repro_model.json'}: {field}: {card.get(field)!r} != "
                                 f"{ref_card.get(field)!r} in {first_role}")


def _frozen_prefixes(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise InputError(f"params: frozen_prefixes: expected a list of key prefixes, got {value!r}")
    return list(value)


class _Buffers:
    """Reusable buffers: fresh 100 MB allocations page-fault on every tensor and halve throughput."""

    def __init__(self):
        self.raw: dict = {}

    def bytes(self, name, size: int) -> bytearray:
        buf = self.raw.get(name)
        if buf is None or len(buf) < size:
            buf = self.raw[name] = bytearray(size)
        return buf

    def floats(self, name, shape):
        import torch

        numel = 1
        for d in shape:
            numel *= d
        buf = self.raw.get(name)
        if buf is None or buf.numel() < numel:
            buf = self.raw[name] = torch.empty(numel, dtype=torch.float32)
        return buf[:numel].view(shape)


class _Producer:
    """Makes each output tensor's bytes in write order; counts what was merged and copied.

    Inputs are mapped, not read (torch computes straight from the page cache); results go to one
    of two alternating output buffers because the writer thread may still be writing the
    previous tensor (see ``write_safetensors``).
    """

    def __init__(self, cks: dict[str, Checkpoint], combine: Callable, frozen: list[str]):
        self.cks, self.combine, self.frozen = cks, combine, tuple(frozen)
        self.first = next(iter(cks))
        self.merged = self.copied = self.calls = 0
        self.frozen_digest = hashlib.sha256()
        self.buffers = _Buffers()

    def __call__(self, key: str):
        entry = self.cks[self.first].entry(key)
        self.calls += 1
        if key.startswith(self.frozen) or entry.dtype not in FLOAT_DTYPES:
            return self._copy(key, entry.dtype, {role: ck.read_bytes(key) for role, ck in self.cks.items()})
        size = nbytes(entry)
        out = self.buffers.bytes(("out", self.calls % 2), size)
        view = bytes_to_tensor(memoryview(out)[:size], entry)
        inputs = {role: ck.map_tensor(key) for role, ck in self.cks.items()}
        if getattr(self.combine, "native", False):  # computes in float32 itself, writes ``view``
            self.combine(key, inputs, view)
        else:  # float32 compute whatever the storage dtype (bf16 sums lose too much)
            tensors = {role: self.buffers.floats(("f32", role), entry.shape).copy_(t)
                       for role, t in inputs.items()}
            view.copy_(self.combine(key, tensors))
        self.merged += 1
        return memoryview(out)[:size]

    def _copy(self, key: str, dtype: str, raw: dict):
        digests = {role: sha256_bytes(data) for role, data in raw.items()}
        digest = digests[self.first]
        for role, other in digests.items():
            if other != digest:
                ck = self.cks[role]
                why = ("the inputs do not share a vision tower" if key.startswith(self.frozen)
                       else f"{dtype} tensors cannot be interpolated and must be equal")
                raise InputError(f"{ck.dir / ck.shard_of[key]}: {key}: sha256 {other[:12]} != "
                                 f"{digest[:12]} in {self.first} ({why})")
        self.frozen_digest.update(f"{key}\0{digest}\n".encode())
        self.copied += 1
        return raw[self.first]


def merge_dirs(dirs: dict[str, Path], out: Path, combine: Callable,
               frozen_prefixes: list[str] | None = None) -> dict:
    """Merge checkpoint directories (role -> dir, first = layout/config source) into ``out``."""
    frozen = DEFAULT_FROZEN if frozen_prefixes is None else frozen_prefixes
    check_configs(dirs)
    cks = {role: Checkpoint(d) for role, d in dirs.items()}
    check_same_layout(cks)
    first = next(iter(cks.values()))
    shards = first.keys_by_shard()
    produce = _Producer(cks, combine, frozen)
    written = 0
    for shard, keys in shards.items():
        written += write_safetensors(out / shard, [(k, first.entry(k)) for k in keys], produce)
    if first.sharded:
        index = {"metadata": {"total_size": sum(nbytes(first.entry(k)) for k in first.shard_of)},
                 "weight_map": dict(sorted(first.shard_of.items()))}
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    copied_files = _copy_aux(first.dir, out)
    return {"tensors_merged": produce.merged, "tensors_copied": produce.copied,
            "tensors_total": len(first.shard_of), "bytes_written": written,
            "shards": len(first.files), "frozen_sha256": produce.frozen_digest.hexdigest(),
            "files_copied": copied_files}


def _copy_aux(src: Path, out: Path) -> list[str]:
    names = sorted({p.name for pattern in AUX_PATTERNS for p in src.glob(pattern) if p.is_file()})
    for name in names:
        shutil.copyfile(src / name, out / name)
    return names


def _ordered_inputs(ctx, method_name: str) -> dict[str, Path]:
    if method_name == "linear":
        roles = ["a", "b"]
        extra = sorted(set(ctx.inputs) - set(roles))
        if extra:
            raise InputError(f"stage {ctx.name!r}: inputs: unexpected role(s) {extra}; linear takes a, b")
    else:
        roles = ["base", *model_roles(ctx.inputs)]
    return {role: ctx.input(role) for role in roles}


def run_merge(ctx, method_name: str) -> None:
    if method_name not in METHODS:
        raise InputError(f"params: method: {method_name!r}; known: {', '.join(METHODS)}")
    dirs = _ordered_inputs(ctx, method_name)
    record, combine = importlib.import_module(METHODS[method_name]).method(ctx)
    frozen = _frozen_prefixes(ctx.param("frozen_prefixes", DEFAULT_FROZEN))
    metrics = merge_dirs(dirs, ctx.out, combine, frozen)
    for name, value in record.items():
        ctx.protocol(name if name == "method" else f"merge_{name}", value)
    ctx.protocol("merge_frozen_prefixes", frozen)
    ctx.protocol("merge_compute_dtype", "float32, stored in the input dtype")
    ctx.protocol("merge_inputs", list(dirs))
    ctx.write_metrics({**metrics, **{f"param_{k}": v for k, v in record.items()}})


def linear_stage(ctx) -> None:
    """``merge/linear``: inputs ``a``, ``b``; param ``weight`` (0 = a, 1 = b)."""
    run_merge(ctx, "linear")


def task_arithmetic_stage(ctx) -> None:
    """``merge/task_arithmetic``: inputs ``base``, ``m1``..``mN``; param ``weights``."""
    run_merge(ctx, "task_arithmetic")


def ties_stage(ctx) -> None:
    """``merge/ties``: inputs ``base``, ``m1``..``mN``; params ``density``, ``weights``, ``scale``."""
    run_merge(ctx, "ties")


def dare_stage(ctx) -> None:
    """``merge/dare``: inputs ``base``, ``m1``..``mN``; params ``drop``, ``weights``; seed = ctx.seed."""
    run_merge(ctx, "dare")


def merge_stage(ctx) -> None:
    """``merge/<any>`` with param ``method`` (default linear): one kind for a sweep of methods."""
    run_merge(ctx, ctx.param("method", "linear"))
