"""SEED-Bench (lmms-lab parquet ``data/test-*.parquet``) -> MultipleChoiceItem, image questions.

Columns: ``question_id, question, choice_a..choice_d, answer`` (letter), ``data_type``
(image|video), ``image`` (a list of HF Image cells; one for image questions). The paper reports
SEED-Bench image, so ``split`` None/"image" keeps ``data_type == "image"`` rows. Category is
``question_type_id`` when the file has it (SEED-Bench's evaluation dimension), else "image".
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import InlineImages
from repro.data.records import MultipleChoiceItem
from repro.data.rows import glob_files, need, read_parquet, row_error
from repro.errors import InputError

CHOICES = {"A": "choice_a", "B": "choice_b", "C": "choice_c", "D": "choice_d"}
COLUMNS = ("question_id", "question", *CHOICES.values(), "answer", "data_type", "image")


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[MultipleChoiceItem]:
    if split not in (None, "image"):
        raise InputError(f"dataset seed_bench: unknown split {split!r}; only 'image' is supported")
    images = InlineImages(cache_dir)
    items = []
    for file in glob_files(root / "data", "test-*.parquet", "SEED-Bench parquet"):
        for n, row in read_parquet(file, COLUMNS):
            if need(row, "data_type", str, file, n) != "image":
                continue
            options = {k: need(row, col, str, file, n, nonempty=True) for k, col in CHOICES.items()}
            answer = need(row, "answer", str, file, n).strip()
            if answer not in options:
                raise row_error(file, n, "answer", f"expected a letter A-D, got {answer!r}")
            cells = need(row, "image", (list, dict, bytes), file, n)
            if isinstance(cells, list):
                if not cells:
                    raise row_error(file, n, "image", "empty image list")
                cells = cells[0]
            category = row.get("question_type_id")
            items.append(MultipleChoiceItem(
                id=str(need(row, "question_id", (str, int), file, n)),
                question=need(row, "question", str, file, n, nonempty=True), options=options,
                answer=answer, category="image" if category is None else str(category),
                image=images.from_hf(cells, file, n, "image")))
    return items
