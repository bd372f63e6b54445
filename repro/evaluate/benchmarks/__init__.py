"""Benchmarks are data: ``benchmarks/<name>/benchmark.yaml`` found by walking this folder.

A benchmark names the record type it scores, how its prompts are built (suffix), how it decodes
(``sampling`` preset), how it is scored (``scorer``), its default judge, how an unparsed judge
output counts (``unparsed``) and, for multiple choice, its answer extractor. Where the benchmark
has an official scorer, ``<name>/score.py`` computes its metrics as that scorer does, and the
official judge prompts live in ``<name>/judge/``. A YAML that fails to load or has an unknown key
is an error, never a skip. Each declares a ``version``; changing prompts, extraction or scoring
means raising it and adding a line to its README changelog.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import InputError

ROOT = Path(__file__).parent
SCORERS = {"safety": "SafetyPrompt", "multiple_choice": "MultipleChoiceItem", "yes_no": "YesNoItem"}
_REQUIRED = {"name", "version", "scorer", "primary", "description"}
_OPTIONAL = {"judge", "split", "sampling", "prompt_suffix", "strip_suffix", "circular",
             "breakdown", "judge_prompt_meta", "cognition", "unparsed", "extractor", "label", "units"}
UNPARSED = ("official", "exclude")  # same values as repro.evaluate.metrics.UNPARSED
EXTRACTORS = ("vlmevalkit", "llava_exact")  # repro.evaluate.extract


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: int
    scorer: str  # safety | multiple_choice | yes_no
    primary: str  # the metric a table reports
    description: str
    judge: str | None = None  # default judge (safety benchmarks); overridable by the stage param
    split: str | None = None  # default split passed to the dataset loader
    sampling: str = "paper"  # preset in repro.evaluate.backends.SAMPLING_PRESETS
    prompt_suffix: str = ""  # appended on a new line (LLaVA-1.5 evaluation suffixes)
    strip_suffix: str = ""  # removed from the end of a question before the suffix is added
    circular: bool = False  # MMBench: a group counts only if every rotation is right
    breakdown: tuple[str, ...] = ()  # record meta keys to report the primary metric by
    judge_prompt_meta: tuple[str, ...] = ()  # meta keys holding the request the judge should read
    cognition: tuple[str, ...] = ()  # MME: subtasks summed into the cognition score
    unparsed: str = "exclude"  # official: as the benchmark's own scorer counts it (score.py)
    extractor: str = "vlmevalkit"  # multiple choice: how an answer becomes an option letter
    # table columns: a label for the primary metric or {metric: label}, and their units (rate |
    # points, or {metric: unit}); read by repro/config/tables.py
    label: Any = None
    units: Any = None

    @property
    def record_type(self) -> str:
        return SCORERS[self.scorer]

    def prompt_sha256(self) -> str:
        text = f"suffix={self.prompt_suffix!r};strip={self.strip_suffix!r}"
        return hashlib.sha256(text.encode()).hexdigest()

    def metrics_module(self):
        """``<name>/score.py`` (the official scorer's metrics), or None: the generic ones apply."""
        if not (ROOT / self.name / "score.py").is_file():
            return None
        return importlib.import_module(f"{__name__}.{self.name}.score")


def _load(path: Path) -> Benchmark:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping")
    unknown = set(data) - _REQUIRED - _OPTIONAL
    if unknown:
        raise InputError(f"{path}: {sorted(unknown)[0]}: unknown key")
    missing = _REQUIRED - set(data)
    if missing:
        raise InputError(f"{path}: {sorted(missing)[0]}: missing")
    if data["name"] != path.parent.name:
        raise InputError(f"{path}: name: {data['name']!r} must equal its folder {path.parent.name!r}")
    if data["scorer"] not in SCORERS:
        raise InputError(f"{path}: scorer: {data['scorer']!r} not one of {', '.join(SCORERS)}")
    if not isinstance(data["version"], int):
        raise InputError(f"{path}: version: expected an integer, got {data['version']!r}")
    for key, allowed in (("unparsed", UNPARSED), ("extractor", EXTRACTORS)):
        if key in data and data[key] not in allowed:
            raise InputError(f"{path}: {key}: {data[key]!r} not one of {', '.join(allowed)}")
    for key in ("breakdown", "judge_prompt_meta", "cognition"):
        data[key] = tuple(data.get(key) or ())
    return Benchmark(**data)


def load_all() -> dict[str, Benchmark]:
    return {p.parent.name: _load(p) for p in sorted(ROOT.glob("*/benchmark.yaml"))}


def get_benchmark(name: str) -> Benchmark:
    import difflib

    path = ROOT / name / "benchmark.yaml"
    if not path.is_file():
        known = [p.parent.name for p in sorted(ROOT.glob("*/benchmark.yaml"))]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise InputError(f"unknown benchmark {name!r}; {hint}")
    return _load(path)
