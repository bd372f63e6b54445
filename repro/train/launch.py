"""Run one training stage on several processes (GPUs, nodes) under ``accelerate launch``.

The pipeline runner stays one process: a training stage whose param ``launch`` names a config in
``configs/launch/`` (``accelerate_1gpu``, ``accelerate_4gpu``, ``accelerate_multinode``) writes
its context to a spec file and starts ``accelerate launch --config_file <cfg> -m
repro.train.launch <spec>``; every rank rebuilds the context and runs the same stage function,
the Trainer shards data and gradients (DeepSpeed through the stage's ``deepspeed`` param), and
only rank 0 writes into the stage's output (other ranks write to a throwaway directory).
The spec is the stage's ``StageRequest`` (``repro/stages/request.py``, the format executors hand
to ``repro stage-exec``); records rank 0 makes (protocol choices, dependencies) come back through
``<spec>.rank0.json``.

Multi-node: every node runs the same command with its ``--machine_rank`` (see
``scripts/slurm/train.sbatch``); ``num_processes`` counts all processes of all nodes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from repro.errors import InputError
from repro.stages import STAGE_KINDS
from repro.stages.request import StageRequest, read_rank_result, write_rank_result

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "configs" / "launch"
IN_RANK = "REPRO_LAUNCHED"  # set inside launched ranks: a stage there must not launch again


def config_path(name: str) -> Path:
    path = LAUNCH_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in LAUNCH_DIR.glob("accelerate_*.yaml"))
        raise InputError(f"params: launch: {name!r}; no {path.name} (known: {', '.join(known)})")
    return path


def accelerate_command(spec: Path, *, config: str | None, num_processes: int | None = None,
                       cpu: bool = False, extra: list[str] | None = None, wrap: bool = True) -> list[str]:
    """The command line running ``spec`` on every rank: ``accelerate launch`` with a config;
    with ``cpu``, torch's own launcher (DDP over gloo), because accelerate's multi-CPU path
    needs MPI/oneCCL, which a CPU test machine does not have. ``wrap=False``: the multi-node
    command as one node runs it, without the ``srun`` around it (for ``repro plan``)."""
    if cpu:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={num_processes or 1}"]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
        if config is not None:
            cmd += ["--config_file", str(config_path(config))]
        if num_processes is not None:
            cmd += ["--num_processes", str(num_processes)]
    cmd += list(extra or []) + ["-m", "repro.train.launch", str(spec)]
    return slurm_wrap(cmd) if wrap and config == "accelerate_multinode" else cmd


def slurm_wrap(cmd: list[str]) -> list[str]:
    """Inside a SLURM allocation of several nodes: one ``accelerate launch`` per node via
    ``srun``, each with its node rank; rank 0's node is the rendezvous host."""
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
    gpus = int(os.environ.get("REPRO_GPUS_PER_NODE", "4"))
    if nodes < 2:
        raise InputError("params: launch: 'accelerate_multinode' needs a SLURM allocation of "
                         f"2+ nodes (SLURM_JOB_NUM_NODES={nodes})")
    head = os.environ.get("MASTER_ADDR") or os.environ["SLURMD_NODENAME"]
    at = cmd.index("--config_file") + 2
    per_node = (cmd[:at] + ["--num_machines", str(nodes), "--num_processes", str(nodes * gpus),
                            "--main_process_ip", head, "--machine_rank", "$SLURM_NODEID"] + cmd[at:])
    line = " ".join(shlex.quote(c) for c in per_node).replace("'$SLURM_NODEID'", "$SLURM_NODEID")
    return ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "bash", "-c", line]


def run_launched(ctx, *, config: str | None, num_processes: int | None = None, cpu: bool = False,
                 extra: list[str] | None = None) -> None:
    """Run ``ctx``'s stage under ``accelerate launch``; rank 0's records merge back into ``ctx``."""
    # several nodes read the spec: REPRO_LAUNCH_DIR must then be on a shared file system
    with tempfile.TemporaryDirectory(prefix="repro-launch-", dir=os.environ.get("REPRO_LAUNCH_DIR")) as tmp:
        spec = Path(tmp) / "spec.json"
        StageRequest.of(ctx).write(spec)  # absolute paths: every rank sees this file system
        cmd = accelerate_command(spec, config=config, num_processes=num_processes, cpu=cpu, extra=extra)
        env = {**os.environ, IN_RANK: "1"}
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            raise InputError(f"accelerate launch ({config or 'flags'}): exit {done.returncode}: "
                             f"{failure_line(done.stdout)}")
        records = read_rank_result(spec)
    ctx.protocol_choices.update(records["protocol"])
    ctx.dependencies.extend(records["dependencies"])
    ctx.protocol("launch", {"config": config, "world_size": records["world_size"]})


def failure_line(output: str) -> str:
    """The line that says why ranks failed: a rank's own exception (``repro.errors.InputError:
    ...``), not the launcher's ChildFailedError or its closing banner."""
    for line in output.splitlines():
        if re.match(r"[\w.]+(Error|Exception): \S", line) and "torch.distributed.elastic" not in line:
            return line.strip()
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip(" =-")]
    return lines[-1] if lines else "no output"


def maybe_launch(ctx) -> bool:
    """If the stage asks for ``launch`` and this is not already a launched rank, launch it."""
    config = ctx.param("launch", None)
    if config is None or os.environ.get(IN_RANK):
        return False
    run_launched(ctx, config=str(config))
    return True


def rank_main(spec_path: str) -> None:
    """Entry point of each rank: rebuild the context and run the stage function."""
    spec = Path(spec_path)
    request = StageRequest.read(spec)
    rank = int(os.environ.get("RANK", "0"))
    with tempfile.TemporaryDirectory(prefix=f"repro-rank{rank}-") as tmp:
        ctx = request.context(out=None if rank == 0 else Path(tmp))
        os.environ[IN_RANK] = "1"
        STAGE_KINDS.get(request.kind)(ctx)
    if rank == 0:
        write_rank_result(spec, ctx, int(os.environ.get("WORLD_SIZE", "1")))


if __name__ == "__main__":
    rank_main(sys.argv[1])
