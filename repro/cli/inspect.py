"""``repro list``, ``status``, ``plan``, ``ls``: look without running; ``report``: render a
finished run's manifest as report.md and report.html (runs nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from repro.cli.options import executor_options, profile_option, runs_dir_option, set_option


@click.command("list")
@profile_option
def list_cmd(profile):
    """List experiments and their stages."""
    from repro.config.load import list_experiments, load_experiment

    for name in list_experiments():
        exp = load_experiment(name, profile)
        click.echo(f"{name}: {exp.description}")
        width = max(len(s) for s in exp.stages)
        for spec in exp.stages.values():
            ins = ", ".join(f"{r}<-{u}" for r, u in spec.inputs.items())
            click.echo(f"  {spec.name:<{width}} {spec.kind:<22} {ins}")


@click.command("status")
@click.argument("experiment")
@profile_option
@runs_dir_option
@set_option
@executor_options
def status_cmd(experiment, profile, runs_dir, overrides, executor_name, executor_config):
    """Per stage: done, stale (and why) or missing (keyed as EXECUTOR would run it), and the
    SLURM job id of the last job graph submitted for it."""
    from repro.config.load import load_experiment
    from repro.executors import make_executor
    from repro.pipeline.status import experiment_status

    from repro.executors.slurm_graph import job_ids

    exp = load_experiment(experiment, profile, overrides)
    jobs = job_ids(runs_dir, exp.name)  # the last SLURM job graph submitted for it, if any
    for st in experiment_status(exp, runs_dir, make_executor(executor_name, profile, executor_config)):
        why = f"  ({'; '.join(st.reasons)})" if st.reasons else ""
        job = f"  [slurm job {jobs[st.name]}]" if st.name in jobs else ""
        click.echo(f"{st.name:<24} {st.state:<8}{why}{job}")


@click.command("plan")
@click.argument("experiment")
@profile_option
@runs_dir_option
@set_option
@executor_options
@click.option("--gpus", "gpus", type=click.IntRange(min=1), default=4, show_default=True,
              help="GPUs per node for the wall-clock estimate (the paper: 4 x A100).")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Nodes for the wall-clock estimate.")
def plan_cmd(experiment, profile, runs_dir, overrides, executor_name, executor_config, gpus, nodes):
    """Every stage with its resolved params, whether it is cached in RUNS_DIR, where it runs
    (executor, image), its launch command, the GPUs it needs and a GPU-hour estimate (cost
    model: repro/report/estimates.py); then the critical path and the wall-clock time on
    NODES x GPUS (repro/report/wallclock.py); nothing is run."""
    from repro.config.load import load_experiment
    from repro.evaluate.plan import describe_stage
    from repro.executors import make_executor
    from repro.executors.base import image_bases
    from repro.report.estimates import estimate, total_hours

    exp = load_experiment(experiment, profile, overrides)
    executor = make_executor(executor_name, profile, executor_config)
    click.echo(f"{exp.name} ({profile}) from {exp.source}")
    states = _states(exp, runs_dir, executor)
    pins = image_bases(profile)
    wheres = {name: executor.describe(spec.kind, profile) for name, spec in exp.stages.items()}
    for line in _base_images(wheres.values()):
        click.echo(line)
    estimates = []
    for spec in exp.stages.values():
        est = estimate(exp, spec)
        estimates.append(est)
        hours = f"{est.gpu_hours:.1f} GPU-h" if est.gpu_hours is not None else "-"
        click.echo(f"- {spec.name}: {spec.kind} seed={spec.seed} inputs={json.dumps(spec.inputs)}")
        click.echo(f"    [{states.get(spec.name, 'missing')}] gpus={est.gpus} estimate={hours} ({est.note})")
        click.echo(f"    runs: {_where(wheres[spec.name], pins)}")
        if spec.params.get("launch"):
            click.echo(f"    launch: {_launch_line(spec.params['launch'])}")
        for key, value in sorted(spec.params.items()):
            click.echo(f"    {key}: {json.dumps(value)}")
        for line in describe_stage(spec.kind, spec.params, spec.inputs):  # judge and protocol
            click.echo(f"    {line}")
    todo = [e for e, s in zip(estimates, exp.stages) if states.get(s) != "done"]
    cached = sum(1 for s in exp.stages if states.get(s) == "done")
    click.echo(f"total: {len(exp.stages)} stages, {cached} cached in {runs_dir}; "
               f"max GPUs per stage {max((e.gpus for e in estimates), default=0)}; "
               f"estimate {total_hours(estimates):.1f} GPU-h in all, {total_hours(todo):.1f} GPU-h "
               "still to run (assumptions: repro/report/estimates.py)")
    for line in _wall_lines(exp, dict(zip(exp.stages, estimates)), states, gpus, nodes):
        click.echo(line)


def _wall_lines(exp, estimates: dict, states: dict[str, str], gpus: int, nodes: int) -> list[str]:
    """The critical path and the simulated wall-clock of the stages still to run."""
    from repro.executors.resources import stage_resources
    from repro.report.wallclock import simulate, stage_hours

    if exp.profile == "tiny":
        return ["wall-clock: no estimate (tiny profile: CPU only, no cost model)"]
    res = {n: stage_resources(s.kind, s.params, exp.profile) for n, s in exp.stages.items()}
    hours = {n: 0.0 if states.get(n) == "done" else stage_hours(estimates[n].gpu_hours, res[n])
             for n in exp.stages}
    wall = simulate(exp.stages, hours, res, gpus, nodes)
    where = f"{nodes} node{'s' if nodes > 1 else ''} x {gpus} GPU{'s' if gpus > 1 else ''}"
    todo = sum((estimates[n].gpu_hours or 0.0) for n in exp.stages if states.get(n) != "done")
    path = " -> ".join(n for n in wall.critical_path if hours[n] > 0)
    lines = [f"critical path: {wall.critical_hours:.1f} h ({path or 'no GPU stage'})"]
    if wall.hours is None:
        need = ", ".join(f"{n} ({res[n].nodes} x {res[n].gpus_per_node} GPUs)" for n in wall.unplaceable[:3])
        lines.append(f"wall-clock on {where}: not estimable: {len(wall.unplaceable)} stage(s) need more "
                     f"than that: {need}")
    else:
        lines.append(f"wall-clock on {where}: estimated {wall.hours:.1f} h for {todo:.1f} GPU-h still to run "
                     f"(at least {todo / (gpus * nodes):.1f} h on {gpus * nodes} GPUs, "
                     f"{wall.critical_hours:.1f} h on the critical path; scheduler policy "
                     "repro/pipeline/schedule.py, stages without a GPU estimate count 0 h)")
    return lines


def _where(where: dict, pins: dict[str, str]) -> str:
    """Executor, image and the base image it is built from (its pinned digest, or "unpinned")."""
    image = f" image {where['image']} ({where['role']})" if where.get("image") else ""
    extra = f" via {where['runtime']}" if where.get("runtime") else ""
    base = f"; built from {pins[where['role']]}" if where.get("image") and where.get("role") in pins else ""
    return f"{where['executor']}{image}{extra}{base}"


def _base_images(wheres) -> list[str]:
    """The pinned bases of manifest.lock's images, and which image this plan builds on each."""
    from repro.provenance import pins

    used: dict[str, str] = {}
    for where in wheres:
        if where.get("lock_image"):
            used.setdefault(where["lock_image"], where["image"])
    if not used:
        return []
    lines = ["base images (manifest.lock images, by digest):"]
    for name, img in pins.load_lock()["images"].items():
        base = f"{img['ref']}@{img['digest']}" if img["digest"] else f"{img['ref']} (UNPINNED)"
        runs = f"-> {used[name]}" if name in used else "(not used by this plan)"
        source = f" [{img['source']}]" if img.get("source") else ""
        lines.append(f"  {name}: {base}{source} {runs}")
    return lines


