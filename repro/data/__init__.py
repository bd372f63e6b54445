"""Dataset loaders: official on-disk layouts -> typed records (``repro.data.records``).

A dataset directory (a dataset stage's output) holds the official layout plus ``DATASET.json``
(``{"dataset": <loader name>, "source": ...}``). ``open_dataset(path)`` reads that marker and
reads records through the loader registered under the name in ``DATASETS``.

Every loader is ``load(root, split=None, *, cache_dir=None) -> list[record]``. Images stored
inline (parquet bytes, base64 TSV) are written, content-addressed, to ``cache_dir`` (default
``$REPRO_IMAGE_CACHE`` or ``<tmp>/repro-image-cache``) because a published dataset root is
read-only; every record's ``image`` is then a path to a real, checked file.

Import-light on purpose: loaders (pyarrow, PIL) are imported only when a dataset is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from repro.data.records import ConversationSample
from repro.data.rows import dataset_root
from repro.errors import InputError
from repro.registry import Registry

DATASETS = Registry("dataset")

for _name, _target in {
    "llava_pretrain": "repro.data.llava_json:load_pretrain",
    "llava_instruct": "repro.data.llava_json:load_instruct",
    "aligned_chat": "repro.data.llava_json:load_aligned_chat",
    "vlguard": "repro.data.vlguard:load",
    "sorry_bench": "repro.data.sorry_bench:load",
    "wildjailbreak": "repro.data.wildjailbreak:load",
    "mm_safetybench": "repro.data.mm_safetybench:load",
    "siuo": "repro.data.siuo:load",
    "figstep": "repro.data.figstep:load",
    "pku_saferlhf": "repro.data.preference:load_pku_saferlhf",
    "spa_vl": "repro.data.preference:load_spa_vl",
    "mmbench": "repro.data.mmbench:load",
    "mme": "repro.data.mme:load",
    "seed_bench": "repro.data.seed_bench:load",
    "xstest": "repro.data.xstest:load",
    "judge_train": "repro.data.synthetic.judge_sets:load",
    "web_pairs": "repro.data.synthetic.clip_sets:load",
}.items():
    DATASETS.register(_name, _target)

MARKER = "DATASET.json"


class Dataset:
    """A dataset directory: its loader name, root, marker contents and records."""

    def __init__(self, name: str, root: Path, marker: dict[str, Any], cache_dir: Path | None = None):
        self.name = name
        self.root = root
        self.marker = marker
        self.cache_dir = cache_dir

    def records(self, split: str | None = None) -> list:
        loader = DATASETS.get(self.name)
        with dataset_root(self.root):
            return loader(self.root, split, cache_dir=self.cache_dir)

    def texts(self, split: str | None = None) -> Iterator[str]:
        """Every text field of every record (tokenizer training); ``<image>`` is left in place."""
        for record in self.records(split):
            yield from record_texts(record)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {str(self.root)!r})"


def record_texts(record: Any) -> Iterator[str]:
    for attr in ("prompt", "question", "hint", "chosen", "rejected", "answer"):
        value = getattr(record, attr, None)
        if isinstance(value, str) and value:
            yield value
    for _role, text in getattr(record, "turns", ()):
        yield text
    yield from getattr(record, "options", {}).values()


def open_dataset(path: Path | str, cache_dir: Path | None = None) -> Dataset:
    """Read ``path/DATASET.json`` and return the dataset it names (an unknown name is an error)."""
    root = Path(path)
    marker_path = root / MARKER
    if not marker_path.is_file():
        raise InputError(f"{marker_path}: not found; {root} is not a dataset directory")
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{marker_path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{marker_path}: not valid JSON (nested too deeply)") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("dataset"), str):
        raise InputError(f"{marker_path}: field 'dataset': expected a loader name string")
    name = marker["dataset"]
    if name not in DATASETS:
        DATASETS.get(name)  # raises the registry's "unknown dataset ..., did you mean" error
    return Dataset(name, root, marker, cache_dir)


def load_typed(data_dir: Path, split: str | None, record_type: type, need: str) -> list:
    """The dataset's records, which must all be ``record_type`` (``need`` says why, in the error)."""
    records = open_dataset(data_dir).records(split)
    wrong = next((r for r in records if not isinstance(r, record_type)), None)
    if wrong is not None:
        raise InputError(f"{data_dir}: records: {type(wrong).__name__} found; {need}")
    if not records:
        raise InputError(f"{data_dir}: records: none (split {split!r})")
    return records


def load_conversations(data_dir: Path, split: str | None) -> list:
    """The dataset's records, which must all be ``ConversationSample``."""
    return load_typed(data_dir, split, ConversationSample, "SFT needs conversations")
