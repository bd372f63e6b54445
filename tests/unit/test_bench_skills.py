"""The per-format skills probe of the tiny world's models (repro/bench/skills.py)."""

from __future__ import annotations

import pytest

from repro.bench.skills import FORMATS, Item, ask, items, right
from repro.models.tiny import make_tiny_llava


def test_each_picture_is_asked_once_per_format_with_its_true_answer(tmp_path):
    probe = items(tmp_path, 6)
    assert [it.format for it in probe] == list(FORMATS) * 6
    for it in probe:
        colour, shape = it.caption.split()[1:3]  # "A <colour> <shape> on a white background."
        assert it.image.is_file()
        if it.format == "yes/no, colour":
            asked = it.question.split("?")[0].split()[-1]
            assert it.truth == ("Yes" if asked == colour else "No")
        elif it.format == "yes/no, shape":
            asked = it.question.split()[3]
            assert it.truth == ("Yes" if asked == shape else "No")
        elif it.options:
            assert it.options[it.truth] == colour and len(set(it.options.values())) == 4
        else:
            assert it.truth == (shape if it.format.startswith("shape") else colour)
    answers = [it.truth for it in probe if it.format.startswith("yes/no")]
    assert answers.count("Yes") == answers.count("No")  # balanced: always "Yes" scores half


OPTIONS = {"A": "blue", "B": "red", "C": "green", "D": "purple"}


@pytest.mark.parametrize("fmt,truth,answer,ok", [
    ("colour, a word", "red", "The shape is red.", True),
    ("colour, a word", "red", "It is a circle. Not red.", False),
    ("colour, 4 options", "B", "B", True),  # MMBench's extraction: the letter ...
    ("colour, 4 options", "B", "red", True),  # ... or the one option's text
    ("colour, 4 options", "B", "A", False),
    ("colour, 4 options", "B", "red or blue", False),  # two options named: no answer
    ("yes/no, colour", "Yes", "Yes, it is red.", True),
    ("yes/no, colour", "Yes", "No", False),
    ("yes/no, colour", "No", "Maybe", False),
])
def test_an_answer_is_right_only_when_it_says_the_truth(tmp_path, fmt, truth, answer, ok):
    options = OPTIONS if fmt.endswith("options") else {}
    assert right(Item(fmt, "q", "c", tmp_path / "x.png", truth, options), answer) is ok


@pytest.mark.parametrize("text", [True, False])
def test_a_model_is_asked_every_item_in_words_or_pictures(tmp_path, text):
    make_tiny_llava(tmp_path / "model", seed=0)
    tally = ask(tmp_path / "model", items(tmp_path, 2), text)
    assert list(tally) == list(FORMATS)
    for row in tally.values():
        assert row["n"] == 2 and 0 <= row["right"] <= 2 and 0 <= row["yes"] <= 2


def test_a_runs_directory_without_the_tiny_models_is_a_one_line_error(tmp_path, capsys):
    from repro.bench.skills import main

    with pytest.raises(SystemExit, match="manifest.json: missing"):
        main(["--runs-dir", str(tmp_path)])
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "manifest.json").write_text('{"stages": {}}')
    with pytest.raises(SystemExit, match="no stage 'llm'"):
        main(["--runs-dir", str(tmp_path)])
    assert capsys.readouterr().out == ""  # nothing printed before the error
