"""What the tiny world's models can do, per answer format (docs/experiments.md, "What the aligned
LLMs and the VL-adapted model can do"):

    python -m repro.bench.skills --runs-dir runs [--n 40]

From a tiny runs directory (``make reproduce-all PROFILE=tiny``), asks the aligned LLMs A and B
(``all``: ``llm``, ``llm_b``) about pictures told in words, as the aligned-chat reading tasks do,
and each seed's VL-adapted LLM B (``findings-seed<N>``: ``stage2_b``) about the pictures
themselves: the same ``n`` fresh pictures of the world, one question per answer format the
helpfulness benchmarks use, greedy. Prints right answers out of ``n`` per format (and how often a
yes/no answer was "Yes"). The benchmarks score the same models on their own items; this separates
the skills they mix (naming an attribute, comparing it, picking an option).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from repro.data.synthetic.draw import SHAPES
from repro.data.synthetic.world import COLOR_NAMES, LETTER_SUFFIX, LETTERS, SHORT_SUFFIX, World, caption
from repro.evaluate.backends import Request, read_model_info
from repro.evaluate.backends.hf import HFBackend
from repro.evaluate.extract import extract_option, extract_yes_no
from repro.models.templates import prompt_text

FORMATS = ("colour, a word", "shape, a word", "yes/no, colour", "yes/no, shape", "colour, 4 options")
PROBE_SEED = 123  # its own draw: pictures no training set holds
SAMPLING = {"temperature": 0.0, "max_new_tokens": 12, "seed": 0}


@dataclass(frozen=True)
class Item:
    format: str
    question: str  # the user's message, suffix included
    caption: str  # the picture told in words
    image: Path
    truth: str  # the word, "Yes"/"No", or the right option's letter
    options: dict[str, str] = field(default_factory=dict)  # letter -> text, lettered questions only


def items(folder: Path, n: int) -> list[Item]:
    """``n`` fresh pictures written into ``folder``, one question per format each; yes/no
    questions alternate between the picture's own value ("Yes") and another ("No")."""
    w, out = World(PROBE_SEED, "skills"), []
    for i in range(n):
        look = w.look()
        image = folder / f"{i}.png"
        image.write_bytes(look.png())
        colour, shape = look.color, look.shape
        asked_colour = colour if i % 2 else w.pick([c for c in COLOR_NAMES if c != colour])
        asked_shape = shape if i % 2 == 0 else w.pick([s for s in SHAPES if s != shape])
        texts = [colour, *w.rng.sample([c for c in COLOR_NAMES if c != colour], 3)]
        w.rng.shuffle(texts)
        options = dict(zip(LETTERS, texts))
        lettered = "\n".join(f"{letter}. {text}" for letter, text in options.items())
        asks = ((f"What colour is the shape?\n{SHORT_SUFFIX}", colour),
                (f"What shape is in the image?\n{SHORT_SUFFIX}", shape),
                (f"Is the shape in the image {asked_colour}?\n{SHORT_SUFFIX}", "Yes" if i % 2 else "No"),
                (f"Is there a {asked_shape} in the image?\n{SHORT_SUFFIX}", "Yes" if i % 2 == 0 else "No"),
                (f"What colour is the shape?\n{lettered}\n{LETTER_SUFFIX}", LETTERS[texts.index(colour)]))
        out += [Item(f, q, caption(colour, shape), image, truth, options if f == FORMATS[-1] else {})
                for f, (q, truth) in zip(FORMATS, asks)]
    return out


def right(item: Item, answer: str) -> bool:
    """Scored as the benchmarks score: yes/no by MME's rule, an option by MMBench's extraction
    (a letter, or one option's text); a word (no benchmark asks for one alone) must be a word
    of the answer's first sentence."""
    if item.options:
        return extract_option(answer, item.options)[0] == item.truth
    if item.format.startswith("yes/no"):
        return extract_yes_no(answer) == item.truth
    return item.truth in answer.strip().lower().split(".")[0].split()


def ask(model_dir: Path, probe: list[Item], text: bool) -> dict[str, dict[str, int]]:
    """Per format: ``right`` and ``yes`` counts out of ``n``; ``text``: the picture told in words."""
    template = read_model_info(model_dir)["template"]
    backend = HFBackend(model_dir, batch_size=32)
    requests = [Request(prompt_text(template, f"Image: {it.caption}\n{it.question}")) if text
                else Request(prompt_text(template, it.question, with_image=True), it.image) for it in probe]
    tally = {f: {"right": 0, "yes": 0, "n": 0} for f in FORMATS}
    for item, answer in zip(probe, backend.generate(requests, SAMPLING)):
        row = tally[item.format]
        row["n"] += 1
        row["right"] += right(item, answer)
        row["yes"] += extract_yes_no(answer) == "Yes"
    return tally


def _models(runs: Path) -> list[tuple[str, Path, bool]]:
    def stage(manifest: str, name: str) -> Path:
        path = runs / manifest / "manifest.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (run `make reproduce-all PROFILE=tiny` first)")
        stages = json.loads(path.read_text())["stages"]
        if name not in stages:
            raise SystemExit(f"{path}: no stage {name!r} (not a tiny `make reproduce-all` run)")
        return runs / stages[name]["output"]

    found = [("aligned LLM A (text)", stage("all", "llm"), True), ("aligned LLM B (text)", stage("all", "llm_b"), True)]
    for seed_dir in sorted(runs.glob("findings-seed*")):
        found.append((f"LLM B-VL, {seed_dir.name[9:]} (images)", stage(seed_dir.name, "stage2_b"), False))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.bench.skills", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    ap.add_argument("--n", type=int, default=40, help="pictures (one question per format each)")
    args = ap.parse_args(argv)
    models = _models(args.runs_dir)  # a missing run fails before anything is printed
    with tempfile.TemporaryDirectory(prefix="skills_") as tmp:
        probe = items(Path(tmp), args.n)
        print("| model | " + " | ".join(FORMATS) + " |\n" + "|---" * (len(FORMATS) + 1) + "|")
        for label, model_dir, text in models:
            tally = ask(model_dir, probe, text)
            cells = [f"{t['right']}/{t['n']}" + (f" (yes {t['yes']})" if f.startswith("yes/no") else "")
                     for f, t in tally.items()]
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
