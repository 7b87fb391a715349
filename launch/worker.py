"""The one process entry point of every stage under torchrun (and ``python -m``):

    torchrun --nproc_per_node=8 -m ssp.launch.worker sft runs/<name>/recipe.yaml [key=value ...] [--force]

``ssp stage`` / ``ssp run`` launch training stages this way themselves (``launch/runner.py``);
call it by hand to put a stage under your own launcher (srun, a debugger). A torchrun worker dies
with the torchrun agent even on ``kill -9`` (``core/process.py``), joins the process group (NCCL on
GPUs, gloo on CPU) and runs the stage in this process (``runner.execute_here``).
"""

from __future__ import annotations

import os
import sys

from ssp.config.recipe import STAGE_ORDER, load_recipe
from ssp.core.errors import RecipeError, SSPError
from ssp.core.process import die_with_parent
from ssp.launch.logs import setup_logging
from ssp.launch.runner import execute_here
from ssp.launch.stages import STAGES
from ssp.launch.torchrun import CLEAN_STOP, record_error


def _init_distributed(name: str, deepspeed: bool = False) -> None:
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        local_rank, visible = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= visible:
            raise RecipeError(
                f"{name}: torchrun started process {local_rank} on a node with "
                f"{visible} visible GPU(s): give torchrun --nproc_per_node <= {visible}"
            )
        torch.cuda.set_device(local_rank)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if deepspeed:
        # DeepSpeed's own communication layer, on the group above. accelerate does this on GPUs, not
        # with use_cpu; without it ZeRO-3's model construction (deepspeed.zero.Init) takes the world
        # size for 1 and refuses the batch sizes ("train_batch_size is not equal to ...").
        import deepspeed as ds

        if not torch.cuda.is_available():
            _skip_shm_comm_op()
        ds.init_distributed(dist_backend=backend)


def _skip_shm_comm_op() -> None:
    """DeepSpeed's CPU backend compiles a shared-memory all-reduce op at start-up (~80 s with a C++
    compiler on 2 cores, once per machine) that only its *inference* all-reduce uses; ZeRO training
    reduces through torch.distributed (gloo) either way. Marked unavailable, as on a machine without
    a compiler, so a CPU run (the tests, the demo) does not wait for the build. Departs from
    DeepSpeed's default on CPU only; GPU runs are untouched."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def main(argv: list[str] | None = None) -> None:
    """``STAGE RECIPE [key=value ...] [--force]``."""
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    if len(args) < 2 or args[0] not in STAGE_ORDER:
        sys.exit(
            f"usage: python -m ssp.launch.worker {{{','.join(STAGE_ORDER)}}} RECIPE [key=value ...] [--force]"
        )
    name = args[0]
    if "LOCAL_RANK" in os.environ:  # a torchrun worker: die with the torchrun agent, even on kill -9
        die_with_parent()
    try:
        recipe = load_recipe(args[1], args[2:])
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _init_distributed(name, deepspeed=STAGES[name].deepspeed(recipe))
        execute_here(name, recipe, force)
    except SSPError as err:
        if not record_error(str(err)):  # ssp's launcher prints it once (launch/torchrun.py)
            print(f"ssp: error: {err}", file=sys.stderr)
        sys.exit(CLEAN_STOP)


if __name__ == "__main__":
    main()
