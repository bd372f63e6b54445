"""Llama Guard 3 Vision (``meta-llama/Llama-Guard-3-11B-Vision``): image + text classification.

Same output format as the text model; the image goes into the user turn as ``<|image|>`` (the
Mllama image token) and the policy has S1–S13 (no code-interpreter category). The HF backend
loads it as an image-text-to-text model with its own processor (no LLaVA padding).
"""

from __future__ import annotations

from repro.evaluate.judges import JudgeItem, Verdict
from repro.evaluate.judges.llama_guard3 import (CATEGORIES_TEXT, LlamaGuard3Judge, guard_template,
                                                parse_guard_output)

VISION_CATEGORIES = CATEGORIES_TEXT.rsplit("\nS14:", 1)[0]


class LlamaGuard3VisionJudge(LlamaGuard3Judge):
    name = "llama_guard3_vision"
    model_id = "meta-llama/Llama-Guard-3-11B-Vision"
    template = guard_template(VISION_CATEGORIES, user_prefix="<|image|>")
    text_only_template = guard_template(VISION_CATEGORIES)
    uses_image = True

    def render(self, item: JudgeItem) -> str:
        template = self.template if item.image is not None else self.text_only_template
        return template.format(prompt=item.prompt, response=item.response)

    def parse(self, raw: str, item: JudgeItem) -> Verdict:
        return parse_guard_output(raw)
