"""Stage ``analyse/objectives`` (claim 6): do VL adaptation and safety tuning pull apart?

Evidence (choices, recorded): per decoder layer, the cosine similarity between the VL-adaptation
task vector ``vl - base`` and the safety-tuning task vector ``safety - safety_base`` (``safety_base``
defaults to ``base``), over the language model only (vision tower and projector are not shared by
a text-only model); embeddings are compared on the vocabulary rows all models share. Optionally
(``gradients: true``) the cosine between the gradients of the two training losses (assistant-token
cross-entropy on a seeded sample of ``vl_data`` and of ``safety_data``), taken at one model
(role ``grad_model``, default ``vl``), per layer. Inputs: ``base``, ``vl``, ``safety``
(+ ``safety_base``, ``grad_model``, ``vl_data``, ``safety_data``).
"""

from __future__ import annotations

import random
from pathlib import Path

from repro.analyse.layers import canonical, common_rows, layer_of, lm_keys, write_csv
from repro.plots import line_plot
from repro.analyse.separation import load_model
from repro.data import load_conversations
from repro.errors import InputError
from repro.models.card import read_model_card
from repro.models.collate import ConversationCollator
from repro.models.stream import Checkpoint
from repro.models.tokenize import image_tokens_of, tokenize_samples

ALL = "all"


def _slot(name: str):
    layer = layer_of(name)
    return layer if layer is not None else name.rsplit(".", 1)[0]


def _add(acc: dict, slot, dot: float, n1: float, n2: float) -> None:
    cur = acc.setdefault(slot, [0.0, 0.0, 0.0])
    cur[0] += dot
    cur[1] += n1
    cur[2] += n2


def _cosine(dot: float, n1: float, n2: float) -> float | None:
    return dot / (n1 ** 0.5 * n2 ** 0.5) if n1 > 0 and n2 > 0 else None  # undefined for a zero vector


def task_vector_cosines(base: Path, vl: Path, safety: Path, safety_base: Path | None = None) -> dict:
    """slot (layer index, non-layer tensor name, or "all") -> [dot, |vl delta|^2, |safety delta|^2]."""
    dirs = {"base": base, "vl": vl, "safety": safety, "safety_base": safety_base or base}
    cks = {role: Checkpoint(d) for role, d in dirs.items()}
    keys = {role: lm_keys(ck) for role, ck in cks.items()}
    acc: dict = {}
    for name in sorted(keys["base"]):
        for role in ("vl", "safety", "safety_base"):
            if name not in keys[role]:
                raise InputError(f"{dirs[role]}: language-model tensor {name!r} missing (in base)")
        t = {role: cks[role].read_tensor(keys[role][name]).double() for role in cks}
        rows = min(v.shape[0] for v in t.values()) if t["base"].dim() else None
        for role, v in t.items():  # shape checks against base; vocab rows cut to the shared ones
            common_rows(t["base"], v, name, dirs[role])
            if rows is not None:
                t[role] = v[:rows]
        d_vl, d_s = t["vl"] - t["base"], t["safety"] - t["safety_base"]
        parts = (float((d_vl * d_s).sum()), float(d_vl.pow(2).sum()), float(d_s.pow(2).sum()))
        _add(acc, _slot(name), *parts)
        _add(acc, ALL, *parts)
    return acc


def _sample(records: list, n: int, seed: int) -> list:
    ordered = sorted(records, key=lambda r: r.id)
    return sorted(random.Random(seed).sample(ordered, min(n, len(ordered))), key=lambda r: r.id)


