"""What ``repro plan`` prints for an evaluation stage: the judge (or extractor) that will score it,
where that judge runs, and whose scoring protocol the metrics follow. Reads config only."""

from __future__ import annotations

from typing import Any

from repro.errors import InputError

EXTRACTOR_SOURCES = {
    "vlmevalkit": "open-compass/VLMEvalKit vlmeval/utils/matching_util.py can_infer (exact_matching)",
    "llava_exact": "haotian-liu/LLaVA scripts/convert_seed_for_submission.py (exact match)",
    "mme_yes_no": "MME eval_tool/calculation.py (yes/no in the first four characters)",
}


def _judge_line(name: str, params: dict[str, Any], inputs: dict[str, Any]) -> str:
    from repro.evaluate.judges import JUDGES
    from repro.evaluate.judges.chat import OPENAI_BASE_URL

    cls = JUDGES.get(name)
    if getattr(cls, "needs_model", False):
        return f"judge: {name} (model {cls.model_id} bound as input judge={inputs.get('judge', '<unbound>')})"
    if hasattr(cls, "endpoint") or hasattr(cls, "default_model"):
        options = params.get("judge_options") or {}
        model = options.get("model") or cls.default_model or "<judge_options.model>"
        url = options.get("base_url") or OPENAI_BASE_URL
        return f"judge: {name} (chat endpoint {url}, model {model}; {cls.source})"
    return f"judge: {name} (rule, no model)"


def describe_stage(kind: str, params: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    """Lines naming the judge and the scoring protocol of an ``evaluate/benchmark`` stage."""
    if kind != "evaluate/benchmark" or not params.get("benchmark"):
        return []
    from repro.evaluate.benchmarks import get_benchmark

    try:
        bench = get_benchmark(params["benchmark"])
    except InputError as exc:
        return [f"benchmark: {exc}"]
    module = bench.metrics_module()
    protocol = module.SOURCE if module else "kit's generic metrics (no official scorer)"
    if bench.scorer != "safety":
        default = bench.extractor if bench.scorer == "multiple_choice" else "mme_yes_no"
        extractor = params.get("extractor") or default
        return [f"scoring: {bench.name} v{bench.version}, extractor {extractor}, primary {bench.primary}; "
                f"{EXTRACTOR_SOURCES.get(extractor, '')}"]
    judge = params.get("judge") or bench.judge
    return [_judge_line(judge, params, inputs),
            f"scoring: {bench.name} v{bench.version}, primary {bench.primary}, unparsed "
            f"{params.get('unparsed') or bench.unparsed}; {protocol}"]
