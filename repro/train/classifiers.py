"""Safety classifiers of ``train/filter``: each judges the parts of a conversation sample
(``user`` turns, ``response`` turns, the ``image``) and returns, per sample, ``{part: label}``
for the parts it flags.

The Llama Guard 3 prompts are the judges' own (``repro.evaluate.judges``), which classify an
'Agent' message; the 'User' form (prompt classification) is the same text with the role swapped
and no agent turn, as Meta's prompt builder makes it (``meta-llama/llama-recipes``
``src/llama_recipes/inference/prompt_format_utils.py``: ``$agent_type`` in the task and the
instruction, one ``User: ...`` line in the conversation).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from repro.errors import InputError

TEXT_PARTS = ("user", "response")
TEXT_CLASSIFIERS = ("keyword", "llama_guard3", "world_labels")
IMAGE_CLASSIFIERS = ("llama_guard3_vision", "world_labels")
DEFAULT_KEYWORDS = ("bomb", "explosive", "kill", "murder", "suicide", "self-harm", "poison",
                    "weapon", "terrorist", "meth", "cocaine", "child abuse", "rape", "torture",
                    "steal", "hack into", "ransomware", "counterfeit", "human trafficking")
WORLD_LABELS_VERSION = 3  # 3: key phrases, per-part labels, the danger mark on images


def _clean(text: str) -> str:
    return text.replace("<image>", "").strip()


def text_parts(sample, parts: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(part, prompt, response) to judge: each user turn alone, each response with its user turn
    (turns alternate user/assistant, user first, as every loader checks)."""
    turns = [_clean(text) for _, text in sample.turns]
    out = []
    for i, text in enumerate(turns):
        if i % 2 == 0 and "user" in parts:
            out.append(("user", text, ""))
        elif i % 2 == 1 and "response" in parts:
            out.append(("response", turns[i - 1], text))
    return out


class _PatternClassifier:
    """Flags a text part when one of ``patterns`` occurs in it (the part's own text)."""

    patterns: list[re.Pattern]

    def __init__(self, parts: tuple[str, ...]):
        self.parts = parts

    def label(self, text: str) -> str | None:
        raise NotImplementedError

    def classify(self, samples) -> list[dict[str, str]]:
        out = []
        for s in samples:
            found: dict[str, str] = {}
            for part, prompt, response in text_parts(s, self.parts):
                label = self.label(prompt if part == "user" else response)
                if label is not None:
                    found.setdefault(part, label)
            out.append(found)
        return out


class KeywordClassifier(_PatternClassifier):
    def __init__(self, keywords, parts: tuple[str, ...] = TEXT_PARTS):
        super().__init__(parts)
        if not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise InputError(f"params: keywords: {keywords!r}; expected a list of non-empty phrases")
        self.keywords = sorted({k.strip().lower() for k in keywords})
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.keywords)) + r")\b", re.I)

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(self.keywords).encode()).hexdigest()
        return {"classifier": "keyword", "keywords": len(self.keywords), "keywords_sha256": digest,
                "parts": list(self.parts)}

    def label(self, text: str) -> str | None:
        hit = self.pattern.search(text)
        return hit.group(1).lower() if hit else None


class WorldLabelsClassifier(_PatternClassifier):
    """The synthetic world's labels: its harmful requests, the key phrases of their harm and the
    compliant answers an unsafe model gives (``repro.data.synthetic.world``)."""

    def __init__(self, parts: tuple[str, ...] = TEXT_PARTS):
        from repro.data.synthetic.world import COLOR_NAMES, COMPLIANCE, TOPICS

        super().__init__(parts)
        fill = {"n": r"\d+", "m": r"\d+", "color": "(?:" + "|".join(map(re.escape, COLOR_NAMES)) + ")"}
        labelled = ([(f"harmful_request:{t[0]}", t[1]) for t in TOPICS]
                    + [(f"compliance:{cat}", text) for cat, text in COMPLIANCE.items()]
                    + [(f"key_phrase:{t[0]}", t[4]) for t in TOPICS])
        self.labels = [label for label, _ in labelled]
        self.patterns = [re.compile(re.escape(t).replace(r"\{", "{").replace(r"\}", "}").format(**fill))
                         for _, t in labelled]

    def describe(self) -> dict[str, Any]:
        return {"classifier": "world_labels", "version": WORLD_LABELS_VERSION, "parts": list(self.parts)}

    def label(self, text: str) -> str | None:
        return next((label for label, p in zip(self.labels, self.patterns) if p.search(text)), None)


