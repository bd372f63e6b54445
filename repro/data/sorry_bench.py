"""SORRY-Bench ``question.jsonl`` (and ``question_<mutation>.jsonl``) -> SafetyPrompt.

Fields: ``question_id``, ``category``, ``turns`` (the prompt is ``turns[0]``), ``prompt_style``.
Every item is an unsafe instruction, so ``harmful`` is None (the benchmark's convention).
``split`` names a mutation file: None/"base" -> question.jsonl, "slang" -> question_slang.jsonl.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.records import SafetyPrompt
from repro.data.rows import need, read_jsonl, row_error
from repro.errors import InputError


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    if split in (None, "base"):
        file = root / "question.jsonl"
    elif split.replace("_", "").isalnum():
        file = root / f"question_{split}.jsonl"
    else:
        raise InputError(f"dataset sorry_bench: bad split {split!r}; expected a mutation name")
    prompts = []
    for n, row in read_jsonl(file):
        qid = need(row, "question_id", (int, str), file, n)
        category = need(row, "category", (str, int), file, n)
        turns = need(row, "turns", list, file, n, nonempty=True)
        if not all(isinstance(t, str) for t in turns):
            raise row_error(file, n, "turns", "expected a list of strings")
        if not turns[0].strip():
            raise row_error(file, n, "turns", "first turn is empty")
        style = need(row, "prompt_style", str, file, n)
        rid = str(qid) if style == "base" else f"{qid}:{style}"
        prompts.append(SafetyPrompt(id=rid, prompt=turns[0], category=str(category),
                                    meta={"prompt_style": style, "question_id": qid}))
    return prompts
