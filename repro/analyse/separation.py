"""Hidden-state separation of harmful vs harmless prompts, per layer (part (b) of claim 5).

Each prompt is rendered with the model's own chat template (``repro_model.json``) as a
generation prompt, run text-only, and the hidden state of its last token is kept for every
decoder layer (``hidden_states[i + 1]`` = output of layer ``i``; transformers applies the final
norm to the last one). Batches are left-padded with explicit position ids, so padding changes
no prompt's states.
"""

from __future__ import annotations

import random
from pathlib import Path

from repro.data import open_dataset
from repro.errors import InputError
from repro.io import sha256_text
from repro.models.card import read_model_card
from repro.models.templates import prompt_text

FEATURES = ("last-token hidden state per decoder layer, chat-template generation prompt, "
            "text only; z-scored per dimension over all prompts for the centroid classifier")


def load_model(model_dir: Path, dtype: str | None = None, device: str | None = None):
    """(model, tokenizer, template) for a causal LM or a LLaVA checkpoint directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlavaForConditionalGeneration

    card = read_model_card(model_dir, expect=("causal_lm", "llava"))
    cls = LlavaForConditionalGeneration if card["architecture"] == "llava" else AutoModelForCausalLM
    model = cls.from_pretrained(model_dir, use_safetensors=True,
                                dtype=getattr(torch, dtype) if dtype else None)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model.to(device).eval(), tokenizer, card.get("template") or "llama2"


def last_token_states(model, tokenizer, texts: list[str], batch_size: int = 8):
    """numpy array [layers, prompts, hidden] (float32) of each prompt's last-token states."""
    import numpy as np
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(texts), batch_size):
        # the template writes <s> itself (as in evaluation): no second BOS from the tokenizer
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[start:start + batch_size]]
        width = max(len(ids) for ids in encoded)
        ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, seq in enumerate(encoded):  # left padding: every prompt ends at the last column
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        position_ids=positions.to(device), output_hidden_states=True)
        states = torch.stack([h[:, -1, :] for h in out.hidden_states[1:]])  # [layers, batch, hidden]
        chunks.append(states.float().cpu().numpy())
    return np.concatenate(chunks, axis=1)


def separation_scores(states, harmful) -> list[dict]:
    """Per layer: cosine distance of the class means and leave-one-out nearest-centroid accuracy."""
    import numpy as np

    y = np.asarray(harmful, dtype=bool)
    rows = []
    for layer, x in enumerate(states.astype(np.float64)):
        mu_h, mu_b = x[y].mean(0), x[~y].mean(0)
        denom = np.linalg.norm(mu_h) * np.linalg.norm(mu_b)
        cos = float(mu_h @ mu_b / denom) if denom > 0 else 1.0
        z = (x - x.mean(0)) / (x.std(0) + 1e-6)
        rows.append({"layer": layer, "cos_distance": 1.0 - cos, "loo_accuracy": _loo_accuracy(z, y),
                     "centroid_distance_ratio": _distance_ratio(z, y)})
    return rows


def _loo_accuracy(z, y) -> float:
    """Nearest centroid, each prompt's own class centroid recomputed without it."""
    import numpy as np

    correct = 0
    centroids = {c: z[y == c].mean(0) for c in (True, False)}
    counts = {c: int((y == c).sum()) for c in (True, False)}
    for xi, yi in zip(z, y):
        n = counts[bool(yi)]
        # removing x_i from its class: ||x_i - mu_loo|| = n/(n-1) ||x_i - mu||
        own = np.linalg.norm(xi - centroids[bool(yi)]) * n / (n - 1)
        other = np.linalg.norm(xi - centroids[not yi])
        correct += own < other
    return correct / len(y)


def _distance_ratio(z, y) -> float:
    """Distance between class centroids over the mean distance of a prompt to its own centroid."""
    import numpy as np

    mu_h, mu_b = z[y].mean(0), z[~y].mean(0)
    spread = np.concatenate([np.linalg.norm(z[y] - mu_h, axis=1), np.linalg.norm(z[~y] - mu_b, axis=1)])
    return float(np.linalg.norm(mu_h - mu_b) / spread.mean()) if spread.mean() > 0 else 0.0


def sample_prompts(data_dir: Path, per_class: int, seed: int, split=None) -> list:
    """Up to ``per_class`` harmful and as many harmless SafetyPrompts, a seeded balanced sample."""
    records = [r for r in open_dataset(data_dir).records(split)
               if getattr(r, "harmful", None) is not None and isinstance(getattr(r, "prompt", None), str)]
    harmful = sorted((r for r in records if r.harmful), key=lambda r: r.id)
    harmless = sorted((r for r in records if not r.harmful), key=lambda r: r.id)
    if len(harmful) < 2 or len(harmless) < 2:
        raise InputError(f"{data_dir}: records: need >= 2 harmful and >= 2 harmless prompts with a "
                         f"'harmful' label, got {len(harmful)} and {len(harmless)}")
    n = min(per_class, len(harmful), len(harmless))
    rng = random.Random(seed)
    chosen = rng.sample(harmful, n) + rng.sample(harmless, n)
    return sorted(chosen, key=lambda r: (not r.harmful, r.id))


def separation_rows(ctx, models: list[tuple[str, int | None, Path]]) -> tuple[list[dict], dict]:
    """Run every model on the sampled prompts; rows for separation.csv and what to record."""
    per_class = int(ctx.param("max_prompts_per_class", 64))
    prompts = sample_prompts(ctx.input("data"), per_class, ctx.seed, ctx.param("split", None))
    harmful = [bool(p.harmful) for p in prompts]
    rows = []
    for label, step, path in models:
        model, tokenizer, template = load_model(path, ctx.param("dtype", None), ctx.param("device", None))
        texts = [prompt_text(template, p.prompt) for p in prompts]
        states = last_token_states(model, tokenizer, texts, int(ctx.param("batch_size", 8)))
        rows += [{"model": label, "step": step, **r} for r in separation_scores(states, harmful)]
        del model
    ctx.protocol("separation_features", FEATURES)
    ctx.protocol("separation_classifier", "leave-one-out nearest centroid (Euclidean, z-scored)")
    ctx.protocol("separation_prompts", {"per_class": sum(harmful), "sample_seed": ctx.seed,
                                        "ids_sha256": _ids_digest(prompts)})
    return rows, {"n_harmful": sum(harmful), "n_harmless": len(harmful) - sum(harmful)}


def _ids_digest(prompts) -> str:
    return sha256_text("\n".join(p.id for p in prompts))
