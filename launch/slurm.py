"""``ssp slurm RECIPE --nodes N --gpus-per-node G``: the recipe as one sbatch job, stage by stage.

    ssp slurm recipes/vibethinker_1p5b.yaml --nodes 4 --gpus-per-node 8 --partition gpu --submit

Writes ``runs/<name>/slurm/recipe.yaml`` (the recipe resolved with the command line's overrides:
the job runs what was asked even if the YAML file changes before it starts) and
``runs/<name>/slurm/job.sbatch``, which runs every stage of the recipe with the launcher it needs:

- training stages (sft, rl): ``srun`` one task per node, each ``ssp stage`` starting torchrun on
  its node's GPUs, joined by a static rendezvous at the first node (``launch/topology.py``);
- sampling stages (data, probe, merge, eval): ``srun`` on the first node only, its GPUs sampling
  through ``generation.data_parallel`` engines (``sampling/data_parallel.py``).

Each node's one task gets ``--cpus-per-task`` = ``--cpus-per-node``, or else ``--gpus-per-node`` x
``DEFAULT_CPUS_PER_GPU`` (8), exported to every step (``SRUN_CPUS_PER_TASK``): a partition without a
per-GPU CPU default would give a step one CPU. Training stages meet at ports 20000-28999 derived
from the job id (``RDZV_PORT_BASE``), below Linux's ephemeral range (32768-60999), where an
outgoing connection of the node may already hold one.

Each stage logs to ``runs/<name>/logs/<stage>-<job id>[-node<n>].log`` (appended to by a requeued
job, which keeps its id). A failed node ends its step at once (``--kill-on-bad-exit``) instead of
leaving the others in the rendezvous until its timeout. The job is requeueable:
after a preemption Slurm starts it again, completed stages are skipped (the manifest) and the
interrupted one resumes from its last complete checkpoint; nothing in the script tracks progress.
Departure: the sampling stages leave the other nodes idle (their GPUs still count in Slurm's
bill, not in ``cost/*``, which counts the GPUs a stage uses); ``--nodes 1`` wastes nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ssp.config.recipe import Recipe, save_recipe
from ssp.core.errors import RecipeError
from ssp.launch.stages import STAGES

# Rendezvous ports: RDZV_PORT_BASE + (job id mod RDZV_PORT_SLOTS) * RDZV_PORT_STRIDE + the stage's
# index, so 20000..28999: below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
# by default), where any outgoing connection of the node may hold the port, and clear of torchrun's
# defaults (29400, 29500). Jobs sharing a node differ unless their ids differ by a multiple of 900.
RDZV_PORT_BASE = 20000
RDZV_PORT_SLOTS = 900
RDZV_PORT_STRIDE = 10  # ports per job: one per stage (a stage's may linger in TIME_WAIT)
# CPUs per GPU the job asks for when --cpus-per-node is not given: what most GPU nodes have (an
# 8-GPU node with 64 or more cores). Without any, a partition with no per-GPU CPU default gives
# each step one CPU for torchrun, its 8 ranks, their data loaders and vLLM.
DEFAULT_CPUS_PER_GPU = 8


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int
    gpus_per_node: int
    partition: str = ""
    time: str = ""  # sbatch --time, e.g. 2-00:00:00; empty = the partition's default
    account: str = ""
    cpus_per_node: int = 0  # sbatch --cpus-per-task (one task per node); 0 = gpus_per_node * cpus_per_gpu
    cpus_per_gpu: int = DEFAULT_CPUS_PER_GPU
    python: str = "python"  # the interpreter with ssp installed, as the compute nodes see it
    workdir: str = "."  # where the job runs (relative run folders are relative to it)

    @property
    def cpus(self) -> int:
        """sbatch --cpus-per-task: the CPUs of each node's one task, which every step runs in."""
        return self.cpus_per_node or self.gpus_per_node * self.cpus_per_gpu


def _check(recipe: Recipe, opts: SlurmOptions) -> None:
    if opts.nodes < 1 or opts.gpus_per_node < 0:
        raise RecipeError(f"--nodes {opts.nodes} --gpus-per-node {opts.gpus_per_node}: need >= 1 node")
    if opts.cpus_per_node < 0 or opts.cpus_per_gpu < 1:
        raise RecipeError(
            f"--cpus-per-node {opts.cpus_per_node}, {opts.cpus_per_gpu} CPUs per GPU: must be >= 1"
        )
    if not opts.cpus:
        raise RecipeError(
            f"--gpus-per-node {opts.gpus_per_node}: say how many CPUs each node gives the job "
            "(--cpus-per-node N): without it Slurm may give each step one CPU"
        )
    for name in recipe.stages:
        spec = STAGES[name]
        want = spec.nproc_setting(recipe) if spec.distributed else "auto"
        if want != "auto" and opts.gpus_per_node and want > opts.gpus_per_node:
            raise RecipeError(
                f"{name}.nproc_per_node={want}, but the job asks for --gpus-per-node {opts.gpus_per_node}: "
                f"set {name}.nproc_per_node=auto (every GPU of each node) or ask for more GPUs"
            )
        spec.job_check(recipe, opts.nodes)


