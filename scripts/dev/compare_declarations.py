#!/usr/bin/env python3
"""Check that two versions of the experiment declarations resolve to the same stages, names aside.

    # at the old commit (e.g. in `git worktree add /tmp/old <rev>`):
    python scripts/dev/compare_declarations.py dump /tmp/before.json
    # at the new one:
    python scripts/dev/compare_declarations.py dump /tmp/after.json
    python scripts/dev/compare_declarations.py compare /tmp/before.json /tmp/after.json

`dump` writes every experiment's resolved stages (kind, params, inputs, seed) in both profiles.
`compare` matches stages by a name-free signature (kind, params, seed and, by role, the
signatures of their inputs), so renamed stages match; report stages match by the cells they show
(evaluation signature, metric). It fails if a stage exists only after, if a stage that a result
needed exists only before, or if a report lost a cell. Stages present only before that nothing
needed are listed (unused includes). Used once, for the evaluation-matrix restructure.
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def dump(path: str) -> None:
    from repro.config.load import list_experiments, load_experiment

    out = {}
    for profile in ("tiny", "paper"):
        for name in list_experiments():
            exp = load_experiment(name, profile)
            out[f"{profile}/{name}"] = {"results": list(exp.results), "stages": {
                s.name: {"kind": s.kind, "params": s.params, "inputs": s.inputs, "seed": s.seed}
                for s in exp.stages.values()}}
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)


def _signatures(stages: dict):
    memo: dict[str, str] = {}

    def sig(name: str) -> str:
        if name not in memo:
            s = stages[name]
            memo[name] = ("report:" + name) if s["kind"].startswith("report/") else json.dumps(
                [s["kind"], s["params"], s["seed"], sorted((r, sig(u)) for r, u in s["inputs"].items())],
                sort_keys=True)
        return memo[name]
    return {n: sig(n) for n in stages}, sig


def _primary(stages: dict, name: str) -> str:
    from repro.evaluate.benchmarks import get_benchmark

    return get_benchmark(stages[name]["params"]["benchmark"]).primary


def _cells(stages: dict, sig, name: str) -> set:
    """(evaluation signature, metric) of every cell a report stage shows, in any table dialect."""
    s, out = stages[name], set()
    p, ins = s["params"], s["inputs"]

    def variants(role):
        return [ins[role]] if role in ins else [u for r, u in ins.items() if r.startswith(role + "@")]
    if s["kind"] == "report/sweep":
        for c in p["columns"]:
            out |= {(sig(u), c.get("metric") or _primary(stages, u)) for u in variants(c["role"])}
    elif p.get("columns") and isinstance(p["columns"][0], dict) and "units" in p["columns"][0]:
        metric = {c["label"]: c["metric"] for c in p["columns"]}
        for row in p["rows"]:
            for col, role in row["cells"].items():
                out |= {(sig(u), metric[col]) for u in variants(role)}
    else:
        for row in p["rows"]:
            for spec in row["cells"].values():
                role, _, m = spec.partition(".")
                out.add((sig(ins[role]), m or _primary(stages, ins[role])))
    return out


def _needed(stages: dict, results: list) -> set:
    todo = [n for n in stages if n in results or n.split("@")[0] in results]
    needed: set = set()
    while todo:
        n = todo.pop()
        if n not in needed:
            needed.add(n)
            todo.extend(stages[n]["inputs"].values())
    return needed


def compare(before_path: str, after_path: str) -> bool:
    before, after = json.load(open(before_path)), json.load(open(after_path))
    ok = True
    for key in sorted(before):
        b, a = before[key]["stages"], after[key]["stages"]
        bs, bsig = _signatures(b)
        as_, asig = _signatures(a)
        compute = lambda st, sigs: Counter(v for n, v in sigs.items() if not st[n]["kind"].startswith("report/"))  # noqa: E731
        extra, missing = compute(a, as_) - compute(b, bs), compute(b, bs) - compute(a, as_)
        needed = _needed(b, before[key]["results"])
        lost = [n for n, v in bs.items() if v in missing and n in needed]
        brep = {n: _cells(b, bsig, n) for n in b if b[n]["kind"].startswith("report/")}
        arep = {n: _cells(a, asig, n) for n in a if a[n]["kind"].startswith("report/")}
        cells_kept = all(brep[n] <= arep.get(n, set()) for n in brep)
        added = {n: len(arep[n] - brep[n]) for n in brep if n in arep and arep[n] - brep[n]}
        good = not extra and not lost and cells_kept
        ok &= good
        dropped = sorted(n for n, v in bs.items() if v in missing)
        print(f"{key:24} {'OK' if good else 'DIFF'}  stages {len(b)} -> {len(a)}; equal compute stages "
              f"{sum(compute(a, as_).values())}; report cells kept: {cells_kept} (added: {added or '-'}); "
              f"unused, dropped: {', '.join(dropped) or '-'}")
        for v in extra:
            print("   only after:", v[:300])
        for n in lost:
            print("   needed, only before:", n)
    return ok


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
    else:
        sys.exit(__doc__)
