"""MM-SafetyBench, SEED-Bench, SIUO and MME read from their official release layout and from their
Hugging Face mirror give the same items (synthetic data written in both layouts), each layout is
recognised by what it holds, and the official quirks are handled."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.data import open_dataset
from repro.data.synthetic import generate
from repro.errors import InputError

TWO_LAYOUTS = ("mm_safetybench", "seed_bench", "siuo", "mme")


def _items(root: Path, cache: Path) -> list[dict]:
    """Every record with its image replaced by the image's sha256 (paths differ by layout)."""
    dataset = open_dataset(root, cache_dir=cache)
    out = []
    for record in dataset.records("all" if dataset.name == "mm_safetybench" else None):
        item = dataclasses.asdict(record)
        image = item.pop("image")
        item["image_sha256"] = hashlib.sha256(Path(image).read_bytes()).hexdigest() if image else None
        out.append(item)
    return sorted(out, key=lambda i: i["id"])


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("layouts")
    out = {}
    for name in TWO_LAYOUTS:
        out[name] = {}
        for layout in ("mirror", "official"):
            generate(name, root / name / layout, 0, "tiny", layout=layout)
            out[name][layout] = root / name / layout
    return out


@pytest.mark.parametrize("name", TWO_LAYOUTS)
def test_official_and_mirror_give_the_same_items(both, name, tmp_path):
    from repro.data.layouts import detect_layout

    mirror, official = both[name]["mirror"], both[name]["official"]
    assert detect_layout(name, mirror) == "mirror" and detect_layout(name, official) == "official"
    items = _items(official, tmp_path / "cache")
    assert items and items == _items(mirror, tmp_path / "cache")


def test_official_layouts_are_the_releases(both):
    mm, seed = both["mm_safetybench"]["official"], both["seed_bench"]["official"]
    assert (mm / "data" / "processed_questions" / "01-Illegal_Activitiy.json").is_file()
    assert (mm / "data" / "imgs" / "13-Gov_Decision" / "SD_TYPO" / "0.jpg").is_file()
    questions = json.loads((seed / "SEED-Bench.json").read_text())["questions"]
    image_ids = [q["data_id"] for q in questions if q["data_type"] == "image"]
    assert all((seed / "SEED-Bench-image" / d).is_file() and "." not in d for d in image_ids)
    assert (both["siuo"]["official"] / "data" / "siuo_gen.json").is_file()
    mme = both["mme"]["official"] / "MME_Benchmark_release_version"
    assert (mme / "color" / "0000.txt").is_file() and (mme / "color" / "0000.png").is_file()  # flat
    assert (mme / "shape" / "questions_answers_YN" / "0001.txt").is_file()  # images/ + questions_answers_YN/
    assert (mme / "shape" / "images" / "0001.png").is_file()


def _official_mm(root: Path) -> Path:
    from repro.data.synthetic.draw import png_shape

    entry = {"Question": "the original question", "Changed Question": "changed", "Key Phrase": "kp",
             "Phrase Type": "activity", "Rephrased Question": "the typo question",
             "Rephrased Question(SD)": "the sd question", "GPT-Pred": "..."}
    qdir = root / "data" / "processed_questions"
    qdir.mkdir(parents=True)
    (qdir / "08-Political_Lobbying.json").write_text(json.dumps({"0": entry, "7": entry}))  # ids not contiguous
    for kind in ("SD", "SD_TYPO", "TYPO"):
        for qid in (0, 7):
            path = root / "data" / "imgs" / "08-Political_Lobbying" / kind / f"{qid}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_shape("red", "circle"))
    return root


def test_each_mm_safetybench_image_type_reads_its_own_question(tmp_path):
    from repro.data.mm_safetybench import load

    records = load(_official_mm(tmp_path / "mm"), "all")
    text = {(r.meta["image_type"], r.meta["question_id"]): (r.prompt, r.image is not None) for r in records}
    assert text == {(kind, qid): expected for qid in (0, 7) for kind, expected in (
        ("SD", ("the sd question", True)), ("SD_TYPO", ("the typo question", True)),
        ("TYPO", ("the typo question", True)), ("Text_only", ("the original question", False)))}
    assert {r.category for r in records} == {"Political_Lobbying"}  # the number is not part of it
    (tmp_path / "mm" / "data" / "imgs" / "08-Political_Lobbying" / "TYPO" / "7.jpg").unlink()
    with pytest.raises(InputError, match=r"08-Political_Lobbying.json: row 2: field 'image': "
                                         r"image 'data/imgs/08-Political_Lobbying/TYPO/7.jpg' not found"):
        load(tmp_path / "mm", "TYPO")


def test_a_folder_with_both_or_neither_layout_is_refused(both, tmp_path):
    import shutil

    from repro.data.seed_bench import load

    mixed = tmp_path / "mixed"
    shutil.copytree(both["seed_bench"]["mirror"], mixed)
    shutil.copy(both["seed_bench"]["official"] / "SEED-Bench.json", mixed)
    with pytest.raises(InputError, match="dataset seed_bench: both layouts found"):
        load(mixed)
    with pytest.raises(InputError, match=r"neither layout found \(official: AILab-CVC/SEED-Bench"):
        load(tmp_path)


def test_mme_release_quirks(both, tmp_path):
    import shutil

    from repro.data.mme import load

    root = tmp_path / "mme"
    shutil.copytree(both["mme"]["official"], root)
    task = root / "MME_Benchmark_release_version" / "color"
    (task / "0000.txt").write_text((task / "0000.txt").read_text() + "\n  \n")  # trailing blank lines
    assert len(load(root)) == len(load(both["mme"]["official"]))
    (task / "0000.txt").write_text("Is it red? Please answer yes or no.\tMaybe\n")
    with pytest.raises(InputError, match=r"0000.txt: row 1: field 'answer': expected 'Yes' or 'No'"):
        load(root)
    (task / "0000.txt").unlink()
    (task / "0002.txt").rename(task / "9999.txt")
    with pytest.raises(InputError, match=r"9999.txt: no image named 9999\.\*"):
        load(root)


def test_data_check_recognises_either_layout(both):
    from repro.cli.fetch import data_check_cmd

    for layout in ("official", "mirror"):
        result = CliRunner().invoke(data_check_cmd, ["mm_safetybench", str(both["mm_safetybench"][layout])])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == f"mm_safetybench: {layout} layout"
        assert "mm_safetybench default: 39 records" in result.output