def _launch_line(config: str) -> str:
    """The command each rank set runs (the stage writes <spec.json> when it starts)."""
    import shlex

    from repro.train.launch import LAUNCH_DIR, accelerate_command

    cmd = accelerate_command(Path("<spec.json>"), config=str(config), wrap=False)
    cmd[0] = "python"  # this interpreter's path says nothing about the machine that will run it
    cmd = [c.replace(f"{LAUNCH_DIR.parents[1]}/", "") for c in cmd]  # repository-relative
    note = ("  (on each node through srun, with --num_machines, --main_process_ip and "
            "--machine_rank $SLURM_NODEID)") if config == "accelerate_multinode" else ""
    return " ".join(shlex.quote(c) for c in cmd) + note


def _states(exp, runs_dir, executor) -> dict[str, str]:
    """done/stale/missing per stage; a runs dir that does not exist is not created. A plan needs
    no daemon, cluster or GPU: where the executor cannot be asked which environment it would key
    stages with, the cache state is "unknown" and the reason is said once."""
    if not runs_dir.is_dir():
        return {}
    from repro.errors import ReproError
    from repro.pipeline.status import experiment_status

    try:
        return {st.name: st.state for st in experiment_status(exp, runs_dir, executor)}
    except ReproError as exc:
        click.echo(f"cache state unknown ({exc})")
        return {name: "unknown" for name in exp.stages}


@click.command("report")
@click.argument("experiment")
@runs_dir_option
def report_cmd(experiment, runs_dir):
    """Write RUNS_DIR/EXPERIMENT/report.md and report.html from the run's manifest (tables,
    figures, judge agreement, provenance; report.html adds a browser over every sample)."""
    from repro.report.html import write_html
    from repro.report.report import write_report

    click.echo(f"report: {write_report(runs_dir / experiment)}")
    click.echo(f"report: {write_html(runs_dir / experiment)}")


@click.command("ls")
@click.argument("kind", type=click.Choice(["stages", "params", "experiments"]), default="stages")
def ls_cmd(kind):
    """List a registry: stage kinds (image, GPUs, where they are defined), every kind's params
    (type, range, default and where the default comes from), or experiments."""
    if kind in ("stages", "params"):
        from repro.stages import STAGE_KINDS, describe

        for name in STAGE_KINDS.names():
            k = describe(name)
            click.echo(f"{name:<26} image={k.image:<5} gpus={k.gpus:<6} {k.target}")
            if kind == "params":
                for p in k.params or ():
                    click.echo(f"    {p.describe()}")
    else:
        from repro.config.load import list_experiments

        click.echo("\n".join(list_experiments()))


COMMANDS = [list_cmd, status_cmd, plan_cmd, ls_cmd, report_cmd]
