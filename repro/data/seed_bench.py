"""SEED-Bench (image questions) -> MultipleChoiceItem, from the official release or the lmms-lab
mirror (``repro.data.layouts`` tells them apart).

Official (``AILab-CVC/SEED-Bench`` ``DATASET.md``; the layout LLaVA's ``scripts/v1_5/eval/seed.sh``
reads): ``SEED-Bench.json`` = ``{"questions": [...], "question_type": {name: id}}``, each question
with ``question_id, question, choice_a..choice_d, answer`` (letter), ``data_type`` (image|video),
``question_type_id`` and ``data_id``, the image's file name under ``SEED-Bench-image/``
(``SEED-Bench-image.zip``), used as given (LLaVA joins ``SEED-Bench-image/`` + ``data_id``).

Mirror (``lmms-lab/SEED-Bench``): ``data/test-*.parquet`` with the same question columns and
``image`` (a list of HF Image cells; one for image questions).

The paper reports SEED-Bench image, so ``split`` None/"image" keeps ``data_type == "image"``.
Category is ``question_type_id`` (SEED-Bench's evaluation dimension) when the file has it
(the official file always does), else "image".
"""

from __future__ import annotations

from pathlib import Path

from repro.data.layouts import detect_layout
from repro.data.paths import ImageChecker, InlineImages, safe_path
from repro.data.records import MultipleChoiceItem
from repro.data.rows import glob_files, need, read_json_object, read_parquet, row_error
from repro.errors import InputError

CHOICES = {"A": "choice_a", "B": "choice_b", "C": "choice_c", "D": "choice_d"}
COLUMNS = ("question_id", "question", *CHOICES.values(), "answer", "data_type", "image")
OFFICIAL_FILE = "SEED-Bench.json"
OFFICIAL_IMAGES = "SEED-Bench-image"


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[MultipleChoiceItem]:
    if split not in (None, "image"):
        raise InputError(f"dataset seed_bench: unknown split {split!r}; only 'image' is supported")
    if detect_layout("seed_bench", root) == "official":
        return _load_official(root)
    return _load_mirror(root, InlineImages(cache_dir))


def _item(row: dict, file: Path, n: int, image: Path) -> MultipleChoiceItem:
    options = {k: need(row, col, str, file, n, nonempty=True) for k, col in CHOICES.items()}
    answer = need(row, "answer", str, file, n).strip()
    if answer not in options:
        raise row_error(file, n, "answer", f"expected a letter A-D, got {answer!r}")
    category = row.get("question_type_id")
    return MultipleChoiceItem(
        id=str(need(row, "question_id", (str, int), file, n)),
        question=need(row, "question", str, file, n, nonempty=True), options=options,
        answer=answer, category="image" if category is None else str(category), image=image)


def _load_mirror(root: Path, images: InlineImages) -> list[MultipleChoiceItem]:
    items = []
    for file in glob_files(root / "data", "test-*.parquet", "SEED-Bench parquet"):
        for n, row in read_parquet(file, COLUMNS):
            if need(row, "data_type", str, file, n) != "image":
                continue
            cells = need(row, "image", (list, dict, bytes), file, n)
            if isinstance(cells, list):
                if not cells:
                    raise row_error(file, n, "image", "empty image list")
                cells = cells[0]
            items.append(_item(row, file, n, images.from_hf(cells, file, n, "image")))
    return items


def _load_official(root: Path) -> list[MultipleChoiceItem]:
    file = root / OFFICIAL_FILE
    questions = read_json_object(file).get("questions")
    if not isinstance(questions, list):
        raise InputError(f"{file}: field 'questions': expected a list of questions")
    check = ImageChecker()
    items = []
    for n, row in enumerate(questions, 1):
        if not isinstance(row, dict):
            raise row_error(file, n, "questions", f"expected an object, got {type(row).__name__}")
        if need(row, "data_type", str, file, n) != "image":
            continue
        need(row, "question_type_id", int, file, n)
        rel = need(row, "data_id", str, file, n, nonempty=True)
        path = safe_path(root, root / OFFICIAL_IMAGES, rel, file, n, "data_id")
        items.append(_item(row, file, n, check(path, file, n, "data_id", f"{OFFICIAL_IMAGES}/{rel}")))
    return items
