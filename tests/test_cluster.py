"""Beyond one machine: training stages across nodes (torchrun rendezvous), on one CPU machine.

Two "nodes" are two ``ssp stage`` launchers started at once with ``--nnodes 2`` and node ranks
0 and 1 and one rendezvous endpoint, each starting its own torchrun (one gloo process each): the
same commands ``ssp slurm``'s script runs on two hosts.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from core.errors import RecipeError, StageError
from core.manifest import Manifest
from launch.runner import execute_here, run_stage
from launch.topology import Topology

from .conftest import FAST, TINY, fast_recipe, ssp_cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(stage: str, overrides: list[str], timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """``ssp stage STAGE`` as node 0 and node 1 of one job; both must be running for either to start."""
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            ssp_cmd(
                "stage",
                stage,
                str(TINY),
                *overrides,
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--rdzv-endpoint",
                endpoint,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (1, 0)  # node 1 first: it waits in the rendezvous for node 0
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, out))
    return outs


def test_torchrun_flags_of_each_topology():
    assert Topology().torchrun_args(4) == ["--standalone", "--nproc_per_node=4"]
    assert Topology(2, 1, "node7:29500").torchrun_args(8) == [
        "--nnodes=2",
        "--nproc_per_node=8",
        "--node_rank=1",
        "--master_addr=node7",
        "--master_port=29500",
    ]
    assert Topology(3, 0, "node7:29400", "c10d", "1234").torchrun_args(8) == [
        "--nnodes=3",
        "--nproc_per_node=8",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=node7:29400",
        "--rdzv_id=1234",
    ]
    with pytest.raises(RecipeError, match="--rdzv-endpoint '': 2 nodes need node 0's HOST:PORT"):
        Topology(2, 0)
    with pytest.raises(RecipeError, match=r"--node-rank 2: must be in 0..1"):
        Topology(2, 2, "h:1")


def test_a_sampling_stage_is_not_spread_over_nodes(tmp_path):
    with pytest.raises(StageError, match="stage 'probe' runs on one node"):
        run_stage("probe", fast_recipe(tmp_path), topology=Topology(2, 0, "h:1"))


@pytest.mark.slow
def test_two_nodes_train_sft_and_mgpo_as_one_job(tmp_path):
    """SFT then an MGPO step, each as one job of two nodes (one gloo process each): every launcher
    exits 0 once the manifest records completion; rank 0 alone writes; the data-parallel step count
    is that of two processes; the checkpoints and the RL phase's final model are published once."""
    overrides = [
        f"output_root={tmp_path}",
        *FAST,
        "data.train_problems_per_domain=10",  # 80 examples: 10 steps of 2 x 4
        "sft.max_steps=-1",
        "sft.num_train_epochs=1",
        "sft.per_device_train_batch_size=4",
        "sft.save_every=5",
        "rl.phases[0].max_steps=1",
        "rl.phases[0].per_device_train_batch_size=4",  # one group of 4 per process per step
        "rl.eval_heldout=false",
    ]
    recipe = fast_recipe(tmp_path, *overrides[len(FAST) + 1 :])
    run_stage("data", recipe)

    nodes = _two_nodes("sft", overrides)
    for rank, out in zip((1, 0), nodes, strict=True):
        assert out.returncode == 0, f"node {rank}:\n{out.stdout[-3000:]}"
    assert "stage sft (node 0 of 2): launching" in nodes[1].stdout
    assert "--nnodes=2 --nproc_per_node=1 --node_rank=1" in nodes[0].stdout
    entry = Manifest(recipe.run_dir).stage("sft")
    examples = entry["metrics"]["examples"]
    # One epoch at 4 examples per process and 2 processes: half the steps of a single process.
    assert entry["status"] == "completed" and entry["world_size"] == 2
    assert entry["metrics"]["steps"] == -(-examples // 8)
    steps = [int(p.rsplit("-", 1)[1]) for p in entry["outputs"]["checkpoints"]]
    assert steps == [5, 10] and entry["metrics"]["steps"] == 10
    assert not (recipe.run_dir / "sft" / "_staging").exists() or not any(
        (recipe.run_dir / "sft" / "_staging").iterdir()
    )

    execute_here("probe", recipe)
    execute_here("merge", recipe)
    nodes = _two_nodes("rl", overrides)
    for rank, out in zip((1, 0), nodes, strict=True):
        assert out.returncode == 0, f"node {rank}:\n{out.stdout[-3000:]}"
    rl = Manifest(recipe.run_dir).stage("rl")
    assert rl["status"] == "completed" and rl["world_size"] == 2
    phase = rl["metrics"]["phases"][0]
    assert phase["steps"] == 1
    phase_dir = recipe.run_dir / "rl" / "0-math"
    history = json.loads((phase_dir / "log_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1]
    assert (phase_dir / "checkpoints" / "checkpoint-1").is_dir() and (phase_dir / "final").is_dir()
