"""Stage ``models/pretrained_clip``: the tiny profile's CLIP, pretrained contrastively on the synthetic
world's image–text pairs, as the paper's ``openai/clip-vit-large-patch14-336`` was on web pairs
before LLaVA froze it.

transformers' own ``CLIPModel`` and its contrastive loss (``return_loss=True``), trained by
``Trainer``; the text side uses the kit's byte-level BPE with an end-of-text token whose position
CLIP pools (``eos_token_id``), as CLIP's own tokenizer ends every caption with ``<|endoftext|>``.
The output is a full CLIP checkpoint (model, image processor, tokenizer); ``models/assemble_llava``
takes its vision tower, as it takes the real one's.

What it learned is measured on the features LLaVA reads (hidden layer ``-2``, CLS dropped): a
linear probe (multinomial logistic regression, L-BFGS, as in the CLIP paper's linear-probe
protocol) per attribute of the world's labels, trained on one half of the ``probe`` dataset's
pictures and scored on the other half, none of them seen in pretraining. Results go into
``metrics.json`` and ``probe.png`` (accuracy per layer and attribute).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from repro.data import open_dataset
from repro.errors import InputError
from repro.models.card import write_model_card
from repro.models.images import open_image, prepare_image
from repro.models.tokenizer import train_tokenizer
from repro.plots import line_plot
from repro.train.common import check_finite, quiet_libraries, quiet_trainer

END_OF_TEXT = "<|endoftext|>"
PROBE_ATTRIBUTES = ("color", "shape", "crossed")
PROBE_LAYER = -2  # repro.models.llava.VISION_FEATURE_LAYER: the layer LLaVA-1.5 reads
# the training params besides vision_config; declared with their defaults in repro/stages/models.py
PARAMS = ("text_hidden_size", "text_layers", "text_heads", "vocab_size", "max_text_length",
          "projection_dim", "learning_rate", "max_steps", "batch_size", "warmup_ratio", "weight_decay")


def _tokenizer(captions: list[str], vocab_size: int):

    tokenizer = train_tokenizer(captions, vocab_size)
    tokenizer.add_special_tokens({"additional_special_tokens": [END_OF_TEXT]})
    return tokenizer


def _encode(tokenizer, captions: list[str], max_length: int):
    """Token ids with the end-of-text token appended (CLIP pools there), right-padded."""
    import torch

    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    rows = [tokenizer(c, add_special_tokens=True)["input_ids"][: max_length - 1] + [eot] for c in captions]
    ids = torch.full((len(rows), max_length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask, eot


def _pixels(processor, paths: list[Path]):

    images = [prepare_image(open_image(p), processor) for p in paths]
    return processor(images=images, return_tensors="pt")["pixel_values"]


def _config(vision: dict, p: dict, vocab: int, eot: int, pad: int):
    from transformers import CLIPConfig, CLIPVisionConfig

    unknown = sorted(set(vision) - set(CLIPVisionConfig().to_dict()))
    if unknown:
        raise InputError(f"models/pretrained_clip: vision_config: unknown key(s) {unknown}")
    text = {"vocab_size": vocab, "hidden_size": p["text_hidden_size"],
            "intermediate_size": 2 * p["text_hidden_size"], "num_hidden_layers": p["text_layers"],
            "num_attention_heads": p["text_heads"], "max_position_embeddings": p["max_text_length"],
            "eos_token_id": eot, "pad_token_id": pad, "bos_token_id": 1}
    return CLIPConfig(text_config=text, vision_config=dict(vision), projection_dim=p["projection_dim"])


class _Pairs:
    """Map-style dataset of (ids, mask, pixels) rows; the collator stacks them for CLIPModel."""

    def __init__(self, ids, mask, pixels):
        self.ids, self.mask, self.pixels = ids, mask, pixels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "pixel_values": self.pixels[i]}


def _collate(rows: list[dict]) -> dict:
    import torch

    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    return {**batch, "return_loss": True}


def pretrain(model, data: _Pairs, p: dict, seed: int, work: Path) -> dict[str, Any]:
    """Contrastive pretraining with transformers' Trainer; returns the loss record."""
    from transformers import Trainer, TrainingArguments


    args = TrainingArguments(
        output_dir=str(work), max_steps=p["max_steps"], per_device_train_batch_size=p["batch_size"],
        learning_rate=p["learning_rate"], warmup_steps=p["warmup_ratio"], lr_scheduler_type="cosine",
        weight_decay=p["weight_decay"], seed=seed, data_seed=seed, report_to=[], save_strategy="no",
        logging_steps=max(1, p["max_steps"] // 10), dataloader_drop_last=True,
        remove_unused_columns=False, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=_collate)
    quiet_trainer(trainer, 0)
    result = trainer.train()
    check_finite(trainer.state.log_history, model, args.learning_rate)
    losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
    return {"train_loss": result.training_loss, "loss_curve": losses, "steps": trainer.state.global_step}


def layer_features(vision_model, pixels):
    """Per hidden layer: mean over the patch tokens (CLS dropped, as LLaVA's "default")."""
    import torch

    with torch.no_grad():
        hidden = vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
    return [h[:, 1:, :].mean(1) for h in hidden]


def linear_probe(train_x, train_y, test_x, test_y, classes: int) -> float:
    """Held-out accuracy of multinomial logistic regression fitted with L-BFGS (standardised
    features, a small L2 penalty). A hand-written fit: scikit-learn is not a dependency and the
    fit is ten lines of torch."""
    import torch

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x, tx = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, train_y) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((tx @ weight + bias).argmax(1) == test_y).float().mean())


