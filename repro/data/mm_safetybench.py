"""MM-SafetyBench -> SafetyPrompt, from the official release or the Hugging Face mirror
(``repro.data.layouts`` tells them apart).

Official (``isXinLiu/MM-SafetyBench`` README, "Dataset Format"): ``data/processed_questions/
NN-Scenario.json`` (NN = 01..13), each an object keyed by question id (``"0"``, ``"1"``, ...; ids
are not contiguous in every file) whose values hold ``Question``, ``Changed Question``, ``Key
Phrase``, ``Rephrased Question`` and ``Rephrased Question(SD)``; images from the separate
``MM-SafetyBench(imgs).zip`` unzipped to ``data/imgs/NN-Scenario/{SD,SD_TYPO,TYPO}/<id>.jpg``.
The README's "Evaluation" pairs each image type with its own text (``OFFICIAL_QUESTION``): SD with
``Rephrased Question(SD)``, SD_TYPO and TYPO with ``Rephrased Question``. The release has no
text-only kind; ``Text_only`` here is the original ``Question`` with no image (MM-SafetyBench's
text-only baseline; the mirror's ``Text_only`` split).

Mirror (``PKU-Alignment/MM-SafetyBench``): ``data/<Scenario>/{SD,SD_TYPO,TYPO,Text_only}.parquet``
with ``id`` (int), ``question`` (str) and ``image`` (HF Image cell; null in Text_only).

Both give ``category`` = the scenario without its number, as spelled (``Illegal_Activitiy``),
``meta["image_type"]`` and ids ``<Scenario>/<type>/<id>``, scenarios in name order, ids ascending.
``split``: None -> the three image types the paper reports (SD, SD_TYPO, TYPO); one of the four
names; or "all". Inline images are written to ``cache_dir`` (see ``repro.data.paths``).
"""

from __future__ import annotations

import re
from pathlib import Path

from repro.data.layouts import detect_layout
from repro.data.paths import ImageChecker, InlineImages, safe_path
from repro.data.records import SafetyPrompt
from repro.data.rows import glob_files, need, read_json_object, read_parquet, row_error
from repro.errors import InputError

IMAGE_TYPES = ("SD", "SD_TYPO", "TYPO", "Text_only")
DEFAULT_TYPES = ("SD", "SD_TYPO", "TYPO")
OFFICIAL_QUESTION = {"SD": "Rephrased Question(SD)", "SD_TYPO": "Rephrased Question",
                     "TYPO": "Rephrased Question", "Text_only": "Question"}
SCENARIO_FILE = re.compile(r"^(\d{2})-(.+)\.json$")


def _types(split: str | None) -> tuple[str, ...]:
    if split is None:
        return DEFAULT_TYPES
    if split == "all":
        return IMAGE_TYPES
    if split in IMAGE_TYPES:
        return (split,)
    raise InputError(f"dataset mm_safetybench: unknown split {split!r}; expected one of "
                     f"{', '.join(IMAGE_TYPES)} or 'all'")


def _prompt(scenario: str, image_type: str, qid: int, question: str, image: Path | None) -> SafetyPrompt:
    return SafetyPrompt(id=f"{scenario}/{image_type}/{qid}", prompt=question, category=scenario,
                        image=image, meta={"image_type": image_type, "scenario": scenario,
                                           "question_id": qid})


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    types = _types(split)
    if detect_layout("mm_safetybench", root) == "official":
        return _load_official(root, types)
    return _load_mirror(root, types, InlineImages(cache_dir))


def _load_mirror(root: Path, types, images: InlineImages) -> list[SafetyPrompt]:
    scenarios = [d.parent for d in glob_files(root / "data", "*/*.parquet", "MM-SafetyBench parquet")]
    prompts = []
    for scenario_dir in sorted(set(scenarios)):
        for image_type in types:
            file = scenario_dir / f"{image_type}.parquet"
            if not file.is_file():
                raise InputError(f"{file}: file not found (scenario {scenario_dir.name}, split {image_type})")
            rows = []
            for n, row in read_parquet(file, ("id", "question", "image")):
                qid = need(row, "id", int, file, n)
                question = need(row, "question", str, file, n, nonempty=True)
                image = None
                if image_type != "Text_only":
                    image = images.from_hf(need(row, "image", (dict, bytes), file, n), file, n, "image")
                elif row.get("image") is not None:
                    raise row_error(file, n, "image", "Text_only rows carry no image")
                rows.append(_prompt(scenario_dir.name, image_type, qid, question, image))
            prompts += sorted(rows, key=lambda p: p.meta["question_id"])
    return prompts


def _scenario_files(root: Path) -> list[tuple[str, str, Path]]:
    """(scenario, "NN-Scenario", file) for every questions file, in scenario-name order."""
    out = []
    for file in glob_files(root / "data" / "processed_questions", "*.json", "MM-SafetyBench questions"):
        m = SCENARIO_FILE.match(file.name)
        if not m:
            raise InputError(f"{file}: file name: expected NN-Scenario.json (e.g. 01-Illegal_Activitiy.json)")
        out.append((m.group(2), file.stem, file))
    return sorted(out)


def _load_official(root: Path, types) -> list[SafetyPrompt]:
    check = ImageChecker()
    prompts = []
    for scenario, folder, file in _scenario_files(root):
        entries = read_json_object(file)
        order = []
        for n, key in enumerate(entries, 1):
            if not (isinstance(key, str) and key.isdigit()):
                raise row_error(file, n, "(key)", f"question id {key!r} is not a number")
            if not isinstance(entries[key], dict):
                raise row_error(file, n, key, f"expected an object, got {type(entries[key]).__name__}")
            order.append((int(key), n, entries[key]))
        for image_type in types:
            field = OFFICIAL_QUESTION[image_type]
            for qid, n, entry in sorted(order, key=lambda t: t[0]):
                question = need(entry, field, str, file, n, nonempty=True)
                image = None
                if image_type != "Text_only":
                    rel = f"{folder}/{image_type}/{qid}.jpg"
                    path = safe_path(root, root / "data" / "imgs", rel, file, n, "image")
                    image = check(path, file, n, "image", f"data/imgs/{rel}")
                prompts.append(_prompt(scenario, image_type, qid, question, image))
    return prompts