def sbatch_script(recipe: Recipe, recipe_file: str, opts: SlurmOptions) -> str:
    """The job script (a pure function of its arguments: the tests compare it with a reviewed file)."""
    _check(recipe, opts)
    run_dir = recipe.run_dir
    logs = run_dir / "logs"
    directives = [
        f"--job-name=ssp-{recipe.run_name}",
        f"--nodes={opts.nodes}",
        "--ntasks-per-node=1",
        *([f"--gpus-per-node={opts.gpus_per_node}"] if opts.gpus_per_node else []),
        f"--cpus-per-task={opts.cpus}",  # never Slurm's default: that can be 1 CPU for the whole node
        *([f"--partition={opts.partition}"] if opts.partition else []),
        *([f"--account={opts.account}"] if opts.account else []),
        *([f"--time={opts.time}"] if opts.time else []),
        f"--chdir={opts.workdir}",
        f"--output={logs}/slurm-%j.out",  # relative to --chdir; write_job creates the folder
        "--open-mode=append",  # a requeued job appends to its log
        "--requeue",  # after a preemption: run again; done stages are skipped, the interrupted resumes
    ]
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# The ssp recipe {recipe.run_name}: {len(recipe.stages)} stages on {opts.nodes} node(s) x "
        f"{opts.gpus_per_node} GPU(s). Written by `ssp slurm` (docs/cluster.md); submit with sbatch.",
        *[f"#SBATCH {d}" for d in directives],
        "set -euo pipefail",
        f"cd {q(opts.workdir)}",
        f"export RECIPE={q(recipe_file)}",
        f"export SSP={q(opts.python + ' -m ssp.launch.cli')}",
        f"export LOGS={q(str(logs))}",
        'mkdir -p "$LOGS"',
        'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"  # srun does not inherit it (Slurm 22.05+)',
        "# node 0 of every training stage: the first node of the allocation",
        'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export HEAD_NODE",
        f"export RDZV_PORT=$(({RDZV_PORT_BASE} + SLURM_JOB_ID % {RDZV_PORT_SLOTS} * {RDZV_PORT_STRIDE}))"
        "  # + the stage's index; below the ephemeral ports (32768+)",
        'echo "ssp: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST, '
        'head $HEAD_NODE:$RDZV_PORT"',
        "",
        "# what the first node can run, and what the recipe refers to (a typo fails here, not hours in)",
        'srun --nodes=1 --ntasks=1 $SSP doctor "$RECIPE"',
    ]
    for i, name in enumerate(recipe.stages):
        lines.append("")
        if STAGES[name].distributed and opts.nodes > 1:
            lines += [  # a port per stage: the previous stage's may linger in TIME_WAIT
                f"# {name}: one torchrun per node, {opts.nodes} nodes joined at the head node",
                f"srun --nodes={opts.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 --open-mode=append \\",
                f'  --output="$LOGS/{name}-%j-node%n.log" \\',
                f'  bash -c \'$SSP stage {name} "$RECIPE" --nnodes {opts.nodes} --node-rank "$SLURM_NODEID" '
                f'--rdzv-endpoint "$HEAD_NODE:$((RDZV_PORT + {i}))"\'',
            ]
        else:
            what = STAGES[name].on_one_node
            lines += [
                f"# {name}: {what}",
                f'srun --nodes=1 --ntasks=1 --open-mode=append --output="$LOGS/{name}-%j.log" $SSP stage {name} "$RECIPE"',
            ]
    lines += [
        "",
        "# every stage is done: `ssp run` skips them all and writes the run's report",
        'srun --nodes=1 --ntasks=1 $SSP run "$RECIPE"',
        "",
    ]
    return "\n".join(lines)


def write_job(recipe: Recipe, opts: SlurmOptions) -> Path:
    """Write ``<run>/slurm/recipe.yaml`` and ``<run>/slurm/job.sbatch``; returns the script."""
    folder = recipe.run_dir / "slurm"
    recipe_file = folder / "recipe.yaml"
    script = sbatch_script(recipe, str(recipe_file), opts)  # checks first: nothing written on error
    save_recipe(recipe, recipe_file)
    (recipe.run_dir / "logs").mkdir(parents=True, exist_ok=True)  # Slurm does not create --output's folder
    path = folder / "job.sbatch"
    path.write_text(script)
    path.chmod(0o755)
    return path


def submit(script: Path) -> str:
    """``sbatch SCRIPT``; returns sbatch's answer (the job id)."""
    if shutil.which("sbatch") is None:
        raise RecipeError(f"--submit: no sbatch on this machine; submit {script} from a Slurm login node")
    out = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RecipeError(f"sbatch {script} failed (exit {out.returncode}): {out.stderr.strip()}")
    return out.stdout.strip()
