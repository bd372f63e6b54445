"""MME (lmms-lab parquet ``data/test-*.parquet``) -> YesNoItem.

Columns: ``question_id`` (the image's name, e.g. ``artwork/10002.jpg``), ``image``, ``question``,
``answer`` ("Yes"/"No"), ``category``. Each image has two questions; they share ``pair`` =
``question_id`` (acc+ needs both right). Item ids are ``<question_id>#<k>``, k = 0, 1 in file order.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import InlineImages
from repro.data.records import YesNoItem
from repro.data.rows import glob_files, need, read_parquet, row_error
from repro.errors import InputError

COLUMNS = ("question_id", "image", "question", "answer", "category")


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[YesNoItem]:
    split = split or "test"
    if split != "test":
        raise InputError(f"dataset mme: unknown split {split!r}; it has only 'test'")
    images = InlineImages(cache_dir)
    items = []
    count: dict[str, int] = {}
    for file in glob_files(root / "data", "test-*.parquet", "MME parquet"):
        for n, row in read_parquet(file, COLUMNS):
            qid = need(row, "question_id", str, file, n, nonempty=True)
            answer = need(row, "answer", str, file, n).strip()
            if answer not in ("Yes", "No"):
                raise row_error(file, n, "answer", f"expected 'Yes' or 'No', got {answer!r}")
            image = images.from_hf(need(row, "image", (dict, bytes), file, n), file, n, "image")
            k = count.get(qid, 0)
            count[qid] = k + 1
            items.append(YesNoItem(
                id=f"{qid}#{k}", question=need(row, "question", str, file, n, nonempty=True),
                answer=answer, category=need(row, "category", str, file, n, nonempty=True),
                pair=qid, image=image))
    return items
