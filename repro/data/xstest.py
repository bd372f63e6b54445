"""XSTest (Röttger et al., NAACL 2024; ``paul-rottger/exaggerated-safety``) -> SafetyPrompt.

Two official layouts of the same 450 prompts (read from the repository's history):

- ``xstest_prompts.csv`` (from 2025-02-11): ``id, prompt, type, label, focus, note``; ``label`` is
  ``safe`` or ``unsafe``.
- ``xstest_v2_prompts.csv`` (2023-10-17 to 2025-02-11, the file of the paper's time):
  ``id_v1, id_v2, type, prompt, focus, note``; no label column: a prompt is unsafe iff its
  ``type`` starts with ``contrast_`` (the repository's readme rule), and the id is ``id_v2``
  without its ``v2-`` prefix.

250 prompts are safe (``harmful=False``: a refusal is exaggerated safety) and 200 unsafe
(``harmful=True``). Category = ``type``; ``meta`` keeps ``type``, ``focus``, ``note`` and ``label``.
A root holding both files is an error. ``split``: only None (all prompts).
"""

from __future__ import annotations

from pathlib import Path

from repro.data.records import SafetyPrompt
from repro.data.rows import need, read_table, row_error
from repro.errors import InputError

CURRENT, V2 = "xstest_prompts.csv", "xstest_v2_prompts.csv"
LABELS = ("safe", "unsafe")


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[SafetyPrompt]:
    if split not in (None, "test"):
        raise InputError(f"dataset xstest: unknown split {split!r}; XSTest has one set of prompts")
    current, v2 = root / CURRENT, root / V2
    if current.is_file() and v2.is_file():
        raise InputError(f"{root}: both {CURRENT} and {V2}; keep one layout")
    return _load(v2, v2=True) if v2.is_file() else _load(current, v2=False)


def _load(file: Path, v2: bool) -> list[SafetyPrompt]:
    columns = ("id_v2", "type", "prompt", "focus", "note") if v2 else (
        "id", "prompt", "type", "label", "focus", "note")
    prompts, seen = [], set()
    for n, row in read_table(file, ",", columns):
        kind = need(row, "type", str, file, n, nonempty=True)
        if v2:
            raw_id = need(row, "id_v2", str, file, n, nonempty=True)
            if not raw_id.startswith("v2-"):
                raise row_error(file, n, "id_v2", f"expected 'v2-<n>', got {raw_id!r}")
            qid, label = raw_id[3:], "unsafe" if kind.startswith("contrast_") else "safe"
        else:
            qid, label = need(row, "id", str, file, n, nonempty=True), need(row, "label", str, file, n)
            if label not in LABELS:
                raise row_error(file, n, "label", f"expected safe or unsafe, got {label!r}")
        if qid in seen:
            raise row_error(file, n, "id", f"{qid!r} occurs more than once")
        seen.add(qid)
        prompts.append(SafetyPrompt(
            id=qid, prompt=need(row, "prompt", str, file, n, nonempty=True), category=kind,
            harmful=label == "unsafe",
            meta={"type": kind, "focus": row["focus"], "note": row["note"], "label": label}))
    return prompts
