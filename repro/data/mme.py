"""MME -> YesNoItem, from the release folder LLaVA's evaluation reads or the lmms-lab mirror
(``repro.data.layouts`` tells them apart).

Official: ``MME_Benchmark_release_version/<subtask>/`` (the folder LLaVA's
``scripts/v1_5/eval/mme.sh`` points ``--image-folder`` at, under ``playground/data/eval/MME``).
A subtask is either split, ``images/`` + ``questions_answers_YN/`` (artwork, celebrity, landmark,
posters, scene), or flat, images and their ``.txt`` side by side; LLaVA's
``convert_answer_to_mme.py`` (``get_gt``) tells them apart by ``images/``, as here. Each
``<stem>.txt`` holds one ``question<TAB>answer`` line per question (two per image) about the image
``<stem>.<ext>``. Mirror (``lmms-lab/MME``): ``data/test-*.parquet`` with ``question_id`` (the
image's name, e.g. ``artwork/10002.jpg``), ``image``, ``question``, ``answer``, ``category``.

Both give ``pair`` = ``<subtask>/<image file name>`` (acc+ needs both questions of an image
right) and item ids ``<pair>#<k>``, k = 0, 1 in file order.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.layouts import detect_layout
from repro.data.paths import ImageChecker, InlineImages
from repro.data.records import YesNoItem
from repro.data.rows import glob_files, need, read_parquet, row_error
from repro.errors import InputError

COLUMNS = ("question_id", "image", "question", "answer", "category")
RELEASE = "MME_Benchmark_release_version"
QA_DIR = "questions_answers_YN"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[YesNoItem]:
    split = split or "test"
    if split != "test":
        raise InputError(f"dataset mme: unknown split {split!r}; it has only 'test'")
    if detect_layout("mme", root) == "official":
        return _load_official(root / RELEASE)
    return _load_mirror(root, InlineImages(cache_dir))


def _answer(value: str, file: Path, n: int) -> str:
    answer = value.strip()
    if answer not in ("Yes", "No"):
        raise row_error(file, n, "answer", f"expected 'Yes' or 'No', got {answer!r}")
    return answer


class _Pairs:
    """Numbers the questions of each image in file order: ``<pair>#0``, ``<pair>#1``."""

    def __init__(self):
        self.count: dict[str, int] = {}

    def item(self, pair: str, question: str, answer: str, category: str, image: Path) -> YesNoItem:
        k = self.count.get(pair, 0)
        self.count[pair] = k + 1
        return YesNoItem(id=f"{pair}#{k}", question=question, answer=answer, category=category,
                         pair=pair, image=image)


def _load_mirror(root: Path, images: InlineImages) -> list[YesNoItem]:
    pairs, items = _Pairs(), []
    for file in glob_files(root / "data", "test-*.parquet", "MME parquet"):
        for n, row in read_parquet(file, COLUMNS):
            qid = need(row, "question_id", str, file, n, nonempty=True)
            answer = _answer(need(row, "answer", str, file, n), file, n)
            image = images.from_hf(need(row, "image", (dict, bytes), file, n), file, n, "image")
            items.append(pairs.item(qid, need(row, "question", str, file, n, nonempty=True), answer,
                                    need(row, "category", str, file, n, nonempty=True), image))
    return items


def _image_for(txt: Path, image_dir: Path) -> Path:
    found = [p for p in sorted(image_dir.iterdir())
             if p.stem == txt.stem and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if len(found) != 1:
        what = "no image" if not found else f"{len(found)} images ({', '.join(p.name for p in found)})"
        raise InputError(f"{txt}: {what} named {txt.stem}.* in {image_dir}")
    return found[0]


def _load_official(release: Path) -> list[YesNoItem]:
    check = ImageChecker()
    pairs, items = _Pairs(), []
    subtasks = sorted(d for d in release.iterdir() if d.is_dir())
    if not subtasks:
        raise InputError(f"{release}: no subtask folders")
    for task in subtasks:
        split = (task / "images").is_dir()
        image_dir, qa_dir = (task / "images", task / QA_DIR) if split else (task, task)
        if split and not qa_dir.is_dir():
            raise InputError(f"{qa_dir}: missing (subtask {task.name} has images/)")
        for txt in glob_files(qa_dir, "*.txt", f"MME {task.name} question"):
            image = _image_for(txt, image_dir)
            check(image, txt, 1, "image", image.name)
            pair = f"{task.name}/{image.name}"
            try:
                text = txt.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{txt}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            lines = [line for line in text.splitlines() if line.strip()]
            for n, line in enumerate(lines, 1):
                parts = line.strip().split("\t")
                if len(parts) != 2:
                    raise row_error(txt, n, "line", "expected 'question<TAB>answer'")
                items.append(pairs.item(pair, parts[0].strip(), _answer(parts[1], txt, n), task.name, image))
    return items
