"""The scheduling policy (repro/pipeline/schedule.py) and the wall-clock estimate `repro plan`
prints from it (repro/report/wallclock.py)."""

import re
from types import SimpleNamespace

from repro.executors.resources import GpuPool, Resources
from repro.pipeline.schedule import pick, priority_order
from repro.report.wallclock import critical_path, simulate


def _graph():
    """T: 4-GPU training (10 h) read by four 1-GPU evaluations E1-E4 (2 h each); X: an
    independent 1-GPU evaluation (5 h)."""
    specs = {"T": SimpleNamespace(inputs={}), "X": SimpleNamespace(inputs={})}
    specs.update({f"E{i}": SimpleNamespace(inputs={"model": "T"}) for i in range(1, 5)})
    hours = {"T": 10.0, "X": 5.0, **{f"E{i}": 2.0 for i in range(1, 5)}}
    res = {n: Resources(gpus_per_node=4 if n == "T" else 1) for n in specs}
    return specs, hours, res


def test_simulated_schedule_on_one_node_of_four_gpus():
    specs, hours, res = _graph()
    assert priority_order(specs, hours) == ["T", "X", "E1", "E2", "E3", "E4"]  # longest path first
    assert critical_path(specs, hours) == (12.0, ["T", "E1"])
    # T takes the node (X waits: no backfill past a blocked GPU stage); at 10 h X and E1-E3 fill
    # the four GPUs, E4 follows at 12 h and X ends at 15 h
    assert simulate(specs, hours, res, gpus=4).hours == 15.0
    # two nodes: X runs beside T, the evaluations four at a time
    assert simulate(specs, hours, res, gpus=4, nodes=2).hours == 12.0
    short = simulate(specs, hours, res, gpus=2)
    assert short.hours is None and short.unplaceable == ["T"]


def test_pick_gives_distinct_gpus_and_does_not_backfill_past_a_waiting_big_stage():
    pool = GpuPool([[0, 1, 2, 3]])
    res = {"train": Resources(gpus_per_node=4), "e1": Resources(gpus_per_node=1),
           "e2": Resources(gpus_per_node=1), "cpu": Resources()}
    first = pick(["e1"], res, pool, slots=8)
    assert first == [("e1", [(0, [0])])]
    # the 4-GPU stage does not fit beside e1: e2 is held back so it cannot be starved; CPU goes
    assert pick(["train", "e2", "cpu"], res, pool, slots=8) == [("cpu", [])]
    pool.give(first[0][1])
    assert pick(["train", "e2"], res, pool, slots=8) == [("train", [(0, [0, 1, 2, 3])])]
    assert pick(["e2"], res, pool, slots=8) == []  # the node is taken
    assert pick(["cpu"], res, pool, slots=0) == []  # no job slot left


def test_plan_prints_gpu_hours_and_wall_clock(tmp_path):
    from click.testing import CliRunner

    from repro.cli import _register, cli

    _register()
    out = CliRunner().invoke(cli, ["plan", "all", "--profile", "paper", "--gpus", "4",
                                   "--runs-dir", str(tmp_path / "none")]).output
    gpu_h = float(re.search(r"estimate ([\d.]+) GPU-h in all", out).group(1))
    crit = float(re.search(r"^critical path: ([\d.]+) h \((\S+ -> )+\S+\)$", out, flags=re.M).group(1))
    m = re.search(r"^wall-clock on 1 node x 4 GPUs: estimated ([\d.]+) h for ([\d.]+) GPU-h still to run "
                  r"\(at least ([\d.]+) h on 4 GPUs", out, flags=re.M)
    wall, todo, bound = map(float, m.groups())
    assert todo == gpu_h and abs(bound - gpu_h / 4) < 0.1 and max(bound, crit) <= wall < gpu_h
    two = CliRunner().invoke(cli, ["plan", "all", "--profile", "paper", "--gpus", "4", "--nodes", "2",
                                   "--runs-dir", str(tmp_path / "none")]).output
    assert float(re.search(r"wall-clock on 2 nodes x 4 GPUs: estimated ([\d.]+) h", two).group(1)) < wall
