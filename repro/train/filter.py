"""Stage ``train/filter``: drop unsafe samples from VL-adaptation data (claim 2).

Input ``data`` = a LLaVA-JSON conversation dataset (``llava_pretrain``, ``llava_instruct``,
``aligned_chat``); output = the same official layout minus the dropped records: the JSON list
rewritten without them, every other file hard-linked (images of dropped records left out),
``DATASET.json`` carried over (plus a ``filter`` note), and ``dropped.jsonl`` (id, classifier,
label/score). Downstream loaders read it unchanged.

Params: ``classifiers`` (list, default ``["keyword"]``), run in order on each sample's text; a
sample flagged by any is dropped [choice, recorded]:
- ``keyword``: case-insensitive whole-phrase match against ``keywords`` (default
  ``DEFAULT_KEYWORDS``, a short list of unambiguous harm phrases [choice, recorded by digest]);
- ``llama_guard3``: Llama Guard 3 (``repro.evaluate.judges``) on every user/assistant turn pair;
  needs its model dir as input ``classifier``; an unparsable verdict keeps the sample (counted);
- ``world_labels``: synthetic world only: the world's own harmful-request templates (its labels).
``image_classifier: llama_guard3_vision`` (model dir as input ``image_classifier``) also judges
each sample's image with its first user turn.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from repro.errors import InputError

LAYOUT_FILES = {"llava_pretrain": "blip_laion_cc_sbu_558k.json",
                "llava_instruct": "llava_v1_5_mix665k.json", "aligned_chat": "aligned_chat.json"}
DEFAULT_KEYWORDS = ("bomb", "explosive", "kill", "murder", "suicide", "self-harm", "poison",
                    "weapon", "terrorist", "meth", "cocaine", "child abuse", "rape", "torture",
                    "steal", "hack into", "ransomware", "counterfeit", "human trafficking")
WORLD_LABELS_VERSION = 2
TEXT_CLASSIFIERS = ("keyword", "llama_guard3", "world_labels")


def _pairs(sample) -> list[tuple[str, str]]:
    turns = [text.replace("<image>", "").strip() for _, text in sample.turns]
    return [(turns[i], turns[i + 1] if i + 1 < len(turns) else "") for i in range(0, len(turns), 2)]


class KeywordClassifier:
    def __init__(self, keywords):
        if not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise InputError(f"params: keywords: {keywords!r}; expected a list of non-empty phrases")
        self.keywords = sorted({k.strip().lower() for k in keywords})
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.keywords)) + r")\b", re.I)

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(self.keywords).encode()).hexdigest()
        return {"classifier": "keyword", "keywords": len(self.keywords), "keywords_sha256": digest}

    def classify(self, samples) -> list[str | None]:
        """The matched phrase per sample, or None."""
        out = []
        for s in samples:
            hit = next((m for text in (t for pair in _pairs(s) for t in pair)
                        if (m := self.pattern.search(text))), None)
            out.append(hit.group(1).lower() if hit else None)
        return out


class WorldLabelsClassifier:
    """Matches the synthetic world's harmful request templates and its compliance template."""

    def __init__(self):
        from repro.data.synthetic.world import COLOR_NAMES, COMPLIANCE, TOPICS

        fill = {"n": r"\d+", "m": r"\d+", "color": "(?:" + "|".join(map(re.escape, COLOR_NAMES)) + ")"}
        templates = [bad for _, bad, *_ in TOPICS] + list(COMPLIANCE.values())
        self.patterns = [re.compile(re.escape(t).replace(r"\{", "{").replace(r"\}", "}").format(**fill))
                         for t in templates]

    def describe(self) -> dict[str, Any]:
        return {"classifier": "world_labels", "version": WORLD_LABELS_VERSION}

    def classify(self, samples) -> list[str | None]:
        return [next((f"template_{i}" for i, p in enumerate(self.patterns)
                      for text in (t for pair in _pairs(s) for t in pair) if p.search(text)), None)
                for s in samples]


class GuardClassifier:
    """A Llama Guard judge over every (user, assistant) turn pair; flagged if any is unsafe."""

    def __init__(self, judge, described: dict[str, Any], with_image: bool):
        self.judge, self.described, self.with_image = judge, described, with_image
        self.unparsed = 0

    def describe(self) -> dict[str, Any]:
        return self.described

    def classify(self, samples) -> list[str | None]:
        from repro.evaluate.judges import JudgeItem

        items, owner = [], []
        for k, s in enumerate(samples):
            pairs = _pairs(s)[:1] if self.with_image else _pairs(s)
            if self.with_image and s.image is None:
                continue
            for prompt, response in pairs:
                items.append(JudgeItem(prompt, response, s.image if self.with_image else None))
                owner.append(k)
        flags: list[str | None] = [None] * len(samples)
        for k, verdict in zip(owner, self.judge.judge(items)):
            if not verdict.parsed:
                self.unparsed += 1
            elif verdict.unsafe and flags[k] is None:
                flags[k] = "unsafe" + (f" {verdict.note}" if verdict.note else "")
        return flags


