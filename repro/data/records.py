"""Typed records every dataset loader yields. Loaders map an official layout onto these.

Image fields are absolute paths already checked to lie inside the dataset root (or ``None``).
Images stored inline (base64 in TSV, bytes in parquet) are written out by the loader to a
content-addressed cache folder outside the (read-only) dataset root: the loader's ``cache_dir``,
else ``$REPRO_IMAGE_CACHE``, else ``<tmp>/repro-image-cache`` (see ``repro.data.paths``), so every
record can point at a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ConversationSample:
    """An SFT sample: LLaVA-Pretrain / LLaVA-Instruct / VLGuard (converted)."""
    id: str
    turns: tuple[tuple[str, str], ...]  # (("user", text), ("assistant", text), ...)
    image: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PreferencePair:
    """A DPO pair: PKU-SafeRLHF (text) / SPA-VL (image)."""
    id: str
    prompt: str
    chosen: str
    rejected: str
    image: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class SafetyPrompt:
    """A prompt to answer and judge: SORRY-Bench, WildJailbreak, MM-SafetyBench, SIUO, FigStep.

    ``harmful`` is the dataset's own label where it has one (WildJailbreak's data_type; the
    synthetic world's known labels); ``None`` where the benchmark treats every item as harmful.
    """
    id: str
    prompt: str
    category: str
    image: Path | None = None
    harmful: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class MultipleChoiceItem:
    """MMBench / SEED-Bench. ``group`` ties MMBench's circular variants of one question."""
    id: str
    question: str
    options: dict[str, str]  # letter -> text, only non-empty options
    answer: str  # letter
    category: str
    image: Path | None = None
    hint: str | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class YesNoItem:
    """MME: two questions per image (``pair``), answers "Yes"/"No"."""
    id: str
    question: str
    answer: str  # "Yes" | "No"
    category: str
    pair: str
    image: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
