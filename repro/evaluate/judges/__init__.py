"""Judges: ``judge(items) -> verdicts``, one interface for rule-based and model judges.

A verdict says whether the response is an attack success (``unsafe``: it fulfils a harmful
request / is harmful) and, where the judge can tell, whether it is a ``refusal``; ``score`` is the
item's contribution to the attack rate as the benchmark's official scorer counts it (SORRY-Bench's
judge can answer a number other than 0/1) and ``label`` the judge's own class (XSTest's three
classes). Malformed judge output is a parse failure (``parsed=False``, fields ``None``): never
silently safe or unsafe; each benchmark counts it as its official scorer does
(``repro/evaluate/benchmarks/<name>/score.py``, param ``unparsed``).

Three families: rule judges (no model), model judges (``ModelJudge``: a local checkpoint bound as
input ``judge``, run through a generation backend) and chat judges (``ChatJudge``: any
OpenAI-compatible chat endpoint, ``repro/evaluate/judges/chat.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.evaluate.backends import Request
from repro.io import sha256_text
from repro.registry import Registry

JUDGES = Registry("judge")
for _name, _target in {
    "keyword_refusal": "repro.evaluate.judges.keyword_refusal:KeywordRefusalJudge",
    "exact": "repro.evaluate.judges.exact:ExactJudge",
    "sorry_bench_judge": "repro.evaluate.judges.sorry_bench_judge:SorryBenchJudge",
    "llama_guard3": "repro.evaluate.judges.llama_guard3:LlamaGuard3Judge",
    "llama_guard3_vision": "repro.evaluate.judges.llama_guard3_vision:LlamaGuard3VisionJudge",
    "wildguard": "repro.evaluate.judges.wildguard:WildGuardJudge",
    "openai_api": "repro.evaluate.judges.chat:GenericChatJudge",
    "mm_safetybench_gpt4": "repro.evaluate.judges.mm_safetybench_gpt:MMSafetyBenchJudge",
    "siuo_gpt4v": "repro.evaluate.judges.siuo_gpt:SIUOJudge",
    "xstest_gpt4": "repro.evaluate.judges.xstest:XSTestChatJudge",
    "xstest_strmatch": "repro.evaluate.judges.xstest:XSTestStringMatchJudge",
}.items():
    JUDGES.register(_name, _target)


@dataclass(frozen=True)
class JudgeItem:
    prompt: str  # the user's request as the judge should read it (no chat template)
    response: str
    image: Path | None = None
    harmful: bool | None = None  # dataset label; None = the benchmark treats it as harmful
    category: str = ""  # the item's category (MM-SafetyBench: its scenario)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # record meta


@dataclass(frozen=True)
class Verdict:
    unsafe: bool | None  # attack success; None on a parse failure
    refusal: bool | None  # None when the judge cannot tell, or on a parse failure
    raw: str  # the judge's raw output (for rule judges, what matched)
    parsed: bool = True
    note: str = ""
    score: float | None = None  # attack-rate contribution; default float(unsafe)
    label: str | None = None  # the judge's own class, where it has one

    def as_dict(self) -> dict[str, Any]:
        score = self.score if self.score is not None else (
            None if self.unsafe is None else float(self.unsafe))
        return {"unsafe": self.unsafe, "refusal": self.refusal, "raw": self.raw,
                "parsed": self.parsed, "note": self.note, "score": score, "label": self.label}


def parse_failure(raw: str, note: str) -> Verdict:
    return Verdict(unsafe=None, refusal=None, raw=raw, parsed=False, note=note)


def check_options(judge: str, options: dict[str, Any], known, note: str = "") -> None:
    """``judge_options`` a judge does not take are an error naming the first, never ignored (a
    misspelt option would otherwise leave the default in place unnoticed)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"judge {judge!r}: judge_options: {unknown[0]!r} unknown; "
                         f"known: {', '.join(sorted(known)) or 'none'}{note}")


class ModelJudge:
    """A judge that is itself a model run through a generation backend.

    Subclasses set ``name``, ``model_id`` (the checkpoint the format was written for),
    ``template`` and ``max_new_tokens``, and implement ``render`` and ``parse``.
    """
    name = ""
    model_id = ""
    template = ""
    max_new_tokens = 32
    uses_image = False
    needs_model = True  # runs on the checkpoint bound as input ``judge``
    refusal_calls = False  # True: the judge itself says whether a response refuses

    def __init__(self, backend=None, seed: int = 0, **options: Any):
        check_options(self.name, options, (), " (a model judge is set by its input 'judge' and the "
                      "params judge_backend, judge_batch_size, backend_options)")
        self.backend = backend
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "model_id": self.model_id, "kind": "model",
                "prompt_sha256": sha256_text(self.template), "sampling": self.sampling()}

    def sampling(self) -> dict[str, Any]:
        # judges decode greedily: a verdict must not depend on a sampling draw
        return {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": self.max_new_tokens,
                "repetition_penalty": 1.0, "frequency_penalty": 0.0, "seed": self.seed}

    def render(self, item: JudgeItem) -> str:
        raise NotImplementedError

    def parse(self, raw: str, item: JudgeItem) -> Verdict:
        raise NotImplementedError

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        if not items:
            return []
        if self.backend is None:
            raise InputError(f"judge {self.name!r} is a model judge: bind its model as input 'judge'")
        requests = [Request(self.render(it), it.image if self.uses_image else None) for it in items]
        raws = self.backend.generate(requests, self.sampling())
        return [self.parse(raw, it) for raw, it in zip(raws, items)]
