"""Which PKU-SafeRLHF pairs safety DPO trains on, and which response is chosen [choice].

The paper names PKU-SafeRLHF as its text preference data but not how pairs were picked. Safety
DPO is usually run on pairs that separate a safe from an unsafe answer, so the default keeps
exactly those (``is_response_0_safe != is_response_1_safe``) with the safe response chosen; the
alternatives stay one ``--set`` away (``PAIR_SELECTIONS``). Other preference data (SPA-VL) has no
safety labels per response and passes unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from repro.errors import InputError

PAIR_SELECTIONS = {
    "safe_vs_unsafe": "pairs where exactly one response is safe; chosen = the safe one",
    "safer": "every pair; chosen = safer_response_id (also when both or neither are safe)",
    "better": "every pair; chosen = better_response_id (PKU-SafeRLHF's helpfulness preference)",
}
DEFAULT_PAIR_SELECTION = "safe_vs_unsafe"
SELECTED_DATASETS = ("pku_saferlhf",)


def check_selection(rule) -> str:
    if rule not in PAIR_SELECTIONS:
        raise InputError(f"params: pair_selection: {rule!r}; expected one of {', '.join(PAIR_SELECTIONS)}")
    return rule


def select_pairs(pairs: list, rule: str) -> list:
    """PKU-SafeRLHF pairs (``repro.data.preference``) kept and oriented by ``rule``."""
    check_selection(rule)
    out = []
    for pair in pairs:
        m = pair.meta
        first = m["chosen_id"]
        text = {first: pair.chosen, 1 - first: pair.rejected}
        safe = {first: m["chosen_safe"], 1 - first: m["rejected_safe"]}
        if rule == "safe_vs_unsafe":
            if safe[0] == safe[1]:
                continue
            pick = 0 if safe[0] else 1
        else:
            pick = m["safer_response_id" if rule == "safer" else "better_response_id"]
        out.append(replace(pair, chosen=text[pick], rejected=text[1 - pick],
                           meta={**m, "chosen_id": pick, "chosen_safe": safe[pick],
                                 "rejected_safe": safe[1 - pick]}))
    return out


def selecting_loader(load, rule: str, counts: dict):
    """``load(dir, split)`` whose PKU-SafeRLHF pairs are selected by ``rule``; ``counts`` gets
    per dataset directory the pairs read and kept."""
    from repro.data import open_dataset

    def wrapped(data_dir, split):
        pairs = load(data_dir, split)
        if open_dataset(data_dir).name not in SELECTED_DATASETS:
            return pairs
        kept = select_pairs(pairs, rule)
        counts[str(data_dir)] = {"pairs_read": len(pairs), "pairs_kept": len(kept)}
        if not kept:
            raise InputError(f"{data_dir}: pair_selection {rule}: no pair left of {len(pairs)}")
        return kept
    return wrapped