def _batches(ctx, model_dir: Path, data_role: str, n: int):
    """Collated batches of a seeded sample of ``data_role``'s conversations, for ``model_dir``."""
    from transformers import AutoTokenizer


    card = read_model_card(model_dir)
    samples = load_conversations(ctx.input(data_role), ctx.param(f"{data_role}_split", None))
    if card["architecture"] == "llava":
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(model_dir)
        tokenizer, image_tokens, images = processor.tokenizer, image_tokens_of(processor), processor.image_processor
    else:  # a text-only model learns from the text-only conversations alone
        tokenizer, image_tokens, images = AutoTokenizer.from_pretrained(model_dir), None, None
        samples = [s for s in samples if s.image is None]
    encoded, _ = tokenize_samples(_sample(samples, n, ctx.seed), tokenizer, card["template"],
                                  int(ctx.param("max_length", 2048)), image_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    collate = ConversationCollator(pad, images)
    size = int(ctx.param("batch_size", 4))
    return [collate(encoded[i:i + size]) for i in range(0, len(encoded), size)], len(encoded)


def _loss_gradients(model, batches) -> dict:
    """name -> gradient of the mean per-batch loss, for the language model's parameters."""
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        (model(**batch).loss / len(batches)).backward()
    grads = {n: p.grad.detach().float().cpu().clone() for n, p in model.named_parameters()
             if p.grad is not None and "vision_tower" not in n and "multi_modal_projector" not in n}
    model.zero_grad(set_to_none=True)
    return grads


def gradient_cosines(ctx) -> tuple[dict, dict]:
    model_dir = ctx.input("grad_model") if "grad_model" in ctx.inputs else ctx.input("vl")
    n = int(ctx.param("grad_samples", 16))
    model, _, _ = load_model(model_dir, ctx.param("dtype", "float32"), ctx.param("device", None))
    model.train()  # dropout is 0 in Llama; train() only so no module skips its gradient path
    grads = {}
    for role in ("vl_data", "safety_data"):
        batches, used = _batches(ctx, model_dir, role, n)
        grads[role] = (_loss_gradients(model, batches), used)
    acc: dict = {}
    g1, g2 = grads["vl_data"][0], grads["safety_data"][0]
    for name in sorted(set(g1) & set(g2)):
        a, b = g1[name].double(), g2[name].double()
        parts = (float((a * b).sum()), float(a.pow(2).sum()), float(b.pow(2).sum()))
        slot = _slot(canonical(name) or name)
        _add(acc, slot, *parts)
        _add(acc, ALL, *parts)
    return acc, {"grad_samples_vl": grads["vl_data"][1], "grad_samples_safety": grads["safety_data"][1]}


def objectives_stage(ctx) -> None:
    """Stage ``analyse/objectives``; see the module docstring."""
    safety_base = ctx.input("safety_base") if "safety_base" in ctx.inputs else None
    acc = task_vector_cosines(ctx.input("base"), ctx.input("vl"), ctx.input("safety"), safety_base)
    grad_acc, grad_info = gradient_cosines(ctx) if ctx.param("gradients", False) else ({}, {})
    layers = sorted(s for s in acc if isinstance(s, int))
    others = sorted(s for s in acc if not isinstance(s, int) and s != ALL)
    rows = []
    for slot in [*layers, *others, ALL]:
        dot, n1, n2 = acc[slot]
        row = {"part": "layer" if isinstance(slot, int) else slot,
               "layer": slot if isinstance(slot, int) else None,
               "weight_cosine": _cosine(dot, n1, n2), "vl_delta_norm": n1 ** 0.5,
               "safety_delta_norm": n2 ** 0.5}
        if ctx.param("gradients", False):
            row["grad_cosine"] = _cosine(*grad_acc[slot]) if slot in grad_acc else None
        rows.append(row)
    write_csv(ctx.out / "objectives.csv", rows)
    layer_rows = [r for r in rows if r["part"] == "layer"]
    panels = {"task-vector cosine (vl vs safety)": {"weights": (
        [r["layer"] for r in layer_rows], [r["weight_cosine"] or 0.0 for r in layer_rows])}}
    if ctx.param("gradients", False):
        panels["gradient cosine (vl loss vs safety loss)"] = {"gradients": (
            [r["layer"] for r in layer_rows], [r["grad_cosine"] or 0.0 for r in layer_rows])}
    line_plot({}, ctx.out / "objectives.png", title="", xlabel="decoder layer", ylabel="cosine",
              panels=panels)
    ctx.protocol("objective_divergence", "cosine of task vectors (vl - base) and (safety - "
                 f"{'safety_base' if safety_base else 'base'}) per decoder layer, language model only")
    if ctx.param("gradients", False):
        ctx.protocol("gradient_cosine", {"model": "grad_model" if "grad_model" in ctx.inputs else "vl",
                                         "loss": "assistant-token cross-entropy, mean over batches",
                                         "samples": int(ctx.param("grad_samples", 16)), "seed": ctx.seed})
    cos_all = rows[-1]["weight_cosine"]
    ctx.write_metrics({"layers": len(layer_rows), "weight_cosine_all": cos_all,
                       "weight_cosine_by_layer": [r["weight_cosine"] for r in layer_rows],
                       "grad_cosine_all": rows[-1].get("grad_cosine"), **grad_info})
