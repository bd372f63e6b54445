"""A small finished run built by hand for the report tests: one experiment ``demo`` with two
model rows evaluated on MM-SafetyBench (synthetic data, with images) and SORRY-Bench, one of
them re-judged by the keyword judge, a table, and adversarial text wherever a run carries text
(a row label, a table title, a prompt, a response, a judge's output, a category, a protocol
value), so the tests can check that none of it becomes markup."""

from __future__ import annotations

import json
from pathlib import Path

from repro.data import open_dataset
from repro.data.synthetic import generate
from repro.evaluate.prompts import sha256_bytes, sha256_file

# Injection attempts: if any became markup or script, window.__pwned would be set.
INJECT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
CLOSE = '</script><script>window.__pwned=3</script><!--'
ROW_A = "LLM <b>A</b>"  # a row label with markup in it
ROW_B = "LLM B-VL"


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True) if not isinstance(data, str) else data)


def _eval(store: Path, key: str, bench: str, judge: str, samples: list[dict], metrics: dict) -> None:
    out = store / key / "out"
    _write(out / "samples.jsonl", "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples))
    _write(out / "metrics.json", {"benchmark": bench, "primary": "asr", "metrics": metrics, "n": len(samples),
                                  "n_total": len(samples), "partial": False, "judge": {"name": judge, "model_id": None}})
    _write(out / "protocol.json", {"dataset": {"split": None}, "judge": {"judge": judge}})


def _verdict(unsafe: bool, refusal: bool) -> dict:
    return {"parsed": True, "unsafe": unsafe, "refusal": refusal, "note": "", "score": None, "label": None}


def _samples(records, responses: list[str], flags: list[tuple[bool, bool]], raw: list[str]) -> list[dict]:
    out = []
    for rec, response, (unsafe, refusal), judge_raw in zip(records, responses, flags, raw):
        out.append({"id": rec.id, "category": rec.category, "harmful": True, "prompt": f"USER: {rec.prompt}",
                    "judge_prompt": rec.prompt, "image_sha256": sha256_file(rec.image), "response": response,
                    "response_sha256": sha256_bytes(response.encode()), "verdict": _verdict(unsafe, refusal),
                    "judge_raw": judge_raw, "keyword_refusal": refusal, "keyword_match": ""})
    return out


def _agreement(store: Path, inputs: dict) -> None:
    """The report/agreement stage itself, on the first row and its re-judging."""
    from repro.pipeline.context import StageContext
    from repro.report.agreement import agreement_stage

    out = store / "k-agree" / "out"
    out.mkdir(parents=True)
    rows = [{"label": ROW_A, "pairs": [{"benchmark": "mm_safetybench", "first": "first", "second": "second"}]}]
    agreement_stage(StageContext(experiment="demo", name="table~agreement", kind="report/agreement", inputs=inputs,
                                 params={"title": "judges", "rows": rows}, out=out, seed=0, profile="tiny"))


def make_run(root: Path) -> Path:
    """Write ``root/runs/demo`` (manifest, store outputs) and return that directory."""
    runs, store = root / "runs", root / "runs" / "store"
    for name in ("mm_safetybench", "sorry_bench"):
        generate(name, store / f"data-{name}" / "out", seed=0, size=1)
    records = open_dataset(store / "data-mm_safetybench" / "out").records()[:4]
    text = open_dataset(store / "data-sorry_bench" / "out").records()[:2]
    n = len(records)
    # row A: sample 0 carries the injection attempts in every text field
    a = _samples(records, [INJECT] + ["I cannot help with that request."] * (n - 1),
                 [(True, False)] + [(False, True)] * (n - 1), [CLOSE] + ["refusal"] * (n - 1))
    a[0].update(prompt=INJECT, judge_prompt=CLOSE, category=INJECT)
    b = _samples(records, ["Sure, here is how."] * n, [(True, False)] * n, ["other"] * n)
    b[1]["verdict"], b[1]["judge_raw"] = _verdict(False, True), "refusal"
    keyword = [dict(s, verdict=_verdict(False, True), judge_raw="i cannot") if s["verdict"]["refusal"] or i == 0
               else dict(s) for i, s in enumerate(a)]
    sorry = _samples(text, ["No.", "Yes, step one"], [(False, True), (True, False)], ["refusal", "other"])
    _eval(store, "k-a", "mm_safetybench", "exact", a, {"asr": 0.25})
    _eval(store, "k-b", "mm_safetybench", "exact", b, {"asr": 0.75})
    _eval(store, "k-kw", "mm_safetybench", "keyword_refusal", keyword, {"asr": 0.0})
    _eval(store, "k-sorry", "sorry_bench", "exact", sorry, {"asr": 0.5})
    _agreement(store, {"first": store / "k-a" / "out", "second": store / "k-kw" / "out"})
    table = {"title": f"Safety {INJECT}", "columns": ["MM-SafetyBench"], "units": {"MM-SafetyBench": "rate"},
             "rows": [{"label": label, "x": None, "cells": {"MM-SafetyBench": {
                 "value": v, "units": "rate", "partial": False, "judge": "exact", "reference": None}}}
                 for label, v in ((ROW_A, 0.25), (ROW_B, 0.75))]}
    _write(store / "k-table" / "out" / "table.json", table)

    def entry(kind, key, inputs, protocol=None):
        return {"kind": kind, "key": key, "output": f"store/{key}/out", "output_digest": f"d-{key}",
                "inputs": inputs, "external": [], "protocol_choices": protocol or {}}

    stages = {
        "mm_safetybench": entry("data/synthetic", "data-mm_safetybench", {}),
        "sorry_bench": entry("data/synthetic", "data-sorry_bench", {}),
        "eval~a~mm_safetybench": entry("evaluate/benchmark", "k-a", {"model": "a", "data": "mm_safetybench"},
                                       {"judge": {"judge": "exact", "note": INJECT}}),
        "eval~b~mm_safetybench": entry("evaluate/benchmark", "k-b", {"model": "b", "data": "mm_safetybench"}),
        "rejudge~keyword_refusal~a~mm_safetybench": entry(
            "evaluate/judge", "k-kw", {"responses": "eval~a~mm_safetybench", "data": "mm_safetybench"}),
        "eval~a~sorry_bench": entry("evaluate/benchmark", "k-sorry", {"model": "a", "data": "sorry_bench"}),
        "table": entry("report/table", "k-table", {"eval~a~mm_safetybench": "eval~a~mm_safetybench",
                                                   "eval~b~mm_safetybench": "eval~b~mm_safetybench"}),
        "table~agreement": entry("report/agreement", "k-agree", {
            "first": "eval~a~mm_safetybench", "second": "rejudge~keyword_refusal~a~mm_safetybench"}),
    }
    results = {name: json.loads((runs / e["output"] / "metrics.json").read_text())
               for name, e in stages.items() if (runs / e["output"] / "metrics.json").exists()}
    rows = [{"label": ROW_A, "cells": {"MM-SafetyBench": "eval~a~mm_safetybench"}},
            {"label": ROW_B, "cells": {"MM-SafetyBench": "eval~b~mm_safetybench"}}]
    manifest = {"schema": 1, "experiment": "demo", "profile": "tiny", "stages": stages, "results": results,
                "result_stages": ["table", "table~agreement"], "system": {"python": INJECT}, "system_sha256": "s" * 64,
                "lock": {"sha256": "l" * 64}, "manifest_sha256": "m" * 64,
                "declaration": {"description": f"demo {CLOSE}", "paper": {"artefact": INJECT},
                                "stages": {"table": {"kind": "report/table", "params": {
                                    "rows": rows, "columns": [{"benchmark": "mm_safetybench"}]}}}}}
    _write(runs / "demo" / "manifest.json", manifest)
    return runs / "demo"
