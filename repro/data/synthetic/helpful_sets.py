"""Helpfulness benchmarks of the tiny world: MMBench (LLaVA/OpenCompass TSV with base64 images,
empty options and circular variants), MME (paired yes/no questions per image) and SEED-Bench
(parquet, image rows plus a few video rows the loader skips). Every answer depends on the image.
MME and SEED-Bench are written in either of their two layouts (param ``layout``: ``mirror``, the
default, or ``official``; see ``repro.data.layouts``) with the same content."""

from __future__ import annotations

import base64
from pathlib import Path

from repro.data.synthetic.draw import SHAPES
from repro.data.synthetic.fileio import (check_layout, hf_image, write_bytes, write_json, write_parquet,
                                         write_table)
from repro.data.synthetic.world import COLOR_NAMES, World

LETTERS = ("A", "B", "C", "D")
MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
                   "source", "l2-category", "comment", "split"]


def _options(w: World, truth: str, pool: tuple[str, ...], k: int) -> list[str]:
    others = [p for p in pool if p != truth]
    w.rng.shuffle(others)
    opts = [truth, *others[: k - 1]]
    w.rng.shuffle(opts)
    return opts


def _mmbench_question(w: World, color: str, shape: str) -> tuple[str, str, list[str], str]:
    kind = w.pick(("color", "shape", "check"))
    if kind == "color":
        return "What colour is the shape?", "color_recognition", _options(w, color, COLOR_NAMES, 4), color
    if kind == "shape":  # three options: D stays empty, as in real MMBench rows
        return "Which shape is shown?", "shape_recognition", _options(w, shape, SHAPES, 3), shape
    asked = w.pick(COLOR_NAMES)
    return f"Is the shape {asked}?", "color_check", ["Yes", "No"], "Yes" if asked == color else "No"


def mmbench(out: Path, w: World, scale: int) -> dict:
    rows = []
    for i in range(1, 10 * scale + 1):
        look = w.look()
        question, category, opts, truth = _mmbench_question(w, look.color, look.shape)
        hint = "Look at the colour carefully." if w.chance(0.3) else ""
        image = base64.b64encode(look.png()).decode("ascii")
        for k in range(len(opts)):  # circular variants: options rotated, index + k * 1e6
            rotated = opts[k:] + opts[:k]
            row = {"index": i + k * 1_000_000, "question": question, "hint": hint, "category": category,
                   "answer": LETTERS[rotated.index(truth)], "source": "synthetic",
                   "l2-category": "attribute_reasoning", "comment": "", "split": "dev",
                   # VLMEvalKit style: a variant's image cell names the row holding the image
                   "image": image if k == 0 else str(i)}
            row.update({LETTERS[j]: text for j, text in enumerate(rotated)})
            rows.append(row)
    write_table(out / "mmbench_dev_20230712.tsv", MMBENCH_COLUMNS, rows, "\t")
    return {"records": len(rows), "questions": 10 * scale}


def mme(out: Path, w: World, scale: int, layout: str | None = None) -> dict:
    layout = check_layout(layout)
    rows = []
    for i in range(10 * scale):
        look = w.look()
        category = ("color", "shape")[i % 2]
        truth, pool = (look.color, COLOR_NAMES) if category == "color" else (look.shape, SHAPES)
        wrong = w.pick([p for p in pool if p != truth])
        qid = f"{category}/{i:04d}.png"
        image = hf_image(look.png(), f"{i:04d}.png")
        pair = [(truth, "Yes"), (wrong, "No")]
        w.rng.shuffle(pair)
        for value, answer in pair:
            question = (f"Is the shape in the image {value}?" if category == "color"
                        else f"Is there a {value} in the image?")
            rows.append({"question_id": qid, "image": image, "answer": answer, "category": category,
                         "question": f"{question} Please answer yes or no."})
    if layout == "official":
        _mme_official(out, rows)
    else:
        types = {"question_id": "str", "image": "image", "question": "str", "answer": "str", "category": "str"}
        write_parquet(out / "data" / "test-00000-of-00001.parquet", rows, types)
    return {"records": len(rows), "pairs": 10 * scale}


# MME's release keeps some subtasks flat (images and .txt side by side, e.g. color) and others
# split into images/ + questions_answers_YN/ (e.g. artwork); the world's "shape" takes the second form
MME_SPLIT_SUBTASKS = ("shape",)


def _mme_official(out: Path, rows: list[dict]) -> None:
    """``MME_Benchmark_release_version/<subtask>/``: per image ``<stem>.png`` and ``<stem>.txt``
    with one ``question<TAB>answer`` line per question."""
    lines: dict[str, list[str]] = {}
    for row in rows:
        lines.setdefault(row["question_id"], []).append(f"{row['question']}\t{row['answer']}\n")
    images = {row["question_id"]: row["image"]["bytes"] for row in rows}
    for qid, text in lines.items():
        task, name = qid.split("/")
        folder = out / "MME_Benchmark_release_version" / task
        stem = Path(name).stem
        split = task in MME_SPLIT_SUBTASKS
        write_bytes((folder / "images" if split else folder) / name, images[qid])
        write_bytes((folder / "questions_answers_YN" if split else folder) / f"{stem}.txt",
                    "".join(text).encode("utf-8"))


def seed_bench(out: Path, w: World, scale: int, layout: str | None = None) -> dict:
    layout = check_layout(layout)
    rows = []
    for i in range(11 * scale):
        look = w.look()
        color, shape = look.color, look.shape
        video = i % 11 == 10  # lmms-lab's file also holds video rows (frame lists): skipped by the loader
        if i % 2:
            question, type_id, opts, truth = "What colour is the shape in the image?", 1, \
                _options(w, color, COLOR_NAMES, 4), color
        else:
            question, type_id, opts, truth = "What shape is in the image?", 2, _options(w, shape, SHAPES, 4), shape
        frames = [hf_image(look.png(), f"{i}_{f}.png") for f in range(2 if video else 1)]
        row = {"question_id": f"{i + 1}", "question": question, "answer": LETTERS[opts.index(truth)],
               "data_type": "video" if video else "image", "question_type_id": type_id, "image": frames}
        row.update({f"choice_{x.lower()}": text for x, text in zip(LETTERS, opts)})
        rows.append(row)
    if layout == "official":
        _seed_official(out, rows)
    else:
        types = {"question_id": "str", "question": "str", "choice_a": "str", "choice_b": "str",
                 "choice_c": "str", "choice_d": "str", "answer": "str", "data_type": "str",
                 "question_type_id": "int", "image": "images"}
        write_parquet(out / "data" / "test-00000-of-00001.parquet", rows, types)
    return {"records": len(rows), "image_records": sum(r["data_type"] == "image" for r in rows)}


def _seed_official(out: Path, rows: list[dict]) -> None:
    """``SEED-Bench.json`` + ``SEED-Bench-image/<data_id>``; a video question names a video file
    of another dataset (not shipped), an image question an image file name without extension,
    as the release's ``data_id`` values are."""
    questions = []
    for row in rows:
        question = {k: v for k, v in row.items() if k != "image"}
        if row["data_type"] == "image":
            question["data_id"] = f"synthetic_{int(row['question_id']):06d}"
            write_bytes(out / "SEED-Bench-image" / question["data_id"], row["image"][0]["bytes"])
        else:
            question["data_id"] = f"{row['question_id']}.webm"
        questions.append(question)
    write_json(out / "SEED-Bench.json", {"questions": questions,
                                         "question_type": {"Colour (synthetic)": 1, "Shape (synthetic)": 2}})
