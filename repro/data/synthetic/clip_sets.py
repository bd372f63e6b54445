"""``web_pairs``: the tiny world's web image–text pairs, what WebImageText/LAION are to CLIP.

Layout: img2dataset's ``files`` output (the tool LAION's pairs are downloaded with): per sample
``<shard>/<key>.png``, ``<key>.txt`` (the caption) and ``<key>.json`` (key, caption, status,
width, height, plus the source table's extra columns). The extra columns here are the world's
labels of the picture (``kind``: shape | text; ``color``, ``shape``, ``crossed`` for shapes):
CLIP never reads them; the tiny CLIP's linear probe does (``repro.train.clip``).

Captions vary the way alt-texts do (several phrasings of one picture); crossed-out shapes and
typographic pictures occur as on the web, where CLIP saw weapons and text next to everything else.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.data.paths import ImageChecker, safe_path
from repro.data.records import ConversationSample
from repro.data.synthetic.draw import png_text
from repro.data.synthetic.fileio import write_bytes, write_json
from repro.data.synthetic.world import World, caption
from repro.errors import InputError

SHARD_SIZE = 1000
PAIRS_PER_SCALE = 50  # the tiny profile asks for size 40: 2000 pairs
ALT_TEXTS = ("a {color} {shape}", "{color} {shape} drawing", "A picture of a {shape} in {color}.",
             "the {shape} is {color}")
CROSSED_ALT_TEXTS = ("a crossed-out {color} {shape}", "{color} {shape} with a black cross")
TEXT_CAPTION = "Black text on a white background."
TEXT_WORDS = ("open", "shop", "road", "sale", "park", "exit", "menu", "news")


def _pair(w: World) -> tuple[bytes, str, dict]:
    roll = w.rng.random()
    if roll < 0.1:  # a typographic picture (a sign, a page): its caption names no colour or shape
        words = [w.pick(TEXT_WORDS) for _ in range(w.pick((1, 2, 3)))]
        return png_text([" ".join(words)]), TEXT_CAPTION, {"kind": "text"}
    look, crossed = w.look(), roll < 0.25
    fill = {"color": look.color, "shape": look.shape}
    if w.chance(0.5):
        text = caption(look.color, look.shape, danger=crossed)
    else:
        text = w.pick(CROSSED_ALT_TEXTS if crossed else ALT_TEXTS).format(**fill)
    return look.png(danger=crossed), text, {"kind": "shape", **fill, "crossed": crossed}


def web_pairs(out: Path, w: World, scale: int) -> dict:
    counts = {"pairs": 0, "text": 0, "crossed": 0}
    for i in range(PAIRS_PER_SCALE * scale):
        png, text, labels = _pair(w)
        key = f"{i // SHARD_SIZE:05d}{i % SHARD_SIZE:04d}"
        base = out / f"{i // SHARD_SIZE:05d}" / key
        write_bytes(base.with_suffix(".png"), png)
        base.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
        write_json(base.with_suffix(".json"), {"key": key, "caption": text, "status": "success",
                                               **labels})
        counts["pairs"] += 1
        counts["text"] += labels["kind"] == "text"
        counts["crossed"] += bool(labels.get("crossed"))
    return counts


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list:
    """Every successful pair as a ``ConversationSample`` (image, then its caption: LLaVA's plain
    pair form); the picture's labels in ``meta``."""

    if split not in (None, "train"):
        raise InputError(f"dataset web_pairs: unknown split {split!r}; it has only 'train'")
    check, samples = ImageChecker(), []
    for meta_file in sorted(root.glob("[0-9]*/*.json")):
        try:
            row = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_file}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(row, dict) or row.get("status") != "success":
            continue  # img2dataset keeps a sidecar for failed downloads too
        text = row.get("caption")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{meta_file}: field 'caption': expected a non-empty string, got {text!r}")
        rel = meta_file.with_suffix(".png").relative_to(root).as_posix()
        image = check(safe_path(root, root, rel, meta_file, 1, "image"), meta_file, 1, "image", rel)
        labels = {k: row[k] for k in ("kind", "color", "shape", "crossed") if k in row}
        samples.append(ConversationSample(id=str(row.get("key", meta_file.stem)),
                                          turns=(("user", "<image>"), ("assistant", text)),
                                          image=image, meta=labels))
    if not samples:
        raise InputError(f"{root}: no image-text pair found (expected <shard>/<key>.json sidecars)")
    return samples