def probe(vision_model, processor, samples: list) -> dict[str, Any]:
    """Accuracy per attribute and hidden layer; first half of the shape pictures trains, the
    second half tests."""
    import torch

    shapes = [s for s in samples if s.meta.get("kind") == "shape"]
    if len(shapes) < 20:
        raise InputError(f"probe: {len(shapes)} shape pictures with labels; need at least 20")
    feats = layer_features(vision_model, _pixels(processor, [s.image for s in shapes]))
    half = len(shapes) // 2
    out: dict[str, Any] = {"train_images": half, "test_images": len(shapes) - half, "layers": {}}
    for attr in PROBE_ATTRIBUTES:
        names = sorted({str(s.meta[attr]) for s in shapes})
        y = torch.tensor([names.index(str(s.meta[attr])) for s in shapes])
        accs = [linear_probe(f[:half], y[:half], f[half:], y[half:], len(names)) for f in feats]
        out["layers"][attr] = accs
        out[attr] = accs[PROBE_LAYER]
        out[f"{attr}_chance"] = max(int((y[half:] == k).sum()) for k in range(len(names))) / (len(shapes) - half)
    return out


def build_tiny_clip(out_dir: Path, pairs: list, probe_samples: list, *, seed: int, vision: dict,
                    params: dict, work: Path) -> dict[str, Any]:
    """Pretrain a tiny CLIP on ``pairs`` (image, caption), probe it, save it in ``out_dir``;
    ``params`` holds every key of ``PARAMS``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    p = params
    for key in ("image_size", "patch_size"):
        if key not in vision:
            raise InputError(f"models/pretrained_clip: vision_config: {key}: missing")
    captions = [s.turns[-1][1] for s in pairs]
    tokenizer = _tokenizer(captions, p["vocab_size"])
    ids, mask, eot = _encode(tokenizer, captions, p["max_text_length"])
    side = vision["image_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    config = _config(vision, p, len(tokenizer), eot, tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    record = pretrain(model, _Pairs(ids, mask, _pixels(processor, [s.image for s in pairs])), p, seed, work)
    model.eval()
    probed = probe(model.vision_model, processor, probe_samples)
    config.name_or_path = ""
    model.save_pretrained(out_dir, safe_serialization=True)
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return {**record, "probe": probed, "pairs": len(pairs),
            "num_parameters": sum(t.numel() for t in model.parameters()),
            "vision_parameters": sum(t.numel() for t in model.vision_model.parameters())}


def probe_figure(probed: dict, out_png: Path) -> None:
    """Probe accuracy per hidden layer (0 = patch embeddings), one line per attribute."""

    series = {attr: (list(range(len(accs))), accs) for attr, accs in probed["layers"].items()}
    line_plot(series, out_png, title="Tiny CLIP: linear probe on patch features (CLS dropped)",
              xlabel="hidden layer (LLaVA reads the second-to-last)", ylabel="held-out accuracy")


def tiny_clip_stage(ctx) -> None:
    """Stage ``models/pretrained_clip``: inputs ``data`` (image–text pairs) and ``probe`` (labelled
    pictures never seen in pretraining); params ``vision_config`` and ``PARAMS``."""


    quiet_libraries()
    vision = ctx.param("vision_config")  # its keys and values: checked at load (repro/stages/)
    params = {k: ctx.param(k) for k in PARAMS}
    pairs = open_dataset(ctx.input("data")).records()
    probe_samples = open_dataset(ctx.input("probe")).records()
    ctx.seed_everything()
    with tempfile.TemporaryDirectory(prefix="repro-clip-") as work:
        info = build_tiny_clip(ctx.out, pairs, probe_samples, seed=ctx.seed, vision=vision,
                               params=params, work=Path(work))
    probe_figure(info["probe"], ctx.out / "probe.png")
    write_model_card(ctx.out, architecture="clip_vision")
    ctx.protocol("clip_pretraining", {"loss": "CLIPModel contrastive (return_loss=True)",
                                      "tokenizer": "byte-level BPE + <|endoftext|> (pooled)", **params})
    ctx.protocol("clip_probe", {"features": f"hidden layer {PROBE_LAYER}, patch tokens (CLS dropped), mean",
                                "classifier": "multinomial logistic regression, L-BFGS, L2 1e-3",
                                "split": "probe pictures: first half trains, second half tests"})
    ctx.write_metrics(info)
