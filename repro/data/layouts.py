"""Benchmarks read from either of two on-disk layouts: the official release and a Hugging Face
mirror. Which one a dataset directory holds is decided by what is in it (each layout has files
the other lacks); a directory with both or neither is an error naming what was looked for.

The source is chosen by configuration: a ``data/fetch`` stage names a ``manifest.lock`` key
(``mm_safetybench`` = the mirror, ``mm_safetybench_github`` = the release, ...) and the loader
(``param loader``); ``DATASET.json`` and the fetch metrics record the layout that was read, and
``repro data check NAME PATH`` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from repro.errors import InputError

# loader name -> layout -> (test on the dataset root, what it is)
LAYOUTS: dict[str, dict[str, tuple[Callable[[Path], bool], str]]] = {
    "mm_safetybench": {
        "official": (lambda r: (r / "data" / "processed_questions").is_dir(),
                     "isXinLiu/MM-SafetyBench: data/processed_questions/NN-Scenario.json + data/imgs/"),
        "mirror": (lambda r: any((r / "data").glob("*/*.parquet")),
                   "PKU-Alignment/MM-SafetyBench: data/<Scenario>/<type>.parquet"),
    },
    "seed_bench": {
        "official": (lambda r: (r / "SEED-Bench.json").is_file(),
                     "AILab-CVC/SEED-Bench: SEED-Bench.json + SEED-Bench-image/"),
        "mirror": (lambda r: any((r / "data").glob("test-*.parquet")),
                   "lmms-lab/SEED-Bench: data/test-*.parquet"),
    },
    "siuo": {
        "official": (lambda r: (r / "data" / "siuo_gen.json").is_file(),
                     "sinwang20/SIUO: data/siuo_gen.json + data/images/"),
        "mirror": (lambda r: (r / "siuo_gen.json").is_file(), "sinwang/SIUO: siuo_gen.json + images/"),
    },
    "mme": {
        "official": (lambda r: (r / "MME_Benchmark_release_version").is_dir(),
                     "MME_Benchmark_release_version/<subtask>/ (as LLaVA's eval uses it)"),
        "mirror": (lambda r: any((r / "data").glob("test-*.parquet")), "lmms-lab/MME: data/test-*.parquet"),
    },
}


def detect_layout(name: str, root: Path) -> str:
    """``official`` or ``mirror``: the layout of dataset ``name`` found at ``root``."""
    layouts = LAYOUTS[name]
    found = [layout for layout, (test, _) in layouts.items() if test(Path(root))]
    wanted = "; ".join(f"{layout}: {what}" for layout, (_, what) in layouts.items())
    if not found:
        raise InputError(f"{root}: dataset {name}: neither layout found ({wanted})")
    if len(found) > 1:
        raise InputError(f"{root}: dataset {name}: both layouts found ({wanted}); keep one")
    return found[0]


def layout_of(name: str, root: Path) -> str | None:
    """The layout of ``root`` for a two-layout dataset, else None (one layout only)."""
    return detect_layout(name, root) if name in LAYOUTS else None
