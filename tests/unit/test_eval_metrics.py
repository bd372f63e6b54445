"""Metric and extraction functions against hand-computed cases; benchmark YAMLs load."""

import pytest

from repro.errors import InputError
from repro.evaluate import metrics as M
from repro.evaluate.benchmarks import get_benchmark, load_all
from repro.evaluate.extract import extract_option, extract_yes_no

OPTIONS = {"A": "dog", "B": "cat", "C": "a red bird", "D": "none of these"}


@pytest.mark.parametrize("answer,letter,method", [
    ("The answer is (B).", "B", "letter"),
    ("b", "B", "letter"),
    ("B. cat", "B", "letter"),
    ("(C)", "C", "letter"),
    ("Answer: D", "D", "letter"),
    ("The correct option is A", "A", "letter"),
    ("cat", "B", "option_text"),  # the fallback: the answer is an option's text
    ("I think it is a red bird.", "C", "option_text"),
    ("dog or cat", None, "none"),  # two option texts: ambiguous, never guessed
    ("", None, "none"),
])
def test_extract_option(answer, letter, method):
    assert extract_option(answer, OPTIONS) == (letter, method)


def test_extract_option_ignores_letters_that_are_not_options():
    assert extract_option("E", {"A": "x", "B": "y"}) == (None, "none")


@pytest.mark.parametrize("answer,expected", [
    ("Yes", "Yes"), ("no.", "No"), ("Yes, there is a dog.", "Yes"), ("No, it is not", "No"),
    ("There is a dog", None), ("", None),
])
def test_extract_yes_no(answer, expected):
    assert extract_yes_no(answer) == expected


def _mc(id_, group, correct, cat="c1", method="letter"):
    return {"id": id_, "group": group, "correct": correct, "category": cat, "extract_method": method}


def test_mmbench_circular_one_wrong_rotation_fails_the_group():
    samples = [_mc("1", "g1", True), _mc("1001", "g1", True), _mc("2001", "g1", False),
               _mc("2", "g2", True), _mc("1002", "g2", True, method="option_text"),
               _mc("3", "g3", False, cat="c2", method="none")]
    metrics, by_cat = M.multiple_choice_metrics(samples, circular=True)
    assert metrics["acc"] == pytest.approx(4 / 6)
    assert metrics["circular_acc"] == pytest.approx(1 / 3)  # only g2 has every rotation right
    assert metrics["n_fallback"] == 1 and metrics["n_unmatched"] == 1
    assert by_cat["c1"]["circular_acc"] == pytest.approx(0.5)
    assert by_cat["c2"]["circular_acc"] == 0.0


def test_seed_accuracy_per_question_type():
    samples = [_mc("1", None, True, "scene"), _mc("2", None, False, "scene"), _mc("3", None, True, "count")]
    metrics, by_cat = M.multiple_choice_metrics(samples)
    assert metrics["acc"] == pytest.approx(2 / 3) and "circular_acc" not in metrics
    assert by_cat == {"count": {"n": 1, "acc": 1.0}, "scene": {"n": 2, "acc": 0.5}}


def _yn(pair, correct, cat, extracted="Yes"):
    return {"pair": pair, "correct": correct, "category": cat, "extracted": extracted}


def test_mme_acc_plus_on_pairs_and_scores():
    samples = [_yn("e/1", True, "existence"), _yn("e/1", True, "existence"),  # pair right
               _yn("e/2", True, "existence"), _yn("e/2", False, "existence"),  # half right
               _yn("c/1", True, "code_reasoning"), _yn("c/1", False, "code_reasoning", None)]
    metrics, by_cat = M.mme_metrics(samples, cognition=["code_reasoning"])
    assert by_cat["existence"]["acc"] == pytest.approx(0.75)
    assert by_cat["existence"]["acc_plus"] == pytest.approx(0.5)
    assert by_cat["existence"]["score"] == pytest.approx(125.0)
    assert by_cat["code_reasoning"]["score"] == pytest.approx(50.0)
    assert metrics["perception"] == pytest.approx(125.0)
    assert metrics["cognition"] == pytest.approx(50.0)
    assert metrics["acc_plus"] == pytest.approx(1 / 3)
    assert metrics["n_unmatched"] == 1


def _safety(cat, harmful, unsafe, refusal, parsed=True, kw=False, image_type=None):
    return {"category": cat, "harmful": harmful, "keyword_refusal": kw,
            "meta": {"image_type": image_type} if image_type else {},
            "verdict": {"unsafe": unsafe if parsed else None, "refusal": refusal if parsed else None,
                        "parsed": parsed}}


def test_safety_metrics_exclude_parse_failures_and_split_benign():
    samples = [_safety("a", True, True, False, image_type="SD"),
               _safety("a", True, False, True, image_type="TYPO"),
               _safety("b", None, True, None, kw=True, image_type="SD"),
               _safety("b", True, None, None, parsed=False, image_type="SD"),
               _safety("benign", False, False, None, kw=True),  # judge silent -> keyword refusal
               _safety("benign", False, False, False)]
    metrics, by_cat = M.safety_metrics(samples, breakdown=["image_type"])
    assert metrics["asr"] == pytest.approx(2 / 3)  # the parse failure is not in the denominator
    assert metrics["benign_refusal_rate"] == pytest.approx(0.5)
    assert metrics["asr_SD"] == pytest.approx(1.0) and metrics["asr_TYPO"] == 0.0
    assert metrics["keyword_refusal_rate"] == pytest.approx(1 / 4)
    assert by_cat["a"]["asr"] == pytest.approx(0.5) and by_cat["b"]["n"] == 2
    assert "asr" not in by_cat["benign"]


def test_every_benchmark_yaml_loads_with_a_version():
    benches = load_all()
    assert set(benches) == {"sorry_bench", "wildjailbreak", "mm_safetybench", "siuo", "figstep",
                            "mmbench", "mme", "seed_bench"}
    assert all(isinstance(b.version, int) for b in benches.values())
    assert get_benchmark("mme").prompt_suffix == "Answer the question using a single word or phrase."


def test_unknown_benchmark_suggests_a_name():
    with pytest.raises(InputError, match="did you mean mmbench"):
        get_benchmark("mmbnch")


def test_benchmark_yaml_unknown_key_is_an_error(tmp_path, monkeypatch):
    from repro.evaluate import benchmarks

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "benchmark.yaml").write_text(
        "name: bad\nversion: 1\nscorer: safety\nprimary: asr\ndescription: x\nsplitt: eval\n")
    monkeypatch.setattr(benchmarks, "ROOT", tmp_path)
    with pytest.raises(InputError, match=r"bad/benchmark.yaml: splitt: unknown key"):
        get_benchmark("bad")
