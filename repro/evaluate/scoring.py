"""Turn responses into verdicts and metrics: judges for safety, extraction for helpfulness.

Used by both stages (``evaluate/benchmark`` and the re-judging ``evaluate/judge``), so the two
can never score differently. ``keyword_refusal`` is computed for every sample as a secondary
signal next to the configured judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.evaluate import metrics as M
from repro.evaluate.extract import extract_option, extract_yes_no, extractor_sha256
from repro.evaluate.judges import JUDGES, JudgeItem, ModelJudge
from repro.evaluate.judges.keyword_refusal import KeywordRefusalJudge


def _world_refusal(marker: dict[str, Any], samples: list[dict[str, Any]]) -> str | None:
    """The refusal sentence of the dataset's world: its marker, a record's meta, or (for the
    kit's own synthetic world, whose marker does not carry it) the generator's constant."""
    found = marker.get("refusal") or next(
        (s["meta"]["refusal"] for s in samples if s.get("meta", {}).get("refusal")), None)
    if not found and marker.get("source") == "synthetic":
        from repro.data.synthetic.world import REFUSAL

        found = REFUSAL
    return found


def check_judge(ctx, bench) -> None:
    """Fail before generating (hours at paper scale) if the judge is unknown or its model unbound."""
    if bench.scorer != "safety":
        return
    name = ctx.param("judge", bench.judge)
    if not name:
        raise InputError(f"benchmark {bench.name}: no judge configured (param 'judge')")
    cls = JUDGES.get(name)
    if isinstance(cls, type) and issubclass(cls, ModelJudge) and name != "openai_api":
        ctx.input("judge")


def make_judge(ctx, name: str, marker: dict[str, Any], samples: list[dict[str, Any]]):
    """Build judge ``name``; a model judge runs on the model bound as input ``judge``."""
    from repro.evaluate.backends import read_model_info, stage_backend

    cls = JUDGES.get(name)
    options = dict(ctx.param("judge_options", None) or {})
    if name == "exact" and "refusal" not in options:
        options["refusal"] = _world_refusal(marker, samples)
    if isinstance(cls, type) and issubclass(cls, ModelJudge) and name != "openai_api":
        judge_dir = ctx.input("judge")
        backend = stage_backend(ctx, ctx.param("judge_backend", ctx.param("backend", "hf")),
                                judge_dir, ctx.param("judge_batch_size", ctx.param("batch_size", 8)))
        judge = cls(backend=backend, seed=ctx.seed, **options)
        card = {k: v for k, v in read_model_info(judge_dir).items() if k != "template"}
        return judge, {**judge.describe(), "model_card": card, "backend": backend.info()}
    judge = cls(seed=ctx.seed, **options)
    return judge, judge.describe()


def _keyword(samples: list[dict[str, Any]]) -> None:
    items = [JudgeItem(s.get("judge_prompt", ""), s["response"], None, s.get("harmful")) for s in samples]
    for sample, verdict in zip(samples, KeywordRefusalJudge().judge(items)):
        sample["keyword_refusal"] = bool(verdict.refusal)
        sample["keyword_match"] = verdict.raw


def _judge(ctx, bench, samples, images: dict[str, Path | None], marker) -> int:
    name = ctx.param("judge", bench.judge)
    if not name:
        raise InputError(f"benchmark {bench.name}: no judge configured (param 'judge')")
    judge, described = make_judge(ctx, name, marker, samples)
    uses_image = getattr(judge, "uses_image", False)
    if uses_image and any(s.get("image_sha256") and images.get(s["id"]) is None for s in samples):
        raise InputError(f"judge {name!r} reads images: bind the dataset as input 'data'")
    items = [JudgeItem(s["judge_prompt"], s["response"], images.get(s["id"]) if uses_image else None,
                       s.get("harmful")) for s in samples]
    verdicts = judge.judge(items)
    for sample, verdict in zip(samples, verdicts):
        sample["verdict"] = {k: v for k, v in verdict.as_dict().items() if k != "raw"}
        sample["judge_raw"] = verdict.raw
    ctx.protocol("judge", described)
    ctx.protocol("secondary_judge", KeywordRefusalJudge().describe())
    failures = sum(not v.parsed for v in verdicts)
    if failures:
        ctx.log.warning("judge %s: %d of %d outputs could not be parsed (excluded from rates)",
                        name, failures, len(verdicts))
    return failures


def _extract(bench, samples) -> None:
    for s in samples:
        if bench.scorer == "multiple_choice":
            letter, method = extract_option(s["response"], s["options"])
        else:
            letter = extract_yes_no(s["response"])
            method = "yes_no" if letter is not None else "none"
        s.update(extracted=letter, extract_method=method, correct=letter == s["answer"])
        s["verdict"] = "correct" if s["correct"] else "wrong"


def score(ctx, bench, samples: list[dict[str, Any]], images: dict[str, Path | None],
          marker: dict[str, Any]) -> dict[str, Any]:
    """Annotate ``samples`` in place; returns metrics, by_category and the parse-failure count."""
    _keyword(samples)
    if bench.scorer == "safety":
        failures = _judge(ctx, bench, samples, images, marker)
        metrics, by_category = M.safety_metrics(samples, bench.breakdown)
        return {"metrics": metrics, "by_category": by_category, "parse_failures": failures}
    _extract(bench, samples)
    fn = extract_option if bench.scorer == "multiple_choice" else extract_yes_no
    ctx.protocol("extractor", {"name": fn.__name__, "sha256": extractor_sha256(fn)})
    if bench.scorer == "multiple_choice":
        metrics, by_category = M.multiple_choice_metrics(samples, bench.circular)
    else:
        metrics, by_category = M.mme_metrics(samples, bench.cognition)
    return {"metrics": metrics, "by_category": by_category, "parse_failures": 0}
