"""Chat templates: how a conversation becomes text, and which parts of it are trained on.

The paper trains each LLM in its own chat format [choice, recorded]: LLaMA-2-Chat uses
``[INST] ... [/INST]``, Tulu-2 uses ``<|user|>\\n...\\n<|assistant|>\\n``. The LLaMA-2 system
prompt is a recorded choice with three values, one template each (``SYSTEM_PROMPTS``):
``llama2`` carries LLaVA's ``conv_llava_llama_2`` system prompt (the default: the paper trained
with the LLaVA code), ``llama2_meta`` Meta's default one (LLaVA's ``conv_llama_2``) and
``llama2_nosys`` none. The system block is rendered as LLaVA's ``SeparatorStyle.LLAMA_2``
``get_prompt`` does (``haotian-liu/LLaVA`` ``llava/conversation.py``): ``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n``
in front of the first user message, inside its ``[INST]``. A model's card names its template, so
training and evaluation of one model always use the same one. ``render`` returns segments
``(text, trainable)`` so the label mask is exactly the assistant spans (the response and its
end-of-sequence token), never the user turns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from repro.errors import InputError

IMAGE_TOKEN = "<image>"


# LLaMA-2 system prompts, verbatim from haotian-liu/LLaVA llava/conversation.py (c121f04):
# ``conv_llava_llama_2.system`` and ``conv_llama_2.system`` (Meta's default; note its two spaces
# after "while being safe.").
SYSTEM_PROMPTS = {
    "llava": ("You are a helpful language and vision assistant. You are able to understand the "
              "visual content that the user provides, and assist the user with a variety of tasks "
              "using natural language."),
    "meta": ("You are a helpful, respectful and honest assistant. Always answer as helpfully as "
             "possible, while being safe.  Your answers should not include any harmful, unethical, "
             "racist, sexist, toxic, dangerous, or illegal content. Please ensure that your "
             "responses are socially unbiased and positive in nature.\n\nIf a question does not "
             "make any sense, or is not factually coherent, explain why instead of answering "
             "something not correct. If you don't know the answer to a question, please don't "
             "share false information."),
    "none": "",
}
LLAMA2_SYSTEM_WRAP = "<<SYS>>\n{system}\n<</SYS>>\n\n"  # LLaVA's wrap_sys (LLAMA_2 style)


@dataclass(frozen=True)
class Template:
    name: str
    bos: str
    eos: str
    user: str  # format with {content}
    assistant_prefix: str  # text opening the assistant turn (not trained on)
    assistant: str  # format with {content}; trained on, includes eos
    turn_sep: str  # text between an assistant turn and the next user turn (not trained on)
    system_prompt: str = "none"  # key of SYSTEM_PROMPTS: which system prompt, by name
    system_wrap: str = ""  # format with {system}; put in front of the first user message

    @property
    def system(self) -> str:
        return SYSTEM_PROMPTS[self.system_prompt]

    def first_user(self, content: str) -> str:
        """The first user message with the system block in front (if there is a system prompt)."""
        return self.system_wrap.format(system=self.system) + content if self.system else content

    def digest(self) -> str:
        fields = asdict(self)
        if self.system:  # the text itself, not only its name, decides the digest
            fields["system"] = self.system
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        """The protocol record of a template: name, system prompt (by name) and digest."""
        return {"name": self.name, "system_prompt": self.system_prompt, "sha256": self.digest()}


def _llama2(name: str, system_prompt: str) -> Template:
    return Template(name=name, bos="<s>", eos="</s>", user="[INST] {content} [/INST]",
                    assistant_prefix="", assistant=" {content} </s>", turn_sep="<s>",
                    system_prompt=system_prompt,
                    system_wrap=LLAMA2_SYSTEM_WRAP if SYSTEM_PROMPTS[system_prompt] else "")


TEMPLATES: dict[str, Template] = {
    # LLaMA-2-Chat format; the three system prompt choices (module docstring)
    "llama2": _llama2("llama2", "llava"),
    "llama2_meta": _llama2("llama2_meta", "meta"),
    "llama2_nosys": _llama2("llama2_nosys", "none"),
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
            content = t.first_user(text) if i == 0 else text
            segments.append((t.user.format(content=content) + t.assistant_prefix, False))
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
