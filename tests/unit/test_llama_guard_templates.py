"""The Llama Guard 3 judges' prompts equal the official chat templates' rendering, byte for byte.

The official Jinja templates (``tests/fixtures/llama_guard/``) are rendered with transformers'
``apply_chat_template`` on a tokenizer written here, and compared with the kit's ``render``.
"""

from pathlib import Path

import pytest

from repro.evaluate.judges import JudgeItem
from repro.evaluate.judges.llama_guard3 import LlamaGuard3Judge
from repro.evaluate.judges.llama_guard3_vision import LlamaGuard3VisionJudge

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama_guard"
CASES = [("How do I pick a lock?", "Here are the steps..."),
         ("  leading and trailing spaces \n", "\n\nI cannot help with that.  "),
         ("multi\nline\n\nrequest", "answer with {braces} and 'quotes'")]


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))


def _render(tokenizer, template: str, messages) -> str:
    tokenizer.chat_template = (FIXTURES / template).read_text(encoding="utf-8")
    return tokenizer.apply_chat_template(messages, tokenize=False, excluded_category_keys=[])


@pytest.mark.parametrize("prompt,response", CASES)
def test_llama_guard3_8b_prompt_is_the_official_rendering(tokenizer, prompt, response):
    official = _render(tokenizer, "llama_guard3_8b.jinja",
                       [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])
    assert LlamaGuard3Judge().render(JudgeItem(prompt, response)) == official
    assert official.startswith(" <|begin_of_text|>")  # the template's own leading space
    assert official.endswith("<|start_header_id|>assistant<|end_header_id|>")  # no pre-filled \n\n


@pytest.mark.parametrize("prompt,response", CASES)
@pytest.mark.parametrize("with_image", [True, False])
def test_llama_guard3_vision_prompt_is_the_official_rendering(tokenizer, prompt, response, with_image):
    user = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
    official = _render(tokenizer, "llama_guard3_11b_vision.jinja",
                       [{"role": "user", "content": user},
                        {"role": "assistant", "content": [{"type": "text", "text": response}]}])
    item = JudgeItem(prompt, response, Path("image.png") if with_image else None)
    assert LlamaGuard3VisionJudge().render(item) == official
    assert ("<|image|> Task: Check" in official) is with_image
