"""The experiment loader refuses hostile or mistaken input in one line, before anything runs
(issue 19, items 9-12): YAML alias bombs and recursive aliases, ambiguous `--set` values,
out-of-range seeds and nested params, names that would escape or confuse the runs directory."""

from __future__ import annotations

import time

import pytest

from repro.config.load import load_experiment
from repro.errors import InputError

BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n")


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg


def test_set_values_are_yaml_1_2(experiments):
    exp = load_experiment("chain", "tiny", ("a.params.repeat=010",), root=experiments)
    assert exp.stages["a"].params["repeat"] == 10  # YAML 1.1 read 010 as octal 8
    exp = load_experiment("chain", "tiny", ("b.params.text='yes #1'",), root=experiments)
    assert exp.stages["b"].params["text"] == "yes #1"  # quoted: taken literally
    exp = load_experiment("chain", "tiny", ("b.params.text=yes", "a.params.text=2024-06-01"), root=experiments)
    assert (exp.stages["b"].params["text"], exp.stages["a"].params["text"]) == ("yes", "2024-06-01")


@pytest.mark.parametrize("item, parts", [
    ("b.params.text=", ["empty value", "KEY=null"]),
    ("b.params.text=  ", ["empty value"]),
    ("b.params.text=hello #world", ["'#world' after the value", "quote the value"]),
    ("a.params.repeat=3 # three", ["'# three' after the value"]),
    ("b.params.text=a\nb", ["one line"]),
    ("b.params.text=" + "x" * 5000, ["one line of at most"]),
    ("b.params.text=[a, [b, c]", ["malformed YAML"]),
    ("b..text=x", ["empty key"]),
])
def test_bad_set_values_are_errors_never_silent(experiments, item, parts):
    with pytest.raises(InputError) as err:
        load_experiment("chain", "tiny", (item,), root=experiments)
    _one_line(err, *parts)


def test_an_alias_bomb_in_set_is_refused_at_once(experiments):
    item = "b.params.text={" + BOMB.strip().replace("\n", ", ") + "}"
    assert len(item) < 400
    t0 = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_experiment("chain", "tiny", (item,), root=experiments)
    assert time.perf_counter() - t0 < 5
    _one_line(err, "expands to more than")


def test_an_alias_bomb_in_an_experiment_file_is_refused_at_once(experiments):
    (experiments / "bomb.yaml").write_text("schema: 1\n" + BOMB + "stages: {s: {kind: test/write_text, params: {text: *g}}}\n")
    assert (experiments / "bomb.yaml").stat().st_size < 500
    t0 = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_experiment("bomb", "tiny", root=experiments)
    assert time.perf_counter() - t0 < 5
    _one_line(err, "bomb.yaml", "expands to more than")


@pytest.mark.parametrize("text", ["schema: 1\nstages: &s {a: {kind: test/write_text, params: {text: *s}}}\n",
                                  "schema: 1\nx: &x [*x]\nstages: {}\n"])
def test_a_recursive_alias_is_one_line(experiments, text):
    (experiments / "loop.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        load_experiment("loop", "tiny", root=experiments)
    _one_line(err, "loop.yaml", "recursive YAML alias")


def test_a_recursive_alias_in_set_is_one_line(experiments):
    with pytest.raises(InputError) as err:
        load_experiment("chain", "tiny", ("b.params.text=&x [*x]",), root=experiments)
    _one_line(err, "recursive YAML alias")


@pytest.mark.parametrize("seed", ["-1", str(2**77), "1.5", "true"])
def test_seeds_must_fit_32_bits(experiments, seed):
    with pytest.raises(InputError) as err:
        load_experiment("chain", "tiny", (f"seed={seed}",), root=experiments)
    _one_line(err, "key 'seed'", "[0, 4294967295]")
    (experiments / "seeded.yaml").write_text(
        f"schema: 1\nstages: {{a: {{kind: test/write_text, params: {{text: x}}, seed: {seed}}}}}\n")
    with pytest.raises(InputError) as err:
        load_experiment("seeded", "tiny", root=experiments)
    _one_line(err, "seeded.yaml", "stage 'a'", "key 'seed'")


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "a.b", "a~b", "a@b", "a b", "-a"])
def test_stage_names_are_checked_at_load(experiments, name):
    (experiments / "named.yaml").write_text(
        f"schema: 1\nstages: {{'{name}': {{kind: test/write_text, params: {{text: x}}}}}}\n")
    with pytest.raises(InputError) as err:
        load_experiment("named", "tiny", root=experiments)
    _one_line(err, "named.yaml", "stage name", repr(name))


@pytest.mark.parametrize("name", ["../outside", "..", "a/b", "chain.yaml", ""])
def test_experiment_names_cannot_leave_the_experiments_or_runs_dir(experiments, name):
    (experiments.parent / "outside.yaml").write_text(  # a real file one level up: still refused
        "schema: 1\nstages: {a: {kind: test/write_text, params: {text: x}}}\n")
    with pytest.raises(InputError) as err:
        load_experiment(name, "tiny", root=experiments)
    _one_line(err, f"experiment {name!r}", "expected a name of letters")


def test_an_include_cannot_leave_the_experiments_dir(experiments, tmp_path):
    (tmp_path / "outside.yaml").write_text("schema: 1\n")
    (experiments / "escape.yaml").write_text("schema: 1\ninclude: ['../outside.yaml']\n"
                                             "stages: {a: {kind: test/write_text, params: {text: x}}}\n")
    with pytest.raises(InputError) as err:
        load_experiment("escape", "tiny", root=experiments)
    _one_line(err, "outside the experiments folder")


def test_sweep_values_become_checked_names(experiments):
    (experiments / "swept.yaml").write_text(
        "schema: 1\nstages: {a: {kind: test/write_text, sweep: {text: [ok, 'x/../y']}}}\n")
    with pytest.raises(InputError) as err:
        load_experiment("swept", "tiny", root=experiments)
    _one_line(err, "stage name", "a@x_.._y")


def test_a_consumer_may_be_declared_before_its_swept_producer(experiments):
    (experiments / "order.yaml").write_text(
        "schema: 1\nstages:\n  b: {kind: test/concat, inputs: {x: a}}\n"
        "  a: {kind: test/write_text, sweep: {text: [u, v]}}\n")
    exp = load_experiment("order", "tiny", root=experiments)
    assert set(exp.stages) == {"a@u", "a@v", "b@u", "b@v"}


def test_a_set_on_a_stage_the_experiment_does_not_run_is_an_error(experiments):
    (experiments / "_base" / "lib.yaml").write_text(
        "schema: 1\nstages: {unused: {kind: test/write_text, params: {text: x}}}\n")
    (experiments / "uses.yaml").write_text(
        "schema: 1\ninclude: [_base/lib.yaml]\nstages: {a: {kind: test/write_text, params: {text: y}}}\n")
    assert set(load_experiment("uses", "tiny", root=experiments).stages) == {"a"}  # unused: not run
    with pytest.raises(InputError) as err:
        load_experiment("uses", "tiny", ("unused.params.text=z",), root=experiments)
    _one_line(err, "stage 'unused' is not part of experiment 'uses'")
