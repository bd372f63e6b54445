"""VLGuard ``train.json`` / ``test.json`` -> ConversationSample, one per image, converted as
VLGuard's own ``convert_to_llava_format.py`` does (``ys-zong/VLGuard``, the script the LLaVA
fine-tuning data of VLGuard comes from).

Record: ``{id, image, safe, instr-resp, harmful_category?, harmful_subcategory?}``. An unsafe
image has one ``{instruction, response}``: a one-turn conversation. A safe image has
``{safe_instruction, response}`` and ``{unsafe_instruction, response}``: ONE two-turn
conversation, the pair order shuffled exactly as the script does (``random.seed(0)`` once, then
``random.shuffle`` on the list of every record with more than one item, in file order; records
with one item draw nothing), the image in the first turn only. The script writes the first
human turn as ``"<image>" + instruction`` (no newline); training then normalises it as LLaVA's
``preprocess_multimodal`` does (``repro.train.tokenize``). So the sample count is the number of
images (2,000 for the official ``train.json``). The script names the instruction by each item's
first key; here it is looked up by name (the same key in the official files, checked).
Images are under ``<root>/<split>/`` (``train.zip``/``test.zip`` unzipped). Both splits are
converted the same way (the script converts ``train.json``; nothing in the kit trains on test).
"""

from __future__ import annotations

import random
from pathlib import Path

from repro.data.paths import ImageChecker, safe_path
from repro.data.records import ConversationSample
from repro.data.rows import need, read_json_list, row_error
from repro.errors import InputError

SAFE_KEYS = ("safe_instruction", "unsafe_instruction")
SHUFFLE_SEED = 0  # convert_to_llava_format.py: random.seed(0)
IMAGE_PREFIX = "<image>"  # convert_to_llava_format.py: f'<image>{response[instruction_key]}'


def _pairs(row: dict, file: Path, n: int, safe: bool) -> list[tuple[str, str, str]]:
    """(kind, instruction, response) for each item of ``instr-resp``."""
    items = need(row, "instr-resp", list, file, n, nonempty=True)
    allowed = SAFE_KEYS if safe else ("instruction",)
    if len(items) != len(allowed):
        raise row_error(file, n, "instr-resp", f"expected {len(allowed)} item(s) for a "
                                               f"{'safe' if safe else 'unsafe'} image, got {len(items)}")
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
    if safe and {k for k, _, _ in out} != set(SAFE_KEYS):
        raise row_error(file, n, "instr-resp", "a safe image needs one safe_instruction and one unsafe_instruction")
    return out


def conversation(pairs: list[tuple[str, str, str]]) -> tuple[tuple[str, str], ...]:
    """The (already ordered) instruction/response pairs as one conversation, image in turn 1."""
    turns = []
    for i, (_, instruction, response) in enumerate(pairs):
        turns += [("user", IMAGE_PREFIX + instruction if i == 0 else instruction), ("assistant", response)]
    return tuple(turns)


def load(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[ConversationSample]:
    split = split or "train"
    if split not in ("train", "test"):
        raise InputError(f"dataset vlguard: unknown split {split!r}; expected 'train' or 'test'")
    file = root / f"{split}.json"
    check = ImageChecker()
    rng = random.Random(SHUFFLE_SEED)  # one stream over the whole file, as the script's global one
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
        pairs = _pairs(row, file, n, safe)
        if len(pairs) > 1:
            rng.shuffle(pairs)
        samples.append(ConversationSample(id=rid, turns=conversation(pairs), image=image,
                                          meta={**meta, "instruction_order": [k for k, _, _ in pairs]}))
    return samples
