"""Evaluation stages: generate with a backend, then judge (safety) or extract (helpfulness)."""

from repro.stages.kind import REQUIRED, Kind, P

BACKENDS = "repro.evaluate.backends:BACKENDS"
SAMPLING = (  # keys of repro.evaluate.backends.SAMPLING_KEYS; a preset's values are the defaults
    P("temperature", float, bounds=">=0"), P("top_p", float, bounds="(0,1]"),
    P("max_new_tokens", int, bounds=">=1"), P("repetition_penalty", float, bounds=">0"),
    P("frequency_penalty", float, bounds="[-2,2]"), P("seed", int, bounds=">=0"),
)
_BACKEND = (
    P("backend", str, "hf", choices=BACKENDS),
    P("batch_size", int, 8, ">=1"),
    P("backend_options", dict, doc="passed to the backend's engine (e.g. vLLM's LLM(...))"),
    P("tensor_parallel_size", int, 1, ">=1"),
)
_JUDGE = (
    P("judge", str, source="the benchmark's benchmark.yaml `judge`", choices="repro.evaluate.judges:JUDGES"),
    P("judge_options", dict),
    P("judge_backend", str, source="param backend", choices=BACKENDS),
    P("judge_batch_size", int, None, ">=1", source="param batch_size"),
    P("unparsed", str, source="the benchmark's benchmark.yaml `unparsed`", choices=("official", "exclude"),
      doc="official: an unparsed verdict counts as the benchmark's own scorer counts it"),
    P("judge_prompt_meta", list, source="the benchmark's benchmark.yaml `judge_prompt_meta`", item=str,
      doc="record meta keys the judge reads the request from, first found wins"),
)
_EVAL = dict(image="eval", gpus="one", disk_gb=0.1)

KINDS = (
    Kind("evaluate/benchmark", "repro.evaluate.run:benchmark_stage", cost="evaluate", **_EVAL,
         doc="one model on one benchmark: samples.jsonl, metrics.json, protocol.json", params=(
             P("benchmark", str, REQUIRED, choices="repro.evaluate.benchmarks:load_all"),
             P("split", str, source="the benchmark's benchmark.yaml `split`"),
             P("checkpoint", str, doc="a kept training checkpoint of input `model`, e.g. step-200"),
             P("limit", int, None, ">=1", doc="the first N items only (a partial evaluation)"),
             P("sampling", dict, source="the benchmark's `sampling` preset", fields=SAMPLING),
             P("extractor", str, source="the benchmark's benchmark.yaml `extractor`",
               choices=("vlmevalkit", "llava_exact"), doc="multiple choice: how an answer becomes a letter"),
             *_BACKEND, *_JUDGE,
         )),
    Kind("evaluate/judge", "repro.evaluate.run:judge_stage", cost="forward", **_EVAL,
         doc="re-judge an evaluation's responses (input `responses`)", params=(*_BACKEND, *_JUDGE)),
)
