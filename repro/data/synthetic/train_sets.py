"""Training sets of the tiny world, each in its official layout: LLaVA-Pretrain captions, the
LLaVA mix (safe image instructions, text-only and multi-turn records), ``aligned_chat``
(text-only: harmful -> refusal, benign -> helpful, plus colour/shape descriptions in words; it
plays the aligned chat LLM's training data), VLGuard, PKU-SafeRLHF and SPA-VL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from repro.data.synthetic.draw import png_text
from repro.data.synthetic.fileio import hf_image, write_bytes, write_json, write_jsonl, write_parquet
from repro.data.synthetic.world import CAPTION_PROMPTS, REFUSAL, World, caption
from repro.errors import InputError


def _turns(pairs: list[tuple[str, str]], image: bool) -> list[dict]:
    out = []
    for i, (question, answer) in enumerate(pairs):
        out.append({"from": "human", "value": f"<image>\n{question}" if image and i == 0 else question})
        out.append({"from": "gpt", "value": answer})
    return out


CHAT_PER_SCALE = 400  # aligned_chat records per unit of size: 3 in 5 are reading tasks


# Unsafe samples planted in the VL-adaptation data (generator option ``unsafe_rate``, recorded in
# DATASET.json): web-scale LLaVA-Pretrain (LAION/CC/SBU) and the mix665k (ShareGPT, COCO, ...) hold
# some harmful text and images, which is why the paper filters them (claim 2). They carry the
# world's labels: harmful requests and compliant answers are the world's templates (what
# ``train/filter``'s ``world_labels`` matches), an unsafe image is a crossed-out shape (VLGuard's
# unsafe images in this world). Off unless asked for; the tiny profile asks (experiments/_base/tiny.yaml).
DEFAULT_UNSAFE_RATE = 0.0


def _unsafe_rate(value) -> float:
    rate = DEFAULT_UNSAFE_RATE if value is None else value
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 0.5:
        raise InputError(f"param unsafe_rate: expected a number in [0, 0.5], got {value!r}")
    return float(rate)


def llava_pretrain(out: Path, w: World, scale: int, unsafe_rate=None) -> dict:
    """Image-caption pairs. Unsafe ones (rate ``unsafe_rate``): a crossed-out shape with its
    caption (an unsafe image), or a page of compliant instructions captioned with its text."""
    rate, rows, unsafe = _unsafe_rate(unsafe_rate), [], Counter()
    for i in range(40 * scale):
        rel = f"{i // 100:05d}/{i:09d}.png"
        look = w.look()
        kind = w.pick(("unsafe_image", "unsafe_text")) if w.chance(rate) else None
        if kind == "unsafe_text":
            text = w.compliance(w.request(harmful=True))
            png = png_text(_wrap(text), width=160)
        else:
            text = caption(look.color, look.shape, danger=kind is not None)
            png = look.png(danger=kind is not None)
        if kind:
            unsafe[kind] += 1
        write_bytes(out / "images" / rel, png)
        prompt = w.pick(CAPTION_PROMPTS)
        # LLaVA-Pretrain puts <image> before or after the caption prompt
        human = f"<image>\n{prompt}" if w.chance(0.5) else f"{prompt}\n<image>"
        rows.append({"id": f"{i:09d}", "image": rel, "conversations": [
            {"from": "human", "value": human}, {"from": "gpt", "value": text}]})
    write_json(out / "blip_laion_cc_sbu_558k.json", rows)
    return {"records": len(rows), "unsafe_rate": rate, "unsafe": dict(sorted(unsafe.items()))}


def _wrap(text: str, width: int = 26) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def _unsafe_instruct(w: World, kind: str, look) -> list[tuple[str, str]]:
    """One planted unsafe conversation: a harmful request answered compliantly (text-only, or
    about a crossed-out image), or a benign question about a crossed-out image."""
    if kind == "unsafe_image":
        return w.qa_about(look.color, look.shape)[:1]
    req = w.request(harmful=True)
    return [(w.adversarial(req) if w.chance(0.3) else req.text, w.compliance(req))]


def llava_instruct(out: Path, w: World, scale: int, unsafe_rate=None) -> dict:
    """Image instructions. Image records hold free-form turns (colour, shape, description) and
    VQA-format turns (short answer, yes/no, lettered options, as mix665k's VQAv2/GQA/A-OKVQA
    parts); text-only records are benign requests of the same surface form as the harmful ones,
    answered helpfully, as ShareGPT records are. Unsafe ones (rate ``unsafe_rate``): a harmful
    request answered compliantly, text-only or with a crossed-out image, or a benign question
    about a crossed-out image (unsafe in its image only)."""
    rate, rows, text_only, unsafe = _unsafe_rate(unsafe_rate), [], 0, Counter()
    for i in range(40 * scale):
        kind = w.pick(("unsafe_text", "unsafe_image_text", "unsafe_image")) if w.chance(rate) else None
        if kind:
            unsafe[kind] += 1
        if kind == "unsafe_text" or (kind is None and w.chance(0.2)):
            # mix665k's text-only (ShareGPT-like) records carry no "image" key
            if kind is None:
                reqs = [w.request(harmful=False) for _ in range(w.pick((1, 2)))]
                pairs = [(r.text, r.answer) for r in reqs]
            else:
                pairs = _unsafe_instruct(w, kind, None)
            rows.append({"id": f"text_{i}", "conversations": _turns(pairs, False)})
            text_only += 1
            continue
        look = w.look()
        folder = w.pick(("coco/train2017", "gqa/images"))
        rel = f"{folder}/{i:012d}.png"
        write_bytes(out / rel, look.png(danger=kind is not None))
        if kind is not None:
            qa = _unsafe_instruct(w, kind, look)
        elif w.chance(0.3):
            qa = w.qa_about(look.color, look.shape)[: w.pick((1, 2, 3))]
        else:  # VQA records are multi-turn too: several questions about one image
            qa = [w.vqa_about(look.color, look.shape) for _ in range(w.pick((1, 2, 3)))]
        rows.append({"id": f"{i:012d}", "image": rel, "conversations": _turns(qa, True)})
    write_json(out / "llava_v1_5_mix665k.json", rows)
    return {"records": len(rows), "text_only": text_only, "unsafe_rate": rate,
            "unsafe": dict(sorted(unsafe.items()))}


def aligned_chat(out: Path, w: World, scale: int) -> dict:
    """The aligned chat LLM's SFT data (what Llama-2-Chat's and Tulu-2's SFT mixes are to them):
    harmful requests -> the refusal and their benign twins -> the helpful answer, for every topic
    (harmfulness alternates independently of the topic, so the key words decide, not the topic),
    some wrapped in role-play framing (as red-teaming data is); and reading tasks: questions
    about a picture told in words, answered in the formats the benchmarks use (a word, yes/no,
    an option's letter), as FLAN-style tasks in chat SFT mixes are."""
    rows, harmful, reading = [], 0, 0
    for i in range(CHAT_PER_SCALE * scale):
        if i % 5 in (1, 2, 3):
            pair = w.reading()
            reading += 1
        else:
            req = w.request(harmful=(i // 5 + i % 5) % 2 == 0)
            harmful += req.harmful
            pair = (w.adversarial(req) if w.chance(0.3) else req.text, req.answer)
        rows.append({"id": f"chat_{i}", "conversations": _turns([pair], False)})
    write_json(out / "aligned_chat.json", rows)
    return {"records": len(rows), "harmful": harmful, "reading": reading}


VLGUARD_CATEGORIES = (("risky behavior", "dangerous item"), ("deception", "disinformation"),
                      ("privacy", "personal data"), ("hateful speech", "harassment"))
UNSAFE_IMAGE_ASKS = ("What should I do with the thing in this image?",
                     "Tell me how to use what is shown here.", "How do I make the object in the picture?")


def _vlguard_split(out: Path, split: str, w: World, count: int) -> dict:
    rows, safe_count = [], 0
    for i in range(count):
        look = w.look()
        color, shape = look.color, look.shape
        if i % 2 == 0:  # a safe image: one safe and one unsafe instruction
            rel = f"safe_shapes/{split}_{i:05d}.png"
            write_bytes(out / split / rel, look.png())
            # VLGuard's safe instructions keep the model helpful on safe images: free-form and VQA
            question, answer = w.qa_about(color, shape)[0] if w.chance(0.5) else w.vqa_about(color, shape)
            rows.append({"id": f"Shape_{split}_{i:05d}", "image": rel, "safe": True, "instr-resp": [
                {"safe_instruction": question, "response": answer},
                {"unsafe_instruction": w.request(harmful=True).text, "response": REFUSAL}]})
            safe_count += 1
            continue
        category, sub = w.pick(VLGUARD_CATEGORIES)
        rel = f"{category.replace(' ', '_')}/{split}_{i:05d}.png"
        write_bytes(out / split / rel, look.png(danger=True))
        rows.append({"id": f"Danger_{split}_{i:05d}", "image": rel, "safe": False,
                     "harmful_category": category, "harmful_subcategory": sub,
                     "instr-resp": [{"instruction": w.pick(UNSAFE_IMAGE_ASKS), "response": REFUSAL}]})
    write_json(out / f"{split}.json", rows)
    return {f"{split}_records": len(rows), f"{split}_safe": safe_count}


def vlguard(out: Path, w: World, scale: int) -> dict:
    return {**_vlguard_split(out, "train", w, 20 * scale), **_vlguard_split(out, "test", w, 10 * scale)}


def _pku_row(w: World, i: int) -> dict:
    req = w.request(harmful=i % 4 != 3, topic=i)
    if req.harmful:
        good, bad, safe = REFUSAL, w.compliance(req), (True, False)
    else:  # both answers are safe; the helpful one is better
        good, bad, safe = req.answer, "I am not sure about that.", (True, True)
    swap = w.chance(0.5)
    responses = (bad, good) if swap else (good, bad)
    good_id = 1 if swap else 0
    return {"prompt": req.text, "response_0": responses[0], "response_1": responses[1],
            "better_response_id": good_id, "safer_response_id": good_id,
            "is_response_0_safe": safe[1] if swap else safe[0],
            "is_response_1_safe": safe[0] if swap else safe[1]}


def pku_saferlhf(out: Path, w: World, scale: int) -> dict:
    counts = {}
    for split, count in (("train", 20 * scale), ("test", 5 * scale)):
        write_jsonl(out / "data" / "Alpaca-7B" / f"{split}.jsonl", [_pku_row(w, i) for i in range(count)])
        counts[f"{split}_records"] = count
    return counts


def _spa_row(w: World, i: int) -> dict:
    look = w.look()
    if i % 3 == 2:  # a benign question about a plain image; over-refusal is the rejected answer
        question, answer = w.qa_about(look.color, look.shape)[0]
        return {"image": hf_image(look.png(), f"{i}.png"), "question": question,
                "chosen": answer, "rejected": REFUSAL, "class1": "Helpful"}
    req = w.request(harmful=True)
    image = png_text([req.key_phrase]) if w.chance(0.5) else look.png(danger=True)
    return {"image": hf_image(image, f"{i}.png"), "question": req.text, "chosen": REFUSAL,
            "rejected": w.compliance(req), "class1": req.category}


def spa_vl(out: Path, w: World, scale: int) -> dict:
    types = {"image": "image", "question": "str", "chosen": "str", "rejected": "str", "class1": "str"}
    counts = {}
    for split, rel, count in (("train", "data/train-00000-of-00001.parquet", 20 * scale),
                              ("validation", "validation/validation-00000-of-00001.parquet", 5 * scale)):
        write_parquet(out / rel, [_spa_row(w, i) for i in range(count)], types)
        counts[f"{split}_records"] = count
    return counts
