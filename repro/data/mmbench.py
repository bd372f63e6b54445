"""MMBench -> MultipleChoiceItem, from the lmms-lab parquet or an OpenCompass/LLaVA TSV.

Parquet: ``en/<split>-*.parquet``; TSV: a ``*.tsv`` in the root whose name holds the split
(``MMBench_DEV_EN.tsv``, ``mmbench_dev_20230712.tsv``). Columns: ``index, question, hint, A..D,
answer, category, image`` (TSV image = base64, or the index of an earlier row carrying the same
image, as VLMEvalKit writes). Missing options are empty or "nan" and are dropped; circular
variants of one question share ``index % 1_000_000`` (``group``).
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import InlineImages
from repro.data.records import MultipleChoiceItem
from repro.data.rows import as_int, need, read_parquet, read_table, row_error
from repro.errors import InputError

LETTERS = ("A", "B", "C", "D")
COLUMNS = ("index", "question", "hint", *LETTERS, "answer", "category", "image")
CIRCULAR_STRIDE = 1_000_000


def blank(value) -> bool:
    """Missing option/hint: None, empty, or pandas' "nan" that the HF export kept as text."""
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() in ("", "nan")


def _source(root: Path, split: str) -> tuple[str, list[Path]]:
    parquet = sorted((root / "en").glob(f"{split}-*.parquet"))
    if parquet:
        return "parquet", parquet
    tsv = sorted(p for p in root.glob("*.tsv") if split.lower() in p.name.lower())
    if len(tsv) == 1:
        return "tsv", tsv
    found = ", ".join(p.name for p in tsv) or "none"
    raise InputError(f"{root}: expected en/{split}-*.parquet or exactly one *.tsv naming {split!r}; found {found}")


def _item(row: dict, file: Path, n: int, image: Path) -> MultipleChoiceItem:
    index = as_int(row, "index", file, n)
    options = {k: str(row[k]).strip() for k in LETTERS if k in row and not blank(row[k])}
    if len(options) < 2:
        raise row_error(file, n, "A", f"fewer than two non-empty options ({', '.join(options) or 'none'})")
    answer = need(row, "answer", str, file, n).strip()
    if answer not in options:
        raise row_error(file, n, "answer", f"{answer!r} is not one of the options {', '.join(options)}")
    hint = row.get("hint")
    return MultipleChoiceItem(
        id=str(index), question=need(row, "question", str, file, n, nonempty=True), options=options,
        answer=answer, category=need(row, "category", str, file, n, nonempty=True), image=image,
        hint=None if blank(hint) else str(hint), group=str(index % CIRCULAR_STRIDE),
        meta={k: row[k] for k in ("l2-category", "source", "split") if k in row and not blank(row[k])})


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[MultipleChoiceItem]:
    split = split or "dev"
    kind, files = _source(root, split)
    images = InlineImages(cache_dir)
    items = []
    for file in files:
        if kind == "parquet":
            for n, row in read_parquet(file, COLUMNS):
                items.append(_item(row, file, n, images.from_hf(need(row, "image", (dict, bytes), file, n),
                                                                file, n, "image")))
            continue
        by_index: dict[int, Path] = {}
        for n, row in read_table(file, "\t", COLUMNS):
            cell = row["image"].strip()
            if cell.isdigit() and len(cell) <= 64:  # a reference to an earlier row's image
                if int(cell) not in by_index:
                    raise row_error(file, n, "image", f"refers to index {cell}, which has no earlier image row")
                image = by_index[int(cell)]
            else:
                image = images.from_base64(cell, file, n, "image")
            by_index[as_int(row, "index", file, n)] = image
            items.append(_item(row, file, n, image))
    return items
