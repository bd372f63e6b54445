"""WildJailbreak -> SafetyPrompt, ``harmful`` from ``data_type``. Two layouts of the eval set:

- Hugging Face ``allenai/wildjailbreak``: ``eval/eval.tsv`` with ``adversarial``, ``label``
  (1 harmful / 0 benign), ``data_type`` (``adversarial_harmful`` | ``adversarial_benign``);
  ``label`` must agree with ``data_type``. It has no ``vanilla`` column.
- ``allenai/safety-eval``'s task files (the folder ``evaluation/tasks/generation/wildjailbreak/``):
  ``harmful.jsonl`` and ``benign.jsonl``, each row with ``adversarial`` and ``vanilla``. As
  safety-eval's ``WildJailbreakValidation`` tasks do, a harmful item keeps its ``vanilla`` prompt
  (``meta["vanilla"]``: the judge reads it) and a benign item drops it (the judge reads the
  adversarial prompt).

Split ``eval`` reads whichever layout the root holds (both at once is an error). ``train/train.tsv``
(split ``train``): ``vanilla``, ``adversarial`` (empty for vanilla rows), ``data_type``; the prompt
is the adversarial text when present, else the vanilla one. Category = ``data_type``.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.records import SafetyPrompt
from repro.data.rows import as_int, need, read_jsonl, read_table, row_error
from repro.errors import InputError

DATA_TYPES = {"adversarial_harmful": True, "adversarial_benign": False,
              "vanilla_harmful": True, "vanilla_benign": False}


def _data_type(row: dict, file: Path, n: int, allowed: tuple[str, ...]) -> str:
    value = need(row, "data_type", str, file, n)
    if value not in allowed:
        raise row_error(file, n, "data_type", f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    split = split or "eval"
    if split == "eval":
        tsv, jsonl = root / "eval" / "eval.tsv", root / "harmful.jsonl"
        if tsv.is_file() and jsonl.is_file():
            raise InputError(f"{root}: both eval/eval.tsv and harmful.jsonl (safety-eval); keep one layout")
        return _load_safety_eval(root) if jsonl.is_file() else _load_eval(tsv)
    if split == "train":
        return _load_train(root / "train" / "train.tsv")
    raise InputError(f"dataset wildjailbreak: unknown split {split!r}; expected 'eval' or 'train'")


def _load_eval(file: Path) -> list[SafetyPrompt]:
    prompts = []
    for n, row in read_table(file, "\t", ("adversarial", "label", "data_type")):
        text = need(row, "adversarial", str, file, n)
        if not text.strip():
            raise row_error(file, n, "adversarial", "empty")
        data_type = _data_type(row, file, n, ("adversarial_harmful", "adversarial_benign"))
        label = as_int(row, "label", file, n)
        if label not in (0, 1) or bool(label) != DATA_TYPES[data_type]:
            raise row_error(file, n, "label", f"{label} disagrees with data_type {data_type!r}")
        prompts.append(SafetyPrompt(id=f"eval-{n}", prompt=text, category=data_type,
                                    harmful=DATA_TYPES[data_type], meta={"label": label}))
    return prompts


def _load_train(file: Path) -> list[SafetyPrompt]:
    prompts = []
    for n, row in read_table(file, "\t", ("vanilla", "adversarial", "data_type")):
        data_type = _data_type(row, file, n, tuple(DATA_TYPES))
        field = "adversarial" if data_type.startswith("adversarial") else "vanilla"
        text = need(row, field, str, file, n)
        if not text.strip():
            raise row_error(file, n, field, f"empty for data_type {data_type!r}")
        prompts.append(SafetyPrompt(id=f"train-{n}", prompt=text, category=data_type,
                                    harmful=DATA_TYPES[data_type], meta={"vanilla": row["vanilla"]}))
    return prompts


def _load_safety_eval(root: Path) -> list[SafetyPrompt]:
    prompts = []
    for data_type, name in (("adversarial_harmful", "harmful.jsonl"), ("adversarial_benign", "benign.jsonl")):
        file = root / name
        for n, row in read_jsonl(file):
            text = need(row, "adversarial", str, file, n)
            if not text.strip():
                raise row_error(file, n, "adversarial", "empty")
            vanilla = need(row, "vanilla", str, file, n)
            if row.get("data_type", data_type) != data_type:
                raise row_error(file, n, "data_type", f"{row['data_type']!r} in {name}")
            harmful = DATA_TYPES[data_type]
            # safety-eval deletes a benign item's vanilla prompt so its classifier reads the adversarial one
            meta = {"vanilla": vanilla} if harmful else {}
            prompts.append(SafetyPrompt(id=f"{name.split('.')[0]}-{n}", prompt=text, category=data_type,
                                        harmful=harmful, meta=meta))
    return prompts