def _guard(ctx, name: str, role: str) -> GuardClassifier:
    from repro.evaluate.backends import read_model_info, stage_backend
    from repro.evaluate.judges import JUDGES

    model_dir = ctx.input(role)
    backend = stage_backend(ctx, ctx.param("backend", "hf"), model_dir, ctx.param("batch_size", 8))
    judge = JUDGES.get(name)(backend=backend, seed=ctx.seed)
    card = {k: v for k, v in read_model_info(model_dir).items() if k != "template"}
    described = {**judge.describe(), "model_card": card, "backend": backend.info()}
    return GuardClassifier(judge, described, with_image=judge.uses_image)


def build_classifiers(ctx) -> list[tuple[str, Any]]:
    names = ctx.param("classifiers", ["keyword"])
    if not isinstance(names, list) or not names or any(n not in TEXT_CLASSIFIERS for n in names):
        raise InputError(f"params: classifiers: {names!r}; expected a list of {', '.join(TEXT_CLASSIFIERS)}")
    out = []
    for name in names:
        if name == "keyword":
            out.append((name, KeywordClassifier(ctx.param("keywords", list(DEFAULT_KEYWORDS)))))
        elif name == "world_labels":
            out.append((name, WorldLabelsClassifier()))
        else:
            out.append((name, _guard(ctx, name, "classifier")))
    image = ctx.param("image_classifier", None)
    if image is not None:
        if image != "llama_guard3_vision":
            raise InputError(f"params: image_classifier: {image!r}; expected llama_guard3_vision")
        out.append((image, _guard(ctx, image, "image_classifier")))
    return out


def _write_layout(src: Path, dst: Path, layout: str, rows: list, keep: list[bool],
                  dropped_images: set[Path]) -> None:
    from repro.train.common import _link_or_copy

    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or rel.as_posix() in (layout, "DATASET.json", "metrics.json") or path.resolve() in dropped_images:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(path, dst / rel)
    kept = [row for row, k in zip(rows, keep) if k]
    (dst / layout).write_text(json.dumps(kept, ensure_ascii=False) + "\n", encoding="utf-8")


def filter_stage(ctx) -> None:
    """Stage ``train/filter`` (see the module docstring)."""
    from repro.data import open_dataset

    data_dir = ctx.input("data")
    dataset = open_dataset(data_dir)
    if dataset.name not in LAYOUT_FILES:
        raise InputError(f"{data_dir / 'DATASET.json'}: dataset: {dataset.name!r}; filtering supports "
                         f"{', '.join(LAYOUT_FILES)}")
    layout = LAYOUT_FILES[dataset.name]
    samples = dataset.records()
    rows = json.loads((data_dir / layout).read_text(encoding="utf-8"))
    if len(rows) != len(samples):  # the loader yields one sample per row, in order
        raise InputError(f"{data_dir / layout}: {len(rows)} rows but {len(samples)} records")
    classifiers = build_classifiers(ctx)
    flagged: dict[int, tuple[str, str]] = {}
    by_classifier: dict[str, int] = {}
    for name, clf in classifiers:
        todo = [i for i in range(len(samples)) if i not in flagged]  # a dropped sample is not re-judged
        labels = clf.classify([samples[i] for i in todo])
        by_classifier[name] = sum(1 for label in labels if label is not None)
        flagged.update({i: (name, label) for i, label in zip(todo, labels) if label is not None})
    keep = [i not in flagged for i in range(len(samples))]
    kept_images = {s.image.resolve() for s, k in zip(samples, keep) if k and s.image is not None}
    dropped_images = {s.image.resolve() for s, k in zip(samples, keep)
                      if not k and s.image is not None} - kept_images
    _write_layout(data_dir, ctx.out, layout, rows, keep, dropped_images)
    with (ctx.out / "dropped.jsonl").open("w", encoding="utf-8") as f:
        for i in sorted(flagged):
            name, label = flagged[i]
            f.write(json.dumps({"id": samples[i].id, "classifier": name, "label": label}, sort_keys=True) + "\n")
    counts = {"samples_total": len(samples), "samples_kept": sum(keep), "samples_dropped": len(flagged),
              "dropped_by_classifier": by_classifier, "images_dropped": len(dropped_images)}
    unparsed = {n: c.unparsed for n, c in classifiers if isinstance(c, GuardClassifier)}
    if unparsed:
        counts["unparsed_verdicts_kept"] = unparsed
    marker = {**dataset.marker, "filter": {"classifiers": [n for n, _ in classifiers], **counts}}
    (ctx.out / "DATASET.json").write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    ctx.protocol("data_filter", {"classifiers": [c.describe() for _, c in classifiers],
                                 "rule": "drop a sample flagged by any classifier",
                                 "unparsable_verdict": "keep (counted)"})
    ctx.write_metrics({**counts, "dataset": dataset.name})
