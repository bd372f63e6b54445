"""LLaVA JSON (``blip_laion_cc_sbu_558k.json``, ``llava_v1_5_mix665k.json``) -> ConversationSample.

Schema: a list of ``{id, image?, conversations: [{from: "human"|"gpt", value}]}``; turns
alternate starting with ``human``; an image record has ``<image>`` in its first human turn, a
text-only record (mix665k has them) has no ``image`` and no ``<image>``. Roles map to
``user``/``assistant``; ``<image>`` stays in the text for the chat template to place.

Image folders follow the LLaVA scripts: Pretrain images under ``<root>/images/`` (``images.zip``
unzipped), finetune images relative to ``<root>`` (``playground/data``: ``coco/train2017/...``).
``aligned_chat`` is the same schema, text-only (the synthetic world's chat-alignment data).
"""

from __future__ import annotations

from pathlib import Path

from repro.data.paths import ImageChecker, safe_path
from repro.data.records import ConversationSample
from repro.data.rows import need, read_json_list, row_error
from repro.errors import InputError

IMAGE_TOKEN = "<image>"
ROLES = {"human": "user", "gpt": "assistant"}

PRETRAIN_FILE = "blip_laion_cc_sbu_558k.json"
INSTRUCT_FILE = "llava_v1_5_mix665k.json"
ALIGNED_CHAT_FILE = "aligned_chat.json"


def parse_conversations(row: dict, file: Path, n: int, has_image: bool) -> tuple[tuple[str, str], ...]:
    convs = need(row, "conversations", list, file, n, nonempty=True)
    turns = []
    for i, turn in enumerate(convs):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise row_error(file, n, where, f"expected an object, got {type(turn).__name__}")
        speaker = turn.get("from")
        if speaker not in ROLES:
            raise row_error(file, n, f"{where}.from", f"expected 'human' or 'gpt', got {speaker!r}")
        expected = "human" if i % 2 == 0 else "gpt"
        if speaker != expected:
            raise row_error(file, n, f"{where}.from", f"turns must alternate human/gpt; expected {expected!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            raise row_error(file, n, f"{where}.value", f"expected string, got {type(value).__name__}")
        if IMAGE_TOKEN in value and not (has_image and i == 0):
            problem = "'<image>' in a record without 'image'" if not has_image else "'<image>' after the first turn"
            raise row_error(file, n, f"{where}.value", problem)
        turns.append((ROLES[speaker], value))
    if has_image and IMAGE_TOKEN not in turns[0][1]:
        raise row_error(file, n, "conversations[0].value", "record has 'image' but no '<image>' in the first human turn")
    if turns[-1][0] != "assistant":
        raise row_error(file, n, "conversations", "last turn must be from 'gpt'")
    return tuple(turns)


def load_llava_json(root: Path, json_file: Path, image_base: Path) -> list[ConversationSample]:
    check = ImageChecker()
    samples = []
    seen: dict[str, int] = {}
    for n, row in read_json_list(json_file):
        rid = str(need(row, "id", (str, int), json_file, n))
        meta = {}
        if rid in seen:  # tolerated (the official mix may repeat ids); kept unique for consumers
            meta["original_id"], rid = rid, f"{rid}#row{n}"
        seen[rid] = n
        rel = need(row, "image", str, json_file, n, optional=True)
        image = None
        if rel is not None:
            image = check(safe_path(root, image_base, rel, json_file, n, "image"), json_file, n, "image", rel)
        turns = parse_conversations(row, json_file, n, image is not None)
        samples.append(ConversationSample(id=rid, turns=turns, image=image, meta=meta))
    return samples


def _no_split(name: str, split: str | None) -> None:
    if split not in (None, "train"):
        raise InputError(f"dataset {name}: unknown split {split!r}; it has only 'train'")


def load_pretrain(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[ConversationSample]:
    _no_split("llava_pretrain", split)
    return load_llava_json(root, root / PRETRAIN_FILE, root / "images")


def load_instruct(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[ConversationSample]:
    _no_split("llava_instruct", split)
    return load_llava_json(root, root / INSTRUCT_FILE, root)


def load_aligned_chat(root: Path, split: str | None = None, *, cache_dir: Path | None = None) -> list[ConversationSample]:
    _no_split("aligned_chat", split)
    return load_llava_json(root, root / ALIGNED_CHAT_FILE, root)
