"""Stages ``evaluate/benchmark`` (generate, judge, score) and ``evaluate/judge`` (re-judge).

Commands:
  CPU tiny:  repro run table1 --profile tiny          (backend hf, judge exact on the synthetic world)
  1 GPU:     repro run table1 --set eval.params.backend=vllm
  re-judge:  an ``evaluate/judge`` stage with input ``responses`` = an evaluation stage, e.g.
             ``{kind: evaluate/judge, inputs: {responses: eval_sorry, judge: wildguard_model},
               params: {judge: wildguard}}``

Outputs: ``samples.jsonl`` (one line per item), ``metrics.json`` and ``protocol.json``.
Heavy imports (torch, transformers, vllm) happen inside the backends, only when a stage runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.evaluate import scoring
from repro.evaluate.benchmarks import get_benchmark
from repro.evaluate.prompts import (check_records, item_record, judge_text, sha256_bytes,
                                    sha256_file, user_text)

SAMPLES, METRICS, PROTOCOL = "samples.jsonl", "metrics.json", "protocol.json"


# ------------------------------------------------------------------ evaluate/benchmark
def judge_prompt_meta(ctx, bench) -> tuple[str, ...]:
    """Record meta keys the judge reads the request from, first found wins (param
    ``judge_prompt_meta``, default the benchmark's); an empty list means the model's own prompt."""
    keys = ctx.param("judge_prompt_meta", list(bench.judge_prompt_meta))
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise InputError(f"stage {ctx.name!r}: param judge_prompt_meta: expected a list of meta keys, "
                         f"got {keys!r}")
    return tuple(keys)


def _load_records(ctx, bench):
    from repro.data import open_dataset

    dataset = open_dataset(ctx.input("data"))
    # the benchmark's default split applies to its own dataset; another dataset standing in
    # (the synthetic world) uses its loader's default unless the stage names one
    split = ctx.param("split", bench.split if dataset.name == bench.name else None)
    records = dataset.records(split)
    check_records(bench, records, f"{dataset.root.name}/DATASET.json ({dataset.name})")
    if not records:
        raise InputError(f"dataset {dataset.name}: split {split!r} has no records")
    return dataset, split, records


def _model_dir(ctx) -> Path:
    """The model input, or one of its kept training checkpoints (param ``checkpoint``: "step-200")."""
    model_dir = ctx.input("model")
    checkpoint = ctx.param("checkpoint", None)
    if checkpoint is None:
        return model_dir
    path = model_dir / "checkpoints" / str(checkpoint)
    if "/" in str(checkpoint) or not (path / "repro_model.json").is_file():
        kept = sorted(p.name for p in (model_dir / "checkpoints").glob("step-*")) if (model_dir / "checkpoints").is_dir() else []
        raise InputError(f"stage {ctx.name!r}: param checkpoint: {checkpoint!r} is not a kept checkpoint "
                         f"of input 'model' (kept: {', '.join(kept) or 'none'})")
    return path


def _generation(ctx, bench, records) -> tuple[list[str], list[str]]:
    """Render prompts with the model's chat template and generate; returns (responses, prompts)."""
    from repro.evaluate.backends import Request, read_model_info, resolve_sampling, stage_backend
    from repro.models.templates import get_template, prompt_text

    model_dir = _model_dir(ctx)
    info = read_model_info(model_dir)
    if info["architecture"] == "causal_lm" and any(r.image is not None for r in records):
        raise InputError(f"{model_dir.name}/repro_model.json: architecture: causal_lm cannot be "
                         f"evaluated on {bench.name}, whose items have images")
    if not info.get("template"):
        raise InputError(f"{model_dir.name}/repro_model.json: template: missing")
    template = get_template(info["template"])
    sampling = resolve_sampling(bench.sampling, ctx.param("sampling", None), ctx.seed)
    backend = stage_backend(ctx, ctx.param("backend", "hf"), model_dir, ctx.param("batch_size", 8))
    prompts = [prompt_text(template, user_text(bench, r), with_image=r.image is not None)
               for r in records]
    ctx.seed_everything()
    responses = backend.generate([Request(p, r.image) for p, r in zip(prompts, records)], sampling)
    ctx.protocol("chat_template", template.describe())  # name, system prompt, digest
    ctx.protocol("sampling", sampling)
    ctx.protocol("backend", backend.info())
    return responses, prompts


def benchmark_stage(ctx) -> None:
    """Generate answers for one benchmark with one model, judge or extract, and score them."""
    from repro.models.images import IMAGE_PREPROCESSING

    bench = get_benchmark(ctx.param("benchmark"))
    scoring.check_judge(ctx, bench)
    meta_keys = judge_prompt_meta(ctx, bench)
    dataset, split, records = _load_records(ctx, bench)
    n_total = len(records)
    limit = ctx.param("limit", None)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"stage {ctx.name!r}: param limit: {limit!r} must be an integer >= 1 or null")
        records = records[:limit]  # the first items in dataset order: the same subset every run
    responses, prompts = _generation(ctx, bench, records)
    samples = []
    for record, prompt, response in zip(records, prompts, responses):
        image_sha = sha256_file(record.image)
        sample = item_record(record, image_sha)
        sample.update(prompt=prompt, prompt_sha256=sha256_bytes(prompt.encode()),
                      image_sha256=image_sha, response=response,
                      response_sha256=sha256_bytes(response.encode()))
        if bench.scorer == "safety":
            sample["judge_prompt"], sample["judge_prompt_from"] = judge_text(record, meta_keys)
        samples.append(sample)
    ctx.protocol("image_preprocessing", IMAGE_PREPROCESSING)
    ctx.protocol("dataset", {"loader": dataset.name, "split": split, "limit": limit})
    if bench.scorer == "safety":
        read = sorted({s["judge_prompt_from"] for s in samples})
        ctx.protocol("judge_input", {"request_from": {k: sum(s["judge_prompt_from"] == k for s in samples)
                                                      for k in read}, "meta_keys": list(meta_keys)})
    judge_images = {r.id: r.image for r in records}
    result = scoring.score(ctx, bench, samples, judge_images, dataset.marker)
    _write(ctx, bench, samples, result, n_total=n_total, partial=len(records) < n_total)


