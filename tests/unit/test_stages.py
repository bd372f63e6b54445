"""Stage-kind descriptors (repro/stages/): one place per kind for its params (checked once, at
load), image, GPUs, disk, cost model and report embedding."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.errors import InputError
from repro.pipeline.context import StageContext
from repro.stages import KINDS, STAGE_KINDS, describe
from repro.stages.kind import REQUIRED

DECLARED = sorted(k for k in KINDS if not k.startswith("test/"))


@pytest.mark.parametrize("name", DECLARED)
def test_every_kind_declares_its_facts_and_its_target_exists(name):
    kind = KINDS[name]
    module, _, attr = kind.target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert kind.params is not None and kind.doc
    assert len({p.name for p in kind.params}) == len(kind.params), "a param declared twice"
    assert STAGE_KINDS.origin(name) == kind.target


def _source_default(source: str, name: str):
    module, _, attr = source.partition(":")
    found = getattr(importlib.import_module(module), attr)
    if dataclasses.is_dataclass(found):
        return {f.name: f.default for f in dataclasses.fields(found)}[name]
    return found


@pytest.mark.parametrize("name", DECLARED)
def test_declared_defaults_equal_their_sources(name):
    """A default that names its source as "module:attr" (a transformers/TRL config class or a
    kit constant) equals it; prose sources (the paper, LLaVA's scripts) are read by people."""
    for p in KINDS[name].params:
        assert p.source, p.name
        if ":" in p.source and " " not in p.source.partition(":")[0]:
            assert _source_default(p.source, p.name) == p.default, f"{name}: {p.name} vs {p.source}"


def test_declared_choices_are_the_libraries_values():
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from repro.stages.train import OPTIMIZERS, SCHEDULERS
    from repro.train.vl_adapt import GROUPS_TRAINED

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}
    assert set(OPTIMIZERS) <= {o.value for o in OptimizerNames}
    assert set(describe("train/vl_adapt").param("mode").choices) == set(GROUPS_TRAINED)


def test_a_misspelt_param_fails_at_load_naming_it_and_the_closest(capsys):
    with pytest.raises(InputError) as err:
        load_experiment("smoke", "tiny", ("stage2.params.learnig_rate=0.1",))
    msg = str(err.value)
    assert "unknown param 'learnig_rate'" in msg and "did you mean 'learning_rate'?" in msg and "\n" not in msg
    exp = load_experiment("smoke", "tiny", ("stage2.params.learning_rate=1e-3",))
    assert exp.stages["stage2"].params["learning_rate"] == 0.001


@pytest.mark.parametrize("override, message", [
    ("stage2.params.warmup_ratio=1.0", "'warmup_ratio': must be in [0,1)"),  # passed load, failed at run
    ("stage2.params.learning_rate=.nan", "'learning_rate': must be finite"),
    ("stage2.params.max_steps=-5", "'max_steps': must be >= -1"),
    ("vlm.params.vision_config.patch_size=-8", "'vision_config.patch_size': must be >= 1"),
    ("vlm.params.vision_config.hidden_size=.nan", "'vision_config.hidden_size': must be finite"),
    ("vlm.params.vision_config.colour=1", "unknown param 'vision_config.colour'"),
    ("recipes.safety_eval.sampling.temperature=-0.5", "'sampling.temperature': must be >= 0"),
    ("recipes.safety_eval.sampling.top_p=.nan", "'sampling.top_p': must be finite"),
    ("recipes.safety_eval.backend=vlm", "unknown value 'vlm'; did you mean 'vllm'?"),
    ("recipes.safety_eval.judge=wildgaurd", "did you mean 'wildguard'?"),
    ("stage2.params.deepspeed=zero9", "'deepspeed': unknown value 'zero9'"),
    ("stage2.params.launch=accelerate_3gpu", "'launch': unknown value"),
])
def test_param_values_are_checked_at_load(override, message):
    with pytest.raises(InputError, match=None) as err:
        load_experiment("smoke", "tiny", (override,))
    assert message in str(err.value)


def test_a_stage_reading_an_undeclared_param_fails(tmp_path):
    ctx = StageContext(experiment="e", name="s", kind="train/dpo", params={"beta": 0.2}, inputs={},
                       out=tmp_path, seed=0, profile="tiny")
    assert ctx.param("beta") == 0.2 and ctx.param("margin_eval_pairs") == 64  # the declared default
    with pytest.raises(InputError, match="reads param 'colour', which kind train/dpo does not declare"):
        ctx.param("colour", None)
    with pytest.raises(InputError, match="missing param 'mode'"):
        StageContext(experiment="e", name="s", kind="train/vl_adapt", params={}, inputs={}, out=tmp_path,
                     seed=0, profile="tiny").param("mode")


def test_kind_facts_come_from_the_descriptor():
    from repro.doctor import Needs, disk_estimate
    from repro.executors import image_role
    from repro.executors.resources import stage_resources

    assert image_role("evaluate/judge") == "eval" and image_role("train/dpo") == "train"
    assert stage_resources("train/vl_adapt", {"launch": "accelerate_4gpu"}, "paper").gpus == 4
    assert stage_resources("merge/linear", {}, "paper").gpus == 0
    assert stage_resources("evaluate/benchmark", {}, "paper").gpus == 1
    assert stage_resources("evaluate/benchmark", {}, "tiny").gpus == 0
    assert disk_estimate(Needs("paper", kinds=["train/vl_adapt", "evaluate/benchmark"])) == pytest.approx(13.6 + 85.0)
    assert describe("report/table").report == ("table.md", ("figure.png",))


def test_every_param_is_documented_for_people():
    lines = [p.describe() for k in DECLARED for p in KINDS[k].params]
    assert any(line.startswith("learning_rate: a number >0 = 2e-05") for line in lines)
    assert all(" = " in line for line in lines)
    assert all(p.default is not REQUIRED or p.source == "kit" for k in DECLARED for p in KINDS[k].params)


def test_architecture_doc_says_how_to_add_a_param():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    assert "repro/stages/" in doc and 'P("' in doc
