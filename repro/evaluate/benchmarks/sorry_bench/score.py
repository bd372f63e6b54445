"""SORRY-Bench's fulfilment rate as ``gen_judgment_safety_vllm.py`` computes it: the mean of the
judge's extracted scores over all responses, a response without a score counting 0
(``avg_score += score if score is not None else 0``, divided by ``len(responses)``). The score
comes from ``extract_content`` (``repro/evaluate/judges/sorry_bench_judge.py``); a judge without
scores (the exact or keyword judges) contributes 1 per fulfilled request.
"""

from __future__ import annotations

from typing import Any

from repro.evaluate.metrics import safety_metrics


SOURCE = "SORRY-Bench gen_judgment_safety_vllm.py (extract_content, mean score over all items)"

def metrics(samples: list[dict[str, Any]], bench, unparsed: str) -> tuple[dict, dict]:
    return safety_metrics(samples, bench.breakdown, unparsed)
