"""Hand-written malformed files, one family at a time: each error names file, row and field."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from repro.data import DATASETS
from repro.data.synthetic.draw import png_shape
from repro.data.synthetic.fileio import hf_image, write_jsonl, write_parquet, write_table
from repro.errors import InputError

PNG = png_shape("red", "circle")


def run(name: str, root: Path, split=None):
    return DATASETS.get(name)(root, split, cache_dir=root / ".cache")


def expect(name, root, pattern, split=None):
    with pytest.raises(InputError, match=pattern) as info:
        run(name, root, split)
    assert "\n" not in str(info.value)
    return str(info.value)


def llava_root(tmp_path: Path, rows) -> Path:
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "1.png").write_bytes(PNG)
    (tmp_path / "llava_v1_5_mix665k.json").write_text(json.dumps(rows))
    return tmp_path


GOOD_CONV = [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Red."}]


@pytest.mark.parametrize("row, pattern", [
    ({"id": "a", "image": "coco/1.png"}, r"row 2: field 'conversations': missing"),
    ({"id": ["a"], "image": "coco/1.png", "conversations": GOOD_CONV}, r"row 2: field 'id': expected string or integer, got list"),
    ({"id": "a", "image": 5, "conversations": GOOD_CONV}, r"row 2: field 'image': expected string, got int"),
    ({"id": "a", "image": "coco/1.png", "conversations": [{"from": "bot", "value": "x"}]},
     r"row 2: field 'conversations\[0\].from': expected 'human' or 'gpt', got 'bot'"),
    ({"id": "a", "image": "coco/1.png", "conversations": GOOD_CONV + GOOD_CONV[1:]},
     r"row 2: field 'conversations\[2\].from': turns must alternate"),
    ({"id": "a", "conversations": GOOD_CONV}, r"row 2: field 'conversations\[0\].value': '<image>' in a record without 'image'"),
    ({"id": "a", "image": "coco/1.png", "conversations": [{"from": "human", "value": "Hi"}, GOOD_CONV[1]]},
     r"row 2: field 'conversations\[0\].value': record has 'image' but no '<image>'"),
    ({"id": "a", "image": "coco/1.png", "conversations": [{"from": "human", "value": None}, GOOD_CONV[1]]},
     r"row 2: field 'conversations\[0\].value': expected string, got NoneType"),
])
def test_llava_json_rows(tmp_path, row, pattern):
    root = llava_root(tmp_path, [{"id": "ok", "image": "coco/1.png", "conversations": GOOD_CONV}, row])
    message = expect("llava_instruct", root, pattern)
    assert "llava_v1_5_mix665k.json" in message


def test_llava_json_duplicate_ids_made_unique(tmp_path):
    row = {"id": "ok", "image": "coco/1.png", "conversations": GOOD_CONV}
    first, second = run("llava_instruct", llava_root(tmp_path, [row, row]))
    assert (first.id, second.id, second.meta["original_id"]) == ("ok", "ok#row2", "ok")


def test_llava_json_file_level(tmp_path):
    (tmp_path / "llava_v1_5_mix665k.json").write_text('[{"id": 1,')
    expect("llava_instruct", tmp_path, r"mix665k.json: invalid JSON at line 1")
    (tmp_path / "llava_v1_5_mix665k.json").write_text('{"id": 1}')
    expect("llava_instruct", tmp_path, r"expected a JSON list of records, got dict")
    (tmp_path / "llava_v1_5_mix665k.json").unlink()
    expect("llava_instruct", tmp_path, r"mix665k.json: file not found")


@pytest.mark.parametrize("row, pattern", [
    ({"question_id": 1, "category": "1", "turns": "hi", "prompt_style": "base"}, r"row 1: field 'turns': expected list, got str"),
    ({"question_id": 1, "turns": ["hi"], "prompt_style": "base"}, r"row 1: field 'category': missing"),
    ({"question_id": 1, "category": "1", "turns": [], "prompt_style": "base"}, r"row 1: field 'turns': empty"),
    ({"question_id": 1, "category": "1", "turns": [3], "prompt_style": "base"}, r"row 1: field 'turns': expected a list of strings"),
    ({"question_id": True, "category": "1", "turns": ["x"], "prompt_style": "base"}, r"field 'question_id': expected integer or string, got bool True"),
])
def test_sorry_bench_rows(tmp_path, row, pattern):
    write_jsonl(tmp_path / "question.jsonl", [row])
    assert "question.jsonl" in expect("sorry_bench", tmp_path, pattern)


def test_sorry_bench_bad_json_line(tmp_path):
    good = json.dumps({"question_id": 1, "category": "1", "turns": ["x"], "prompt_style": "base"})
    (tmp_path / "question.jsonl").write_text(good + '\n{oops\n')
    expect("sorry_bench", tmp_path, r"question.jsonl: row 2: invalid JSON")


def mm_write(root, rows, split="SD", types=None):
    types = types or {"id": "int", "question": "str", "image": "image"}
    write_parquet(root / "data" / "Fraud" / f"{split}.parquet", rows, types)


def test_mm_safetybench_rows(tmp_path):
    mm_write(tmp_path, [{"id": 0, "question": "q", "image": hf_image(PNG)}, {"id": 1, "question": "q", "image": None}])
    expect("mm_safetybench", tmp_path, r"Fraud/SD.parquet: row 2: field 'image': missing", "SD")
    mm_write(tmp_path, [{"id": 0, "question": "", "image": hf_image(PNG)}])
    expect("mm_safetybench", tmp_path, r"SD.parquet: row 1: field 'question': empty", "SD")
    mm_write(tmp_path, [{"id": 0, "image": hf_image(PNG)}], types={"id": "int", "image": "image"})
    expect("mm_safetybench", tmp_path, r"SD.parquet: schema: missing column\(s\) question", "SD")
    expect("mm_safetybench", tmp_path, r"Fraud/TYPO.parquet: file not found", "TYPO")
    (tmp_path / "data" / "Fraud" / "SD.parquet").write_bytes(b"not parquet")
    expect("mm_safetybench", tmp_path, r"SD.parquet: not a readable parquet file", "SD")


FIG_COLS = ["dataset", "category_id", "task_id", "category_name", "question", "instruction"]


def test_figstep_rows(tmp_path):
    path = tmp_path / "data" / "question" / "safebench.csv"
    (tmp_path / "data" / "images" / "SafeBench").mkdir(parents=True)
    (tmp_path / "data" / "images" / "SafeBench" / "query_ForbidQI_1_1_6.png").write_bytes(PNG)
    row = {"dataset": "ForbidQI", "category_id": "x", "task_id": "1", "category_name": "c", "question": "q",
           "instruction": "i"}
    write_table(path, FIG_COLS, [row], ",")
    expect("figstep", tmp_path, r"safebench.csv: row 1: field 'category_id': expected an integer, got 'x'")
    write_table(path, FIG_COLS, [row | {"category_id": "2"}], ",")
    expect("figstep", tmp_path, r"row 1: field 'image': image 'query_ForbidQI_2_1_6.png' not found")
    write_table(path, FIG_COLS[:-1], [row], ",")
    expect("figstep", tmp_path, r"safebench.csv: header: missing column\(s\) instruction")
    path.write_text(",".join(FIG_COLS) + "\nForbidQI,1,1\n")
    expect("figstep", tmp_path, r"safebench.csv: row 1: 3 cells, header has 6")


def vlguard_root(tmp_path, record) -> Path:
    (tmp_path / "train" / "safe").mkdir(parents=True)
    (tmp_path / "train" / "safe" / "a.png").write_bytes(PNG)
    (tmp_path / "train.json").write_text(json.dumps([record]))
    return tmp_path


@pytest.mark.parametrize("record, pattern", [
    ({"id": "a", "image": "safe/a.png", "safe": "yes", "instr-resp": []}, r"row 1: field 'safe': expected boolean, got str"),
    ({"id": "a", "image": "safe/a.png", "safe": True, "instr-resp": [{"instruction": "x", "response": "y"}]},
     r"row 1: field 'instr-resp': expected 2 item\(s\) for a safe image, got 1"),
    ({"id": "a", "image": "safe/a.png", "safe": True, "instr-resp": [{"instruction": "x", "response": "y"},
                                                                    {"safe_instruction": "x", "response": "y"}]},
     r"row 1: field 'instr-resp\[0\]': expected exactly one of safe_instruction, unsafe_instruction"),
    ({"id": "a", "image": "safe/a.png", "safe": True, "instr-resp": [{"safe_instruction": "x", "response": "y"},
                                                                    {"safe_instruction": "z", "response": "y"}]},
     r"row 1: field 'instr-resp': a safe image needs one safe_instruction and one unsafe_instruction"),
    ({"id": "a", "image": "safe/a.png", "safe": False, "harmful_category": "c",
      "instr-resp": [{"instruction": "x"}]}, r"row 1: field 'instr-resp\[0\].response': expected a non-empty string"),
    ({"id": "a", "image": "safe/a.png", "safe": False, "instr-resp": [{"instruction": "x", "response": "y"}]},
     r"row 1: field 'harmful_category': missing"),
])
def test_vlguard_rows(tmp_path, record, pattern):
    assert "train.json" in expect("vlguard", vlguard_root(tmp_path, record), pattern)


def test_wildjailbreak_rows(tmp_path):
    path = tmp_path / "eval" / "eval.tsv"
    cols = ["adversarial", "label", "data_type"]
    write_table(path, cols, [{"adversarial": "x", "label": "0", "data_type": "adversarial_harmful"}], "\t")
    expect("wildjailbreak", tmp_path, r"eval.tsv: row 1: field 'label': 0 disagrees with data_type 'adversarial_harmful'")
    write_table(path, cols, [{"adversarial": "x", "label": "1", "data_type": "harmful"}], "\t")
    expect("wildjailbreak", tmp_path, r"row 1: field 'data_type': expected one of adversarial_harmful")
    write_table(path, cols, [{"adversarial": " ", "label": "1", "data_type": "adversarial_harmful"}], "\t")
    expect("wildjailbreak", tmp_path, r"row 1: field 'adversarial': empty")


def test_siuo_rows(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "S-01.png").write_bytes(PNG)
    row = {"question_id": 1, "image": "S-01.png", "category": "c", "safety_warning": "w", "reference_answer": "r"}
    (tmp_path / "siuo_gen.json").write_text(json.dumps([row]))
    expect("siuo", tmp_path, r"siuo_gen.json: row 1: field 'question': missing")


PKU = {"prompt": "p", "response_0": "a", "response_1": "b", "better_response_id": 0, "safer_response_id": 1,
       "is_response_0_safe": True, "is_response_1_safe": True}


@pytest.mark.parametrize("change, pattern", [
    ({"safer_response_id": 2}, r"field 'safer_response_id': expected 0 or 1, got 2"),
    ({"is_response_0_safe": "true"}, r"field 'is_response_0_safe': expected boolean, got str"),
    ({"better_response_id": False}, r"field 'better_response_id': expected integer, got bool"),
    ({"response_1": None}, r"field 'response_1': missing"),
])
def test_pku_rows(tmp_path, change, pattern):
    write_jsonl(tmp_path / "data" / "Alpaca-7B" / "train.jsonl", [PKU, PKU | change])
    assert "Alpaca-7B/train.jsonl: row 2" in expect("pku_saferlhf", tmp_path, pattern)


def test_spa_vl_bad_image_bytes(tmp_path):
    types = {"image": "image", "question": "str", "chosen": "str", "rejected": "str"}
    row = {"image": hf_image(b"GIF89a-broken"), "question": "q", "chosen": "c", "rejected": "r"}
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", [row], types)
    expect("spa_vl", tmp_path, r"train-00000-of-00001.parquet: row 1: field 'image': inline image: corrupt")


MMB_COLS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"]


def mmb_row(**change):
    row = {"index": "1", "question": "q", "hint": "", "A": "red", "B": "blue", "C": "", "D": "",
           "answer": "A", "category": "c", "image": base64.b64encode(PNG).decode()}
    return row | change


@pytest.mark.parametrize("row, pattern", [
    (mmb_row(answer="C"), r"row 1: field 'answer': 'C' is not one of the options A, B"),
    (mmb_row(B=""), r"row 1: field 'A': fewer than two non-empty options"),
    (mmb_row(image="@@notbase64@@"), r"row 1: field 'image': not valid base64"),
    (mmb_row(image="99"), r"row 1: field 'image': refers to index 99"),
    (mmb_row(index="one"), r"row 1: field 'index': expected an integer, got 'one'"),
])
def test_mmbench_rows(tmp_path, row, pattern):
    write_table(tmp_path / "mmbench_dev_20230712.tsv", MMB_COLS, [row], "\t")
    assert "mmbench_dev_20230712.tsv" in expect("mmbench", tmp_path, pattern)


def test_mme_and_seed_rows(tmp_path):
    types = {"question_id": "str", "image": "image", "question": "str", "answer": "str", "category": "str"}
    row = {"question_id": "a/1.png", "image": hf_image(PNG), "question": "q", "answer": "yes maybe", "category": "c"}
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [row], types)
    expect("mme", tmp_path, r"test-00000-of-00001.parquet: row 1: field 'answer': expected 'Yes' or 'No'")
    seed = {"question_id": "1", "question": "q", "choice_a": "a", "choice_b": "b", "choice_c": "c",
            "choice_d": "d", "answer": "E", "data_type": "image", "image": [hf_image(PNG)]}
    seed_types = {k: "str" for k in seed} | {"image": "images"}
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [seed], seed_types)
    expect("seed_bench", tmp_path, r"row 1: field 'answer': expected a letter A-D, got 'E'")
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [seed | {"answer": "A", "image": []}], seed_types)
    expect("seed_bench", tmp_path, r"row 1: field 'image': empty image list")