def has_danger_mark(path) -> bool:
    """The world's mark of a dangerous thing: a black cross corner to corner (``draw.py``)."""
    from repro.models.images import open_image

    img = open_image(path)
    w, h = img.size
    points = [(t / 20) for t in range(3, 18)]  # 15% .. 85% along each diagonal

    def black(x: float, y: float) -> bool:
        return max(img.getpixel((min(w - 1, int(x * w)), min(h - 1, int(y * h))))) < 60

    return all(sum(black(t, t if d == 0 else 1 - t) for t in points) >= 0.8 * len(points) for d in (0, 1))


class WorldImageClassifier:
    parts = ("image",)

    def describe(self) -> dict[str, Any]:
        return {"classifier": "world_labels", "version": WORLD_LABELS_VERSION, "parts": ["image"],
                "rule": "the image carries the world's danger mark (a black cross)"}

    def classify(self, samples) -> list[dict[str, str]]:
        return [{"image": "danger mark"} if s.image is not None and has_danger_mark(s.image) else {}
                for s in samples]


def user_role(template: str) -> str:
    """A Llama Guard 3 'Agent' prompt turned into its 'User' (prompt classification) form."""
    swaps = (("'Agent' messages", "'User' messages"), ("\n\nAgent: {response}", ""),
             ("ONLY THE LAST Agent message", "ONLY THE LAST User message"))
    for old, new in swaps:
        if template.count(old) != 1:  # the judge's prompt changed: fail loudly, never guess
            raise InputError(f"llama guard prompt: expected {old!r} once to build the 'User' form")
        template = template.replace(old, new)
    return template


class GuardClassifier:
    """Llama Guard 3 (text: user turns and responses) or Llama Guard 3 Vision (image + prompt)."""

    def __init__(self, judge, described: dict[str, Any], parts: tuple[str, ...]):
        self.judge, self.parts = judge, parts
        self.described = {**described, "parts": list(parts)}
        self.unparsed = 0

    def describe(self) -> dict[str, Any]:
        return self.described

    def _requests(self, samples):
        from repro.evaluate.backends import Request

        for k, s in enumerate(samples):
            if self.parts == ("image",):
                if s.image is not None:
                    prompt = _clean(s.turns[0][1]) if s.turns else ""
                    yield k, "image", Request(user_role(self.judge.template).format(prompt=prompt), s.image)
                continue
            for part, prompt, response in text_parts(s, self.parts):
                template = user_role(self.judge.template) if part == "user" else self.judge.template
                yield k, part, Request(template.format(prompt=prompt, response=response), None)

    def classify(self, samples) -> list[dict[str, str]]:
        from repro.evaluate.judges import JudgeItem

        todo = list(self._requests(samples))
        raws = self.judge.backend.generate([r for _, _, r in todo], self.judge.sampling()) if todo else []
        flags: list[dict[str, str]] = [{} for _ in samples]
        for (k, part, request), raw in zip(todo, raws):
            verdict = self.judge.parse(raw, JudgeItem(request.prompt, "", request.image))
            if not verdict.parsed:
                self.unparsed += 1
            elif verdict.unsafe:
                flags[k].setdefault(part, "unsafe" + (f" {verdict.note}" if verdict.note else ""))
        return flags


def _guard(ctx, name: str, role: str, parts: tuple[str, ...]) -> GuardClassifier:
    from repro.evaluate.backends import read_model_info, stage_backend
    from repro.evaluate.judges import JUDGES

    model_dir = ctx.input(role)
    backend = stage_backend(ctx, ctx.param("backend", "hf"), model_dir, ctx.param("batch_size", 8))
    judge = JUDGES.get(name)(backend=backend, seed=ctx.seed)
    card = {k: v for k, v in read_model_info(model_dir).items() if k != "template"}
    described = {**judge.describe(), "model_card": card, "backend": backend.info(),
                 "user_prompt_sha256": hashlib.sha256(user_role(judge.template).encode()).hexdigest()}
    return GuardClassifier(judge, described, parts)


def build_text_classifier(ctx, name: str, parts: tuple[str, ...]):
    if name == "keyword":
        return KeywordClassifier(ctx.param("keywords", list(DEFAULT_KEYWORDS)), parts)
    if name == "world_labels":
        return WorldLabelsClassifier(parts)
    return _guard(ctx, name, "classifier", parts)


def build_image_classifier(ctx, name: str):
    if name == "world_labels":
        return WorldImageClassifier()
    return _guard(ctx, name, "image_classifier", ("image",))
