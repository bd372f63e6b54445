"""MM-SafetyBench, Hugging Face parquet layout -> SafetyPrompt.

``data/<Scenario>/{SD,SD_TYPO,TYPO,Text_only}.parquet`` with ``id`` (int), ``question`` (str) and
``image`` (HF Image cell; null in Text_only). ``category`` = scenario (directory name, kept as
spelled, e.g. ``Illegal_Activitiy``); ``meta["image_type"]`` = the split file.

``split``: None -> the three image splits the paper reports (SD, SD_TYPO, TYPO); one of the four
names; or "all". Inline images are written to ``cache_dir`` (see ``repro.data.paths``).
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import InlineImages
from repro.data.records import SafetyPrompt
from repro.data.rows import glob_files, need, read_parquet, row_error
from repro.errors import InputError

IMAGE_TYPES = ("SD", "SD_TYPO", "TYPO", "Text_only")
DEFAULT_TYPES = ("SD", "SD_TYPO", "TYPO")


def _types(split: str | None) -> tuple[str, ...]:
    if split is None:
        return DEFAULT_TYPES
    if split == "all":
        return IMAGE_TYPES
    if split in IMAGE_TYPES:
        return (split,)
    raise InputError(f"dataset mm_safetybench: unknown split {split!r}; expected one of "
                     f"{', '.join(IMAGE_TYPES)} or 'all'")


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    images = InlineImages(cache_dir)
    scenarios = [d.parent for d in glob_files(root / "data", "*/*.parquet", "MM-SafetyBench parquet")]
    prompts = []
    for scenario_dir in sorted(set(scenarios)):
        for image_type in _types(split):
            file = scenario_dir / f"{image_type}.parquet"
            if not file.is_file():
                raise InputError(f"{file}: file not found (scenario {scenario_dir.name}, split {image_type})")
            for n, row in read_parquet(file, ("id", "question", "image")):
                qid = need(row, "id", int, file, n)
                question = need(row, "question", str, file, n, nonempty=True)
                image = None
                if image_type != "Text_only":
                    cell = need(row, "image", (dict, bytes), file, n)
                    image = images.from_hf(cell, file, n, "image")
                elif row.get("image") is not None:
                    raise row_error(file, n, "image", "Text_only rows carry no image")
                prompts.append(SafetyPrompt(
                    id=f"{scenario_dir.name}/{image_type}/{qid}", prompt=question,
                    category=scenario_dir.name, image=image,
                    meta={"image_type": image_type, "scenario": scenario_dir.name, "question_id": qid}))
    return prompts
