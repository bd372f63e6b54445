"""Bad datasets, through the ``repro`` command: missing files, malformed rows, bad images and
empty datasets each fail in one error line naming the file, row and field, and publish nothing
(the check is ``check_bad_input`` in conftest; experiment, recipe and command-line cases are in
test_bad_inputs.py).

Each case writes a synthetic dataset in its official layout, corrupts it, and reads it through a
``data/fetch`` stage with ``local_dir`` (the same loaders a real run uses) or ``repro data check``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from conftest import Workspace, check_bad_input

LLAVA = "llava_v1_5_mix665k.json"
MME = "data/test-00000-of-00001.parquet"


def edit_json(path: Path, change: Callable[[list], None]) -> None:
    rows = json.loads(path.read_text())
    change(rows)
    path.write_text(json.dumps(rows))


def edit_jsonl(path: Path, change: Callable[[list[str]], None]) -> None:
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


def edit_parquet(path: Path, column: str, row: int, value) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = value
    idx = table.schema.get_field_index(column)
    table = table.set_column(idx, table.schema.field(idx), pa.array(values, type=table.schema.field(idx).type))
    pq.write_table(table, path)


def llava_case(change: Callable[[list], None], ws_: Workspace) -> list[str]:
    root = ws_.mirror("llava_instruct")
    edit_json(root / LLAVA, change)
    return ws_.fetch("llava_instruct", root)


def set_row(i: int, **fields):
    def change(rows):
        rows[i].update(fields)
    return change


def sorry(change: Callable[[list[str]], None]) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        root = w.mirror("sorry_bench")
        edit_jsonl(root / "question.jsonl", change)
        return w.fetch("sorry_bench", root)
    return build


def _remove_question(w: Workspace) -> list[str]:
    (root := w.mirror("sorry_bench")).joinpath("question.jsonl").rename(root / "question_fr.jsonl")
    return w.fetch("sorry_bench", root)


def _llava_image(setup: Callable[[Path], str]) -> Callable[[Workspace], list[str]]:
    """Point row 1's image at what ``setup(dataset_root)`` returns."""
    def build(w: Workspace) -> list[str]:
        root = w.mirror("llava_instruct")
        rel = setup(root)
        edit_json(root / LLAVA, set_row(0, image=rel))
        return w.fetch("llava_instruct", root)
    return build


def _zero_byte(root: Path) -> str:
    (root / "coco" / "train2017" / "000000000000.png").write_bytes(b"")
    return "coco/train2017/000000000000.png"


def _corrupt_image(root: Path) -> str:
    (root / "coco" / "train2017" / "000000000000.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    return "coco/train2017/000000000000.png"


def _symlink_out(w: Workspace) -> list[str]:
    # data check reads the folder in place (a fetch stage would copy the link's target in)
    root = w.mirror("llava_instruct")
    image = next(r["image"] for r in json.loads((root / LLAVA).read_text()) if "image" in r)
    shutil.copy(root / image, w.root / "outside.png")  # any real picture of the world
    (root / "coco").mkdir(exist_ok=True)
    (root / "coco" / "evil.png").symlink_to(w.root / "outside.png")
    edit_json(root / LLAVA, set_row(0, image="coco/evil.png"))
    return ["data", "check", "llava_instruct", str(root)]


def _mmsb_not_parquet(w: Workspace) -> list[str]:
    root = w.mirror("mm_safetybench")
    (root / "data" / "HateSpeech" / "SD.parquet").write_bytes(b"PAR1 not really")
    return w.fetch("mm_safetybench", root)


def _mme(column: str, value) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        root = w.mirror("mme")
        edit_parquet(root / MME, column, 0, value)
        return w.fetch("mme", root)
    return build


def _pretrain_missing_conversations(w: Workspace) -> list[str]:
    root = w.mirror("llava_pretrain")
    edit_json(root / "blip_laion_cc_sbu_558k.json", lambda rows: rows[1].pop("conversations"))
    return w.fetch("llava_pretrain", root)


CASES: list[tuple[str, Callable[[Workspace], list[str]], list[str]]] = [
    ("sorry_missing_file", _remove_question, ["question.jsonl", "not found"]),
    ("sorry_bad_json_line", sorry(lambda lines: lines.insert(2, "{oops")), ["question.jsonl", "row 3", "invalid JSON"]),
    ("sorry_turns_not_list", sorry(lambda lines: lines.__setitem__(
        0, json.dumps({"question_id": 1, "category": "x", "prompt_style": "base", "turns": "hi"}))),
     ["question.jsonl", "row 1", "'turns'"]),
    ("sorry_empty", sorry(lambda lines: lines.clear()), ["sorry_bench", "no records"]),
    ("llava_bad_role", lambda w: llava_case(lambda rows: rows[2]["conversations"][0].update({"from": "bot"}), w),
     [LLAVA, "row 3", "conversations[0].from", "'bot'"]),
    ("llava_empty", lambda w: llava_case(lambda rows: rows.clear(), w), ["llava_instruct", "no records"]),
    ("pretrain_missing_field", _pretrain_missing_conversations,
     ["blip_laion_cc_sbu_558k.json", "row 2", "'conversations'"]),
    ("image_dotdot", _llava_image(lambda root: "../outside.png"), [LLAVA, "row 1", "'../outside.png'", "escapes"]),
    ("image_absolute", _llava_image(lambda root: "/etc/hostname"), [LLAVA, "row 1", "absolute image path"]),
    ("image_zero_bytes", _llava_image(_zero_byte), [LLAVA, "row 1", "empty (0 bytes)"]),
    ("image_corrupt", _llava_image(_corrupt_image), [LLAVA, "row 1", "corrupt or not an image"]),
    ("image_symlink_escape", _symlink_out, [LLAVA, "row 1", "outside the dataset root"]),
    ("mmsb_not_parquet", _mmsb_not_parquet, ["HateSpeech/SD.parquet", "not a readable parquet"]),
    ("mme_corrupt_image", _mme("image", {"bytes": b"not an image", "path": "x.png"}),
     ["test-00000-of-00001.parquet", "row 1", "corrupt or not an image"]),
    ("mme_missing_question", _mme("question", None), ["test-00000-of-00001.parquet", "row 1", "'question'"]),
]


@pytest.mark.parametrize("build, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_dataset_fails_in_one_line_and_publishes_nothing(ws, build, needles):
    check_bad_input(ws, build, needles)
