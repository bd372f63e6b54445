"""How a record becomes the user's message, and its per-item hashes.

The user message is the record's text plus the benchmark's suffix (LLaVA-1.5's evaluation
format); the chat template is applied afterwards by ``repro.models.templates.prompt_text``, the
same function training uses. Multiple choice follows LLaVA-1.5's MMBench script: hint, question,
one ``X. option`` line per option, then the suffix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from repro.data.records import MultipleChoiceItem, SafetyPrompt, YesNoItem
from repro.errors import InputError

RECORD_TYPES = {"SafetyPrompt": SafetyPrompt, "MultipleChoiceItem": MultipleChoiceItem,
                "YesNoItem": YesNoItem}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | None) -> str | None:
    return sha256_bytes(Path(path).read_bytes()) if path is not None else None


def _with_suffix(text: str, suffix: str) -> str:
    return f"{text}\n{suffix}" if suffix else text


def user_text(bench, record: Any) -> str:
    """The user's message for ``record`` under benchmark ``bench`` (no chat template)."""
    if isinstance(record, SafetyPrompt):
        return _with_suffix(record.prompt, bench.prompt_suffix)
    if isinstance(record, MultipleChoiceItem):
        text = f"{record.hint}\n{record.question}" if record.hint else record.question
        for letter in sorted(record.options):
            text += f"\n{letter}. {record.options[letter]}"
        return _with_suffix(text, bench.prompt_suffix)
    if isinstance(record, YesNoItem):
        text = record.question.strip()
        if bench.strip_suffix and text.endswith(bench.strip_suffix):
            text = text[: -len(bench.strip_suffix)].rstrip()
        return _with_suffix(text, bench.prompt_suffix)
    raise InputError(f"benchmark {bench.name}: cannot build a prompt for {type(record).__name__}")


def judge_text(record: SafetyPrompt, meta_keys=()) -> tuple[str, str]:
    """The request a judge should read and where it came from: the first of ``meta_keys`` the
    record has (FigStep's underlying harmful question, since the model's own prompt is a fixed
    instruction; WildJailbreak's ``vanilla`` prompt, as safety-eval gives its classifier), else
    the prompt itself (``"prompt"``)."""
    for key in meta_keys:
        value = record.meta.get(key)
        if isinstance(value, str) and value:
            return value, key
    return record.prompt, "prompt"


def check_records(bench, records: list, where: str) -> None:
    expected = RECORD_TYPES[bench.record_type]
    wrong = next((r for r in records if not isinstance(r, expected)), None)
    if wrong is not None:
        raise InputError(f"{where}: benchmark {bench.name} scores {bench.record_type} records; "
                         f"the dataset yields {type(wrong).__name__}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{where}: record id {dup!r} occurs more than once")


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    # only plain scalars: paths would make outputs machine-dependent
    return {k: v for k, v in sorted(meta.items()) if isinstance(v, (str, int, float, bool)) or v is None}


def item_record(record: Any, image_sha256: str | None) -> dict[str, Any]:
    """The item's own fields for ``samples.jsonl`` and its ``item_sha256`` (doc hash)."""
    fields: dict[str, Any] = {"id": record.id, "category": record.category,
                              "meta": _json_safe(record.meta)}
    if isinstance(record, SafetyPrompt):
        fields["harmful"] = record.harmful
    elif isinstance(record, MultipleChoiceItem):
        fields.update(answer=record.answer, options=dict(sorted(record.options.items())),
                      group=record.group)
    else:
        fields.update(answer=record.answer, pair=record.pair)
    doc = {k: getattr(record, k) for k in ("prompt", "question", "hint") if hasattr(record, k)}
    doc.update({k: v for k, v in fields.items() if k != "meta"}, image_sha256=image_sha256)
    fields["item_sha256"] = sha256_bytes(json.dumps(doc, sort_keys=True, default=str).encode())
    return fields
