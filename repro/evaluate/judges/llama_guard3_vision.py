"""Llama Guard 3 Vision (``meta-llama/Llama-Guard-3-11B-Vision``): image + text classification.

The prompt is what the model's ``chat_template.json`` renders for ``[user: [image, prompt],
assistant: [response]]``, byte for byte: no leading space, ``<|image|> `` (with its space) before
``Task`` when the conversation has an image, the S1-S13 policy (no code-interpreter category),
contents trimmed (``| trim``), a space before ``<|eot_id|>``, and the text ending at the assistant
header. Same output format as the text model. The HF backend loads it as an image-text-to-text
model with its own processor (no LLaVA padding).
"""

from __future__ import annotations

from repro.evaluate.judges import JudgeItem, Verdict
from repro.evaluate.judges.llama_guard3 import (_HEADER, CATEGORIES_TEXT, LlamaGuard3Judge, guard_prompt,
                                                parse_guard_output)

VISION_CATEGORIES = CATEGORIES_TEXT.rsplit("\nS14:", 1)[0]
IMAGE = "<|image|> "


def vision_prompt(prompt: str, response: str, with_image: bool) -> str:
    return guard_prompt(VISION_CATEGORIES, prompt, response, head=_HEADER,
                        image=IMAGE if with_image else "", before_eot=" ")


class LlamaGuard3VisionJudge(LlamaGuard3Judge):
    name = "llama_guard3_vision"
    model_id = "meta-llama/Llama-Guard-3-11B-Vision"
    template = vision_prompt("{prompt}", "{response}", True)
    uses_image = True

    def render(self, item: JudgeItem) -> str:
        return vision_prompt(item.prompt, item.response, item.image is not None)

    def parse(self, raw: str, item: JudgeItem) -> Verdict:
        return parse_guard_output(raw)
