"""Preference pairs for DPO: PKU-SafeRLHF (jsonl, text) and SPA-VL (parquet, image).

PKU-SafeRLHF: ``data/<source>/{train,test}.jsonl`` with ``prompt, response_0, response_1,
better_response_id, safer_response_id, is_response_0_safe, is_response_1_safe``. The paper uses it
for *safety* DPO, so the loader orients every pair by the safer response (``PKU_CHOSEN_BY``); both
labels and both safety flags stay in ``meta``, and ``train/dpo`` picks and re-orients the pairs
it trains on by its ``pair_selection`` (``repro.train.pairs``). ``split``: "train" (default) / "test"
concatenate all sources like ``load_dataset``'s default config; "<source>/<split>" picks one.

SPA-VL: ``image, question, chosen, rejected, class1`` (category). Split files (``SPA_VL_SPLITS``)
follow the repo's folders; inline images go to ``cache_dir``.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import InlineImages
from repro.data.records import PreferencePair
from repro.data.rows import glob_files, need, read_jsonl, read_parquet, row_error
from repro.errors import InputError

PKU_CHOSEN_BY = "safer_response_id"  # documented choice: safety DPO prefers the safer response
SPA_VL_SPLITS = {"train": "data/train-*.parquet", "validation": "validation/validation-*.parquet",
                 "harm": "test/harm-*.parquet", "help": "test/help-*.parquet"}


def _pku_files(root: Path, split: str) -> list[Path]:
    if "/" in split:
        source, _, part = split.partition("/")
        if part not in ("train", "test") or not source.replace("-", "").replace(".", "").isalnum():
            raise InputError(f"dataset pku_saferlhf: bad split {split!r}; expected '<source>/train|test'")
        return glob_files(root / "data" / source, f"{part}.jsonl", "PKU-SafeRLHF jsonl")
    if split not in ("train", "test"):
        raise InputError(f"dataset pku_saferlhf: unknown split {split!r}; expected 'train' or 'test'")
    return glob_files(root / "data", f"*/{split}.jsonl", "PKU-SafeRLHF jsonl")


def _response_id(row: dict, key: str, file: Path, n: int) -> int:
    value = need(row, key, int, file, n)
    if value not in (0, 1):
        raise row_error(file, n, key, f"expected 0 or 1, got {value}")
    return value


def load_pku_saferlhf(root: Path, split: str | None = None, *,
                      cache_dir: Path | None = None) -> list[PreferencePair]:
    pairs = []
    for file in _pku_files(root, split or "train"):
        source = file.parent.name
        for n, row in read_jsonl(file):
            prompt = need(row, "prompt", str, file, n, nonempty=True)
            responses = [need(row, f"response_{i}", str, file, n) for i in (0, 1)]
            safe = [need(row, f"is_response_{i}_safe", bool, file, n) for i in (0, 1)]
            better = _response_id(row, "better_response_id", file, n)
            chosen = _response_id(row, PKU_CHOSEN_BY, file, n)
            pairs.append(PreferencePair(
                id=f"{source}/{file.stem}/{n}", prompt=prompt, chosen=responses[chosen],
                rejected=responses[1 - chosen],
                meta={"source": source, "better_response_id": better, "safer_response_id": chosen,
                      "chosen_id": chosen, "chosen_safe": safe[chosen], "rejected_safe": safe[1 - chosen]}))
    return pairs


def load_spa_vl(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[PreferencePair]:
    split = split or "train"
    if split not in SPA_VL_SPLITS:
        raise InputError(f"dataset spa_vl: unknown split {split!r}; expected one of {', '.join(SPA_VL_SPLITS)}")
    images = InlineImages(cache_dir)
    pairs = []
    for file in glob_files(root, SPA_VL_SPLITS[split], f"SPA-VL {split}"):
        for n, row in read_parquet(file, ("image", "question", "chosen", "rejected")):
            image = images.from_hf(need(row, "image", (dict, bytes), file, n), file, n, "image")
            category = need(row, "class1", str, file, n, optional=True)
            pairs.append(PreferencePair(
                id=f"{split}/{file.stem}/{n}", prompt=need(row, "question", str, file, n, nonempty=True),
                chosen=need(row, "chosen", str, file, n, nonempty=True),
                rejected=need(row, "rejected", str, file, n, nonempty=True), image=image,
                meta={"class1": category}))
    return pairs
