"""Stage ``train/filter``: drop unsafe samples from VL-adaptation data (claim 2).

Input ``data`` = a LLaVA-JSON conversation dataset (``llava_pretrain`` for stage 1,
``llava_instruct`` for stage 2, ``aligned_chat``); output = the same official layout minus the
dropped records: the JSON list rewritten without them, every other file hard-linked (images of
dropped records left out), ``DATASET.json`` carried over (plus a ``filter`` note), and
``dropped.jsonl`` (id and every reason with its label). Downstream loaders read it unchanged.

The paper removed unsafe text and images from its VL data with safety classifiers [choice,
recorded]. Every sample is judged part by part, and goes when any part is flagged by any
classifier; counts per reason (``<classifier>:<part>``) land in the metrics:
- ``user``: every user turn, on its own, as a prompt (Llama Guard 3's 'User' role);
- ``response``: every assistant turn with its user turn (Llama Guard 3's 'Agent' role);
- ``image``: the sample's image with its first user turn (Llama Guard 3 Vision, 'User' role).
Params: ``classifiers`` (text; default ``["keyword"]``), ``judge_parts`` (the text parts they
judge; default ``["user", "response"]``) and ``image_classifier`` (default none):
- ``keyword``: case-insensitive whole-phrase match against ``keywords`` (default
  ``DEFAULT_KEYWORDS``, a short list of unambiguous harm phrases [choice, recorded by digest]);
- ``llama_guard3``: Llama Guard 3 (``repro.evaluate.judges``), model dir as input
  ``classifier``; an unparsable verdict keeps the part (counted);
- ``world_labels`` (synthetic world only): the world's own labels: its harmful-request, key-phrase
  and compliance templates in text; as ``image_classifier``, its danger mark (the black cross).
``image_classifier: llama_guard3_vision`` takes the model dir as input ``image_classifier``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.train.classifiers import (DEFAULT_KEYWORDS, IMAGE_CLASSIFIERS, TEXT_CLASSIFIERS,  # noqa: F401
                                     TEXT_PARTS, WorldLabelsClassifier, build_image_classifier,
                                     build_text_classifier)

LAYOUT_FILES = {"llava_pretrain": "blip_laion_cc_sbu_558k.json",
                "llava_instruct": "llava_v1_5_mix665k.json", "aligned_chat": "aligned_chat.json"}
DROP_RULE = "drop a sample when any part (user turn, response, image) is flagged by any classifier"


def build_classifiers(ctx) -> list[tuple[str, Any]]:
    names = ctx.param("classifiers", ["keyword"])
    if not isinstance(names, list) or not names or any(n not in TEXT_CLASSIFIERS for n in names):
        raise InputError(f"params: classifiers: {names!r}; expected a list of {', '.join(TEXT_CLASSIFIERS)}")
    parts = ctx.param("judge_parts", list(TEXT_PARTS))
    if not isinstance(parts, list) or not parts or any(p not in TEXT_PARTS for p in parts):
        raise InputError(f"params: judge_parts: {parts!r}; expected a non-empty list of {', '.join(TEXT_PARTS)}")
    out = [(name, build_text_classifier(ctx, name, tuple(parts))) for name in names]
    image = ctx.param("image_classifier", None)
    if image is not None:
        if image not in IMAGE_CLASSIFIERS:
            raise InputError(f"params: image_classifier: {image!r}; expected one of {', '.join(IMAGE_CLASSIFIERS)}")
        out.append((image, build_image_classifier(ctx, image)))
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


def judge_all(classifiers, samples) -> list[dict[str, str]]:
    """Per sample: ``{"<classifier>:<part>": label}`` for every flagged part (every part judged)."""
    flags: list[dict[str, str]] = [{} for _ in samples]
    for name, clf in classifiers:
        for k, found in enumerate(clf.classify(samples)):
            flags[k].update({f"{name}:{part}": label for part, label in sorted(found.items())})
    return flags


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
    flags = judge_all(classifiers, samples)
    keep = [not f for f in flags]
    kept_images = {s.image.resolve() for s, k in zip(samples, keep) if k and s.image is not None}
    dropped_images = {s.image.resolve() for s, k in zip(samples, keep)
                      if not k and s.image is not None} - kept_images
    _write_layout(data_dir, ctx.out, layout, rows, keep, dropped_images)
    with (ctx.out / "dropped.jsonl").open("w", encoding="utf-8") as f:
        for sample, found in zip(samples, flags):
            if found:
                f.write(json.dumps({"id": sample.id, "reasons": found}, sort_keys=True) + "\n")
    reasons: dict[str, int] = {}
    for found in flags:
        for reason in found:
            reasons[reason] = reasons.get(reason, 0) + 1
    counts = {"samples_total": len(samples), "samples_kept": sum(keep),
              "samples_dropped": len(samples) - sum(keep), "images_dropped": len(dropped_images),
              # a sample flagged for several reasons counts under each
              "dropped_by_reason": dict(sorted(reasons.items()))}
    unparsed = {n: c.unparsed for n, c in classifiers if getattr(c, "unparsed", None) is not None}
    if unparsed:
        counts["unparsed_verdicts_kept"] = unparsed
    marker = {**dataset.marker, "filter": {"classifiers": [n for n, _ in classifiers], **counts}}
    (ctx.out / "DATASET.json").write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    ctx.protocol("data_filter", {"classifiers": [c.describe() for _, c in classifiers],
                                 "rule": DROP_RULE, "unparsable_verdict": "keep the part (counted)"})
    ctx.write_metrics({**counts, "dataset": dataset.name})
