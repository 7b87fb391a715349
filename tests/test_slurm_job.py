"""``ssp slurm``'s job script: the CPUs each step gets, and ports no other socket can hold.

A job without ``--cpus-per-task`` gets one CPU per task on a partition with no per-GPU CPU
default: torchrun, 8 ranks and vLLM on one core. Ports in Linux's ephemeral range
(``net.ipv4.ip_local_port_range``, 32768-60999 by default) can be held by any outgoing connection
on the node when the rendezvous starts."""

from __future__ import annotations

import re
import subprocess

import pytest

from ssp.core.errors import RecipeError

from .conftest import TINY, ssp_cmd

EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range, both ends included
ALL_STAGES = ["sft.nproc_per_node=auto", "rl.nproc_per_node=auto", "generation.data_parallel=auto"]


def _script(*overrides: str, **opts) -> str:
    from ssp.config.recipe import load_recipe
    from ssp.launch.slurm import SlurmOptions, sbatch_script

    recipe = load_recipe(TINY, [*ALL_STAGES, *overrides])
    return sbatch_script(recipe, "recipe.yaml", SlurmOptions(**{"nodes": 2, "gpus_per_node": 8, **opts}))


def _directives(script: str) -> dict[str, str]:
    found = (line.removeprefix("#SBATCH --").partition("=") for line in script.splitlines())
    return {k: v for k, _, v in found if not k.startswith("#")}


def test_every_step_gets_the_cpus_of_its_node_by_default():
    """No --cpus-per-node: 8 CPUs per GPU of the node (SlurmOptions.cpus_per_gpu), exported to
    every srun step (srun does not inherit the job's --cpus-per-task since Slurm 22.05)."""
    script = _script()
    assert _directives(script).get("cpus-per-task") == "64"
    assert 'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"' in script
    from ssp.launch.slurm import DEFAULT_CPUS_PER_GPU

    assert DEFAULT_CPUS_PER_GPU == 8
    assert _directives(_script(cpus_per_gpu=12))["cpus-per-task"] == "96"
    assert _directives(_script(gpus_per_node=4, cpus_per_node=20))["cpus-per-task"] == "20"
    with pytest.raises(RecipeError, match="--gpus-per-node 0: say how many CPUs each node gives the job"):
        _script(gpus_per_node=0)
    assert _directives(_script(gpus_per_node=0, cpus_per_node=16))["cpus-per-task"] == "16"


@pytest.mark.slow
def test_ssp_slurm_asks_for_cpus_without_being_told(tmp_path):
    args = ["slurm", str(TINY), f"output_root={tmp_path}", "--nodes", "1", "--gpus-per-node", "4"]
    out = subprocess.run(ssp_cmd(*args), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _directives((tmp_path / "tiny" / "slurm" / "job.sbatch").read_text()).get("cpus-per-task") == "32"
    out = subprocess.run(ssp_cmd(*args, "--cpus-per-gpu", "12"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _directives((tmp_path / "tiny" / "slurm" / "job.sbatch").read_text()).get("cpus-per-task") == "48"


def _ports(script: str):
    """f(job id) -> every port the script binds: the rendezvous base and each stage's offset."""
    base = re.search(r"^export RDZV_PORT=\$\(\((.+?)\)\)", script, re.M).group(1)
    offsets = sorted({int(i) for i in re.findall(r"RDZV_PORT \+ (\d+)\)", script)} | {0})
    assert re.fullmatch(r"[\d\s+*%()A-Z_]+", base), base  # plain arithmetic: the same in bash and Python
    code = compile(base, "RDZV_PORT", "eval")
    return lambda job: [eval(code, {"SLURM_JOB_ID": job}) + i for i in offsets], offsets


def test_no_port_of_the_job_is_in_the_ephemeral_range_and_consecutive_jobs_differ():
    """Every rendezvous port the script computes, for every job id (the formula cycles well within
    the first 100,000 ids; the largest 32-bit ids too), is outside 32768-60999, below 65536 and
    not torchrun's default 29500 or c10d's 29400; two consecutive jobs sharing a node differ."""
    from ssp.launch.stages import STAGES

    script = _script()
    ports_of, offsets = _ports(script)
    assert offsets == [0, 1, 4]  # sft is stage 1, rl stage 4 of the tiny recipe
    assert ports_of(0) != ports_of(1)
    jobs = [*range(100_000), 2**31 - 1, 2**32 - 2, 2**32 - 1]
    previous = None
    for job in jobs:
        ports = ports_of(job)
        slot = range(ports[0], ports[0] + len(STAGES))  # the port of any stage index a recipe can have
        assert all(1024 < p < 65536 and p not in EPHEMERAL and p not in (29400, 29500) for p in slot), job
        assert set(ports) <= set(slot), job
        if previous is not None and job == previous[0] + 1:
            assert ports[0] != previous[1][0], job
        previous = (job, ports)


def test_a_vllm_server_port_in_the_ephemeral_range_is_refused():
    """The rl stage's own vLLM server (single-node jobs) binds rl.rollout.server_port on the node."""
    server = ["rl.rollout.engine=vllm", "rl.rollout.vllm_mode=server", "rl.rollout.server_gpus=2"]
    assert "$SSP stage rl" in _script(*server, nodes=1)  # the default 8000 is fine
    with pytest.raises(RecipeError, match=r"rl.rollout.server_port=40000 is in Linux's ephemeral port range"):
        _script(*server, "rl.rollout.server_port=40000", nodes=1)
