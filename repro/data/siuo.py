"""SIUO ``siuo_gen.json`` + images -> SafetyPrompt, from the official repository layout or the
Hugging Face mirror (``repro.data.layouts`` tells them apart).

Official (``sinwang20/SIUO`` README, "Download"): ``data/siuo_gen.json`` with the images of
``SIUO-images.zip`` unzipped to ``data/images/`` (its generation script reads
``./data/images/`` + ``image``). Mirror (``sinwang/SIUO``): ``siuo_gen.json`` and ``images/`` at
the root. Record: ``{question_id, image, question, category, safety_warning, reference_answer}``.
The inputs are safe on their own and only unsafe together, so ``harmful`` is None (every item is
judged).
"""

from __future__ import annotations

from pathlib import Path

from repro.data.layouts import detect_layout
from repro.data.paths import ImageChecker, safe_path
from repro.data.records import SafetyPrompt
from repro.data.rows import need, read_json_list
from repro.errors import InputError


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    if split not in (None, "gen"):
        raise InputError(f"dataset siuo: unknown split {split!r}; only 'gen' (siuo_gen.json) is supported")
    base = root / "data" if detect_layout("siuo", root) == "official" else root
    file = base / "siuo_gen.json"
    check = ImageChecker()
    prompts = []
    for n, row in read_json_list(file):
        qid = need(row, "question_id", (int, str), file, n)
        rel = need(row, "image", str, file, n)
        image = check(safe_path(root, base / "images", rel, file, n, "image"), file, n, "image", rel)
        prompts.append(SafetyPrompt(
            id=str(qid), prompt=need(row, "question", str, file, n, nonempty=True),
            category=need(row, "category", str, file, n, nonempty=True), image=image,
            meta={"safety_warning": need(row, "safety_warning", str, file, n),
                  "reference_answer": need(row, "reference_answer", str, file, n)}))
    return prompts