# ------------------------------------------------------------------ evaluate/judge
def _read_previous(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    try:
        protocol = json.loads((path / PROTOCOL).read_text())
        metrics = json.loads((path / METRICS).read_text())
        lines = (path / SAMPLES).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: missing (input 'responses' is not an evaluation output)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name}: invalid JSON in {PROTOCOL}/{METRICS} ({exc.msg})") from None
    samples = []
    for n, line in enumerate(lines, 1):
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{path.name}/{SAMPLES}: line {n}: invalid JSON") from None
    return samples, metrics, protocol


def judge_stage(ctx) -> None:
    """Re-score a previous evaluation's responses with another judge; nothing is regenerated."""
    samples, old_metrics, old_protocol = _read_previous(ctx.input("responses"))
    bench = get_benchmark(old_metrics.get("benchmark", ""))
    if old_metrics.get("version") != bench.version:
        raise InputError(f"responses/{METRICS}: version: {old_metrics.get('version')!r} differs from "
                         f"benchmark {bench.name}'s current version {bench.version}; regenerate instead")
    if bench.scorer != "safety":
        raise InputError(f"responses/{METRICS}: benchmark: {bench.name} is scored by extraction, "
                         "not a judge; there is nothing to re-judge")
    images: dict[str, Path | None] = {s["id"]: None for s in samples}
    marker: dict[str, Any] = {}
    if "data" in ctx.inputs:  # needed by vision judges (images) and the exact judge (marker)
        from repro.data import open_dataset

        dataset = open_dataset(ctx.input("data"))
        marker = dataset.marker
        split = (old_protocol.get("dataset") or {}).get("split")
        by_id = {r.id: r for r in dataset.records(split)}
        for s in samples:
            record = by_id.get(s["id"])
            if record is None or sha256_file(record.image) != s.get("image_sha256"):
                raise InputError(f"data: record {s['id']!r} is missing or its image differs from "
                                 "the one the responses were generated for")
            images[s["id"]] = record.image
    for key in ("chat_template", "sampling", "backend", "image_preprocessing", "dataset", "judge_input"):
        if key in old_protocol:
            ctx.protocol(key, old_protocol[key])
    ctx.protocol("rejudged_from", {"judge": old_protocol.get("judge"),
                                   "samples_sha256": sha256_bytes(
                                       (ctx.input("responses") / SAMPLES).read_bytes())})
    result = scoring.score(ctx, bench, samples, images, marker)
    _write(ctx, bench, samples, result, n_total=old_metrics["n_total"], partial=old_metrics["partial"])


# ------------------------------------------------------------------ outputs
def _write(ctx, bench, samples, result: dict[str, Any], *, n_total: int, partial: bool) -> None:
    with open(ctx.out / SAMPLES, "w", encoding="utf-8") as fh:
        for sample in samples:
            fh.write(json.dumps(sample, sort_keys=True, ensure_ascii=False) + "\n")
    ctx.protocol("benchmark", {"name": bench.name, "version": bench.version,
                               "prompt_suffix": bench.prompt_suffix, "strip_suffix": bench.strip_suffix,
                               "prompt_sha256": bench.prompt_sha256()})
    ctx.protocol("items_sha256", sha256_bytes("".join(s["item_sha256"] for s in samples).encode()))
    ctx.write_metrics({
        "benchmark": bench.name, "version": bench.version, "primary": bench.primary,
        "metrics": result["metrics"], "by_category": result["by_category"],
        "n": len(samples), "n_total": n_total, "partial": bool(partial),
        "parse_failures": result["parse_failures"], "judge": result["judge"],
    })
    (ctx.out / PROTOCOL).write_text(json.dumps(ctx.protocol_choices, indent=2, sort_keys=True) + "\n")
