"""Turn responses into verdicts and metrics: judges for safety, extraction for helpfulness.

Used by both stages (``evaluate/benchmark`` and the re-judging ``evaluate/judge``), so the two
can never score differently. ``keyword_refusal`` is computed for every sample as a secondary
signal next to the configured judge. Stage params read here: ``judge``, ``judge_options``,
``judge_backend``, ``judge_batch_size``, ``unparsed`` and ``extractor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.data.synthetic.world import REFUSAL
from repro.errors import InputError
from repro.evaluate import metrics as M
from repro.evaluate.backends import read_model_info, stage_backend
from repro.evaluate.benchmarks import EXTRACTORS, UNPARSED
from repro.evaluate.extract import EXTRACTORS as EXTRACT_FNS
from repro.evaluate.extract import extract_yes_no, extractor_sha256
from repro.evaluate.judges import JUDGES, JudgeItem
from repro.evaluate.judges.keyword_refusal import KeywordRefusalJudge


def _world_refusal(marker: dict[str, Any], samples: list[dict[str, Any]]) -> str | None:
    """The refusal sentence of the dataset's world: its marker, a record's meta, or (for the
    kit's own synthetic world, whose marker does not carry it) the generator's constant."""
    found = marker.get("refusal") or next(
        (s["meta"]["refusal"] for s in samples if s.get("meta", {}).get("refusal")), None)
    if not found and marker.get("source") == "synthetic":
        found = REFUSAL
    return found


def judge_name(ctx, bench) -> str:
    name = ctx.param("judge", bench.judge)
    if not name:
        raise InputError(f"benchmark {bench.name}: no judge configured (param 'judge')")
    return name


def check_judge(ctx, bench) -> None:
    """Fail before generating (hours at paper scale) if the judge is unknown, its model input is
    unbound, or a scoring param has a value the benchmark does not take."""
    if bench.scorer != "safety":
        extractor(ctx, bench)
        return
    cls = JUDGES.get(judge_name(ctx, bench))
    options = dict(ctx.param("judge_options", None) or {})
    if getattr(cls, "needs_model", False):
        ctx.input("judge")
        cls(seed=ctx.seed, **options)  # its options, now (no model is loaded)
    elif hasattr(cls, "default_model"):  # a chat judge: its options, key and endpoint, now
        cls(seed=ctx.seed, **options).endpoint.check()
    unparsed_policy(ctx, bench)


def unparsed_policy(ctx, bench) -> str:
    value = ctx.param("unparsed", bench.unparsed)
    if value not in UNPARSED:
        raise InputError(f"stage {ctx.name!r}: param unparsed: {value!r} not one of {', '.join(UNPARSED)}")
    if value == "official" and bench.metrics_module() is None:
        raise InputError(f"stage {ctx.name!r}: param unparsed: benchmark {bench.name} has no official "
                         "scorer to follow; use 'exclude'")
    return value


def extractor(ctx, bench) -> str:
    value = ctx.param("extractor", bench.extractor)
    if value not in EXTRACTORS:
        raise InputError(f"stage {ctx.name!r}: param extractor: {value!r} not one of {', '.join(EXTRACTORS)}")
    return value


def make_judge(ctx, name: str, marker: dict[str, Any], samples: list[dict[str, Any]]):
    """Build judge ``name``; a model judge runs on the model bound as input ``judge``.
    Returns ``(judge, extra)``: what to record beside the judge's own ``describe()``."""
    cls = JUDGES.get(name)
    options = dict(ctx.param("judge_options", None) or {})
    if name == "exact" and "refusal" not in options:
        options["refusal"] = _world_refusal(marker, samples)
    if getattr(cls, "needs_model", False):
        judge_dir = ctx.input("judge")
        backend = stage_backend(ctx, ctx.param("judge_backend", ctx.param("backend", "hf")),
                                judge_dir, ctx.param("judge_batch_size", ctx.param("batch_size", 8)))
        card = {k: v for k, v in read_model_info(judge_dir).items() if k != "template"}
        return cls(backend=backend, seed=ctx.seed, **options), {"model_card": card, "backend": backend.info()}
    return cls(seed=ctx.seed, **options), {}


def _keyword(samples: list[dict[str, Any]]) -> None:
    items = [JudgeItem(s.get("judge_prompt", ""), s["response"], None, s.get("harmful")) for s in samples]
    for sample, verdict in zip(samples, KeywordRefusalJudge().judge(items)):
        sample["keyword_refusal"] = bool(verdict.refusal)
        sample["keyword_match"] = verdict.raw


def _judge(ctx, bench, samples, images: dict[str, Path | None], marker) -> tuple[int, dict[str, Any]]:
    name = judge_name(ctx, bench)
    judge, extra = make_judge(ctx, name, marker, samples)
    uses_image = getattr(judge, "uses_image", False)
    if uses_image and any(s.get("image_sha256") and images.get(s["id"]) is None for s in samples):
        raise InputError(f"judge {name!r} reads images: bind the dataset as input 'data'")
    items = [JudgeItem(s["judge_prompt"], s["response"], images.get(s["id"]) if uses_image else None,
                       s.get("harmful"), s.get("category", ""), dict(s.get("meta") or {})) for s in samples]
    verdicts = judge.judge(items)
    calls = bool(getattr(judge, "refusal_calls", False))
    for sample, verdict in zip(samples, verdicts):
        sample["verdict"] = {**{k: v for k, v in verdict.as_dict().items() if k != "raw"},
                             "refusal_calls": calls}
        sample["judge_raw"] = verdict.raw
    described = {**judge.describe(), **extra}  # after judging: chat judges record what was served
    ctx.protocol("judge", described)
    ctx.protocol("secondary_judge", KeywordRefusalJudge().describe())
    failures = sum(not v.parsed for v in verdicts)
    if failures:
        ctx.log.warning("judge %s: %d of %d outputs could not be parsed (counted as param unparsed=%s says)",
                        name, failures, len(verdicts), unparsed_policy(ctx, bench))
    return failures, {"name": name, "model_id": described.get("model_id")}


def _extract(bench, samples, fn) -> None:
    for s in samples:
        if bench.scorer == "multiple_choice":
            letter, method = fn(s["response"], s["options"])
        else:
            letter = extract_yes_no(s["response"])
            method = "yes_no" if letter is not None else "none"
        s.update(extracted=letter, extract_method=method, correct=letter == s["answer"])
        s["verdict"] = "correct" if s["correct"] else "wrong"


def score(ctx, bench, samples: list[dict[str, Any]], images: dict[str, Path | None],
          marker: dict[str, Any]) -> dict[str, Any]:
    """Annotate ``samples`` in place; returns metrics, by_category, the parse-failure count and
    the judge (name, model id) that scored them."""
    _keyword(samples)
    if bench.scorer == "safety":
        failures, judge = _judge(ctx, bench, samples, images, marker)
        unparsed = unparsed_policy(ctx, bench)
        module = bench.metrics_module()
        if module is not None:
            metrics, by_category = module.metrics(samples, bench, unparsed)
        else:
            metrics, by_category = M.safety_metrics(samples, bench.breakdown, unparsed)
        ctx.protocol("scoring", {"unparsed": unparsed, "primary": bench.primary,
                                 "metrics": f"benchmarks/{bench.name}/score.py" if module is not None
                                 else "repro.evaluate.metrics.safety_metrics",
                                 "source": getattr(module, "SOURCE", None)})
        return {"metrics": metrics, "by_category": by_category, "parse_failures": failures, "judge": judge}
    if bench.scorer == "multiple_choice":
        name = extractor(ctx, bench)
        fn = EXTRACT_FNS[name]
    else:
        name, fn = "mme_yes_no", extract_yes_no
    _extract(bench, samples, fn)
    ctx.protocol("extractor", {"name": name, "function": fn.__name__, "sha256": extractor_sha256(fn)})
    if bench.scorer == "multiple_choice":
        metrics, by_category = M.multiple_choice_metrics(samples, bench.circular)
    else:
        metrics, by_category = M.mme_metrics(samples, bench.cognition)
    return {"metrics": metrics, "by_category": by_category, "parse_failures": 0,
            "judge": {"name": name, "model_id": None}}
