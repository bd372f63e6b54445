"""Helpfulness benchmarks of the tiny world: MMBench (LLaVA/OpenCompass TSV with base64 images,
empty options and circular variants), MME (paired yes/no questions per image) and SEED-Bench
(parquet, image rows plus a few video rows the loader skips). Every answer depends on the image."""

from __future__ import annotations

import base64
from pathlib import Path

from repro.data.synthetic.draw import SHAPES
from repro.data.synthetic.fileio import hf_image, write_parquet, write_table
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


def mme(out: Path, w: World, scale: int) -> dict:
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
    types = {"question_id": "str", "image": "image", "question": "str", "answer": "str", "category": "str"}
    write_parquet(out / "data" / "test-00000-of-00001.parquet", rows, types)
    return {"records": len(rows), "pairs": 10 * scale}


def seed_bench(out: Path, w: World, scale: int) -> dict:
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
    types = {"question_id": "str", "question": "str", "choice_a": "str", "choice_b": "str",
             "choice_c": "str", "choice_d": "str", "answer": "str", "data_type": "str",
             "question_type_id": "int", "image": "images"}
    write_parquet(out / "data" / "test-00000-of-00001.parquet", rows, types)
    return {"records": len(rows), "image_records": sum(r["data_type"] == "image" for r in rows)}
