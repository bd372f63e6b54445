"""Small, real stage functions used by the pipeline tests (registered under ``test/*``)."""

import json
from pathlib import Path

from repro.errors import InputError


def write_text(ctx):
    """Writes params['text'] (times params['repeat']) and a metrics.json."""
    text = ctx.param("text") * ctx.param("repeat", 1)
    (ctx.out / "text.txt").write_text(text)
    (ctx.out / "sub").mkdir()
    (ctx.out / "sub" / "len.json").write_text(json.dumps({"len": len(text)}))
    ctx.write_metrics({"metrics": {"length": float(len(text))}, "n": 1, "n_total": 1, "partial": False})


def concat(ctx):
    """Concatenates the text of every input, in role order."""
    parts = [(ctx.input(role) / "text.txt").read_text() for role in sorted(ctx.inputs)]
    (ctx.out / "text.txt").write_text("+".join(parts))
    ctx.protocol("joiner", "+")
    ctx.write_metrics({"metrics": {"length": float(len("+".join(parts)))}, "n": 1, "n_total": 1,
                       "partial": ctx.param("partial", False)})


def fail_midway(ctx):
    (ctx.out / "half.txt").write_text("half")
    raise InputError(f"{ctx.param('file', 'data.json')}: row 3: field 'x': not a number")


def write_link(ctx):
    (ctx.out / "a.txt").write_text("a")
    (ctx.out / "link").symlink_to("a.txt")


def one_stage_experiments(root: Path, bad_params: str) -> Path:
    """Experiments for executors that run a stage in another process (test/* kinds exist only
    in this one): ``one``, a real and fast stage; ``bad``, the same kind with ``bad_params``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, params in (("one", "{dataset: llava_pretrain, size: 8}"), ("bad", bad_params)):
        (root / f"{name}.yaml").write_text(
            f"schema: 1\nstages:\n  world: {{kind: data/synthetic, params: {params}}}\nresults: []\n")
    return root
