"""Chat templates: how a conversation becomes text, and which parts of it are trained on.

The paper trains each LLM in its own chat format [choice, recorded]: LLaMA-2-Chat uses
``[INST] ... [/INST]``, Tulu-2 uses ``<|user|>\\n...\\n<|assistant|>\\n``. No system prompt
[choice]. ``render`` returns segments ``(text, trainable)`` so the label mask is exactly the
assistant spans (the response and its end-of-sequence token), never the user turns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from repro.errors import InputError

IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class Template:
    name: str
    bos: str
    eos: str
    user: str  # format with {content}
    assistant_prefix: str  # text opening the assistant turn (not trained on)
    assistant: str  # format with {content}; trained on, includes eos
    turn_sep: str  # text between an assistant turn and the next user turn (not trained on)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


TEMPLATES: dict[str, Template] = {
    "llama2": Template(
        name="llama2", bos="<s>", eos="</s>",
        user="[INST] {content} [/INST]", assistant_prefix="",
        assistant=" {content} </s>", turn_sep="<s>",
    ),
    # Llama-3 format: the prompt format of the Llama-Guard-3 judges
    "llama3": Template(
        name="llama3", bos="<|begin_of_text|>", eos="<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant="{content}<|eot_id|>", turn_sep="",
    ),
    "tulu": Template(
        name="tulu", bos="<s>", eos="</s>",
        user="<|user|>\n{content}\n", assistant_prefix="<|assistant|>\n",
        assistant="{content}</s>", turn_sep="\n",
    ),
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise InputError(f"unknown chat template {name!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


def render(template: str | Template, turns: list[tuple[str, str]],
           add_generation_prompt: bool = False) -> list[tuple[str, bool]]:
    """Render ``[(role, text), ...]`` (roles ``user``/``assistant``, alternating, user first).

    Returns ``[(text, trainable)]``; concatenated texts form the full prompt. With
    ``add_generation_prompt`` the conversation must end on a user turn and the result ends where
    the model's answer starts.
    """
    t = get_template(template) if isinstance(template, str) else template
    if not turns or turns[0][0] != "user":
        raise InputError("a conversation must start with a user turn")
    segments: list[tuple[str, bool]] = [(t.bos, False)]
    for i, (role, text) in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise InputError(f"turn {i}: expected role {expected!r}, got {role!r}")
        if role == "user":
            if i > 0:
                segments.append((t.turn_sep, False))
            segments.append((t.user.format(content=text) + t.assistant_prefix, False))
        else:
            segments.append((t.assistant.format(content=text), True))
    if add_generation_prompt:
        if turns[-1][0] != "user":
            raise InputError("add_generation_prompt needs the conversation to end on a user turn")
    return segments


def prompt_text(template: str | Template, user_text: str, with_image: bool = False) -> str:
    """The generation prompt for one user message (``<image>\\n`` first when an image is given)."""
    content = f"{IMAGE_TOKEN}\n{user_text}" if with_image and IMAGE_TOKEN not in user_text else user_text
    return "".join(text for text, _ in render(template, [("user", content)], add_generation_prompt=True))
