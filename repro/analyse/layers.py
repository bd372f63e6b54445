"""Stage ``analyse/layers`` (claim 5): which decoder layers VL adaptation changes.

Choices (recorded in the protocol): (a) per decoder layer, the relative weight change
``||W_lvlm - W_llm||_F / ||W_llm||_F`` over all of the layer's tensors (also split into attention,
MLP and norm tensors); (b) per layer, how well the last-token hidden state (the position that
predicts the answer's first token) separates harmful from harmless prompts: cosine distance
between the two class means, and leave-one-out nearest-centroid accuracy on features z-scored
per dimension (a few huge activation dimensions would otherwise decide every distance).
Inputs: ``llm`` (causal LM), ``lvlm`` and/or ``ckpt_*`` (LLaVA; with ``checkpoints: true`` the
``checkpoints/step-N`` kept by training are walked too), ``data`` (SafetyPrompt records with
``harmful`` True/False).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from repro.plots import line_plot
from repro.analyse.separation import separation_rows
from repro.errors import InputError
from repro.models.stream import Checkpoint

LM_PREFIXES = ("language_model.model.", "model.language_model.", "model.")
HEAD_PREFIXES = ("language_model.lm_head.", "lm_head.")
LAYER = re.compile(r"^layers\.(\d+)\.")
STEP_DIR = re.compile(r"^step-(\d+)$")
CKPT_ROLE = re.compile(r"^ckpt_(.+)$")
GROUPS = ("attn", "mlp", "norm")


def canonical(name: str) -> str | None:
    """A language-model tensor/parameter name without its wrapper prefix (``layers.0.mlp...``,
    ``embed_tokens.weight``, ``lm_head.weight``); None for vision tower and projector."""
    if "vision_tower" in name or "multi_modal_projector" in name:
        return None
    for prefix in HEAD_PREFIXES:
        if name.startswith(prefix):
            return "lm_head." + name[len(prefix):]
    for prefix in LM_PREFIXES:  # longest first: "model." alone is the causal LM's wrapper
        if name.startswith(prefix):
            return name[len(prefix):]
    return None


def lm_keys(ck: Checkpoint) -> dict[str, str]:
    """Canonical language-model names -> the checkpoint's keys, for a causal LM and a LLaVA alike."""
    out = {}
    for key in ck.shard_of:
        name = canonical(key)
        if name is not None:
            out[name] = key
    if not any(LAYER.match(k) for k in out):
        raise InputError(f"{ck.dir}: no decoder layers found (keys like model.layers.N.* or "
                         "language_model.model.layers.N.*)")
    return out


def layer_of(name: str) -> int | None:
    m = LAYER.match(name)
    return int(m.group(1)) if m else None


def group_of(name: str) -> str:
    return "attn" if ".self_attn." in name else "mlp" if ".mlp." in name else "norm"


def common_rows(a, b, name: str, where: Path):
    """Decoder tensors must match; embeddings may differ only in vocabulary rows (LLaVA pads)."""
    if a.shape == b.shape:
        return a, b
    if layer_of(name) is None and a.shape[1:] == b.shape[1:]:
        n = min(a.shape[0], b.shape[0])  # the rows both vocabularies share
        return a[:n], b[:n]
    raise InputError(f"{where}: {name}: shape {list(b.shape)} != {list(a.shape)} of the LLM")


def model_targets(ctx, walk_checkpoints: bool) -> list[tuple[str, int | None, Path]]:
    """(label, step, dir) of every LVLM to compare with the LLM, in a stable order."""
    roles = [r for r in ("lvlm",) if r in ctx.inputs]
    ckpt = sorted((r for r in ctx.inputs if CKPT_ROLE.match(r)),
                  key=lambda r: (0, int(r[5:])) if r[5:].isdigit() else (1, r))
    targets = []
    for role in roles + ckpt:
        root = ctx.input(role)
        steps = []
        if walk_checkpoints and (root / "checkpoints").is_dir():
            steps = sorted((int(m.group(1)), p) for p in (root / "checkpoints").iterdir()
                           if (m := STEP_DIR.match(p.name)) and p.is_dir())
        targets += [(f"{role}@step-{n}", n, p) for n, p in steps]
        if (root / "config.json").is_file():
            targets.append((role, None, root))
    if not targets:
        raise InputError(f"stage {ctx.name!r}: inputs: no LVLM given (roles 'lvlm' or 'ckpt_*'; "
                         f"got {sorted(ctx.inputs)})")
    return targets


