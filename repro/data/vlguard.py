"""VLGuard ``train.json`` / ``test.json`` -> ConversationSample (one per instruction-response).

Record: ``{id, image, safe, instr-resp, harmful_category?, harmful_subcategory?}``. An unsafe
image has one ``{instruction, response}``; a safe image has ``{safe_instruction, response}`` and
``{unsafe_instruction, response}``, so it yields two conversations (``<id>#safe``, ``<id>#unsafe``).
Images are under ``<root>/<split>/`` (``train.zip``/``test.zip`` unzipped). The image is put in
front of the instruction as ``<image>\\n`` like VLGuard's ``convert_to_llava_format.py``.
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import ImageChecker, safe_path
from repro.data.records import ConversationSample
from repro.data.rows import need, read_json_list, row_error
from repro.errors import InputError

SAFE_KEYS = ("safe_instruction", "unsafe_instruction")


def _pairs(row: dict, file: Path, n: int, safe: bool) -> list[tuple[str, str, str]]:
    """(kind, instruction, response) for each item of ``instr-resp``."""
    items = need(row, "instr-resp", list, file, n, nonempty=True)
    allowed = SAFE_KEYS if safe else ("instruction",)
    out = []
    for i, item in enumerate(items):
        where = f"instr-resp[{i}]"
        if not isinstance(item, dict):
            raise row_error(file, n, where, f"expected an object, got {type(item).__name__}")
        kinds = [k for k in allowed if k in item]
        if len(kinds) != 1:
            raise row_error(file, n, where, f"expected exactly one of {', '.join(allowed)} "
                                            f"for a {'safe' if safe else 'unsafe'} image; keys: {', '.join(sorted(item))}")
        for key in (kinds[0], "response"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise row_error(file, n, f"{where}.{key}", "expected a non-empty string")
        out.append((kinds[0], item[kinds[0]], item["response"]))
    return out


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[ConversationSample]:
    split = split or "train"
    if split not in ("train", "test"):
        raise InputError(f"dataset vlguard: unknown split {split!r}; expected 'train' or 'test'")
    file = root / f"{split}.json"
    check = ImageChecker()
    samples = []
    for n, row in read_json_list(file):
        rid = str(need(row, "id", (str, int), file, n))
        rel = need(row, "image", str, file, n)
        image = check(safe_path(root, root / split, rel, file, n, "image"), file, n, "image", rel)
        safe = need(row, "safe", bool, file, n)
        meta = {"safe_image": safe}
        if not safe:
            meta["harmful_category"] = need(row, "harmful_category", str, file, n)
            meta["harmful_subcategory"] = need(row, "harmful_subcategory", str, file, n, optional=True)
        for kind, instruction, response in _pairs(row, file, n, safe):
            sid = rid if kind == "instruction" else f"{rid}#{kind.split('_')[0]}"
            samples.append(ConversationSample(
                id=sid, turns=(("user", f"<image>\n{instruction}"), ("assistant", response)),
                image=image, meta={**meta, "instruction_kind": kind}))
    return samples