def weight_change(llm_dir: Path, model_dir: Path) -> tuple[list[dict], dict]:
    """Per-layer relative Frobenius change of ``model_dir``'s language model against the LLM."""
    ref, other = Checkpoint(llm_dir), Checkpoint(model_dir)
    ref_keys, other_keys = lm_keys(ref), lm_keys(other)
    missing = sorted(set(ref_keys) - set(other_keys))
    if missing:
        raise InputError(f"{model_dir}: language-model tensor {missing[0]!r} missing (in the LLM)")
    sums: dict = {}  # (layer or name, group) -> [sum sq diff, sum sq ref]
    for name in sorted(ref_keys):
        a = ref.read_tensor(ref_keys[name]).float()
        b = other.read_tensor(other_keys[name]).float()
        a, b = common_rows(a, b, name, model_dir)
        layer = layer_of(name)
        slot = (layer, group_of(name)) if layer is not None else (name.rsplit(".", 1)[0], "")
        acc = sums.setdefault(slot, [0.0, 0.0])
        acc[0] += float((b - a).double().pow(2).sum())
        acc[1] += float(a.double().pow(2).sum())
    layers = sorted({s[0] for s in sums if isinstance(s[0], int)})
    rows = []
    for layer in layers:
        parts = {g: sums.get((layer, g), [0.0, 0.0]) for g in GROUPS}
        row = {"layer": layer, "rel_change": _ratio(sum(p[0] for p in parts.values()),
                                                    sum(p[1] for p in parts.values()))}
        row.update({f"{g}_rel_change": _ratio(*parts[g]) for g in GROUPS})
        rows.append(row)
    other_parts = {s[0]: _ratio(*v) for s, v in sums.items() if not isinstance(s[0], int)}
    return rows, other_parts


def _ratio(num: float, den: float) -> float:
    return (num ** 0.5) / (den ** 0.5) if den > 0 else 0.0


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(rows[0])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)
                             for k, v in row.items()})


def layers_stage(ctx) -> None:
    """Stage ``analyse/layers``; see the module docstring."""
    walk = bool(ctx.param("checkpoints", False))
    llm_dir = ctx.input("llm")
    targets = model_targets(ctx, walk)
    change_rows, other = [], {}
    for label, step, path in targets:
        rows, other[label] = weight_change(llm_dir, path)
        change_rows += [{"model": label, "step": step, **r} for r in rows]
    write_csv(ctx.out / "layers.csv", change_rows)
    line_plot({}, ctx.out / "layers.png", title="", xlabel="decoder layer", ylabel="",
              panels={"relative weight change vs LLM": _series(change_rows, "rel_change")})
    metrics = {"layers": len({r["layer"] for r in change_rows}),
               "models": [t[0] for t in targets],
               "rel_change_mean": _mean_by_model(change_rows, "rel_change"),
               "most_changed_layer": _argmax_by_model(change_rows, "rel_change"),
               "non_layer_rel_change": other}
    if ctx.param("separation", True):
        sep_rows, info = separation_rows(ctx, [("llm", None, llm_dir), *targets])
        write_csv(ctx.out / "separation.csv", sep_rows)
        line_plot({}, ctx.out / "separation.png", title="", xlabel="decoder layer (output of)",
                  ylabel="", panels={"leave-one-out centroid accuracy": _series(sep_rows, "loo_accuracy"),
                                     "cosine distance of class means": _series(sep_rows, "cos_distance")})
        metrics["separation"] = {"loo_accuracy_mean": _mean_by_model(sep_rows, "loo_accuracy"),
                                 "cos_distance_mean": _mean_by_model(sep_rows, "cos_distance"), **info}
    ctx.protocol("layer_weight_change", "||W_lvlm - W_llm||_F / ||W_llm||_F per decoder layer "
                 "(all its tensors; attn/mlp/norm split); embeddings compared on shared vocab rows")
    ctx.write_metrics(metrics)


def _series(rows: list[dict], field: str) -> dict:
    out: dict = {}
    for r in rows:
        xs, ys = out.setdefault(r["model"], ([], []))
        xs.append(r["layer"])
        ys.append(r[field])
    return out


def _mean_by_model(rows: list[dict], field: str) -> dict:
    return {m: sum(ys) / len(ys) for m, (_, ys) in _series(rows, field).items()}


def _argmax_by_model(rows: list[dict], field: str) -> dict:
    return {m: xs[max(range(len(ys)), key=ys.__getitem__)] for m, (xs, ys) in _series(rows, field).items()}
