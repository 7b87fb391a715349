"""Where a training stage's processes run: one node, or several joined by torchrun's rendezvous.

    ssp stage sft RECIPE --nnodes 2 --node-rank 0 --rdzv-endpoint node7:29500   # on node7
    ssp stage sft RECIPE --nnodes 2 --node-rank 1 --rdzv-endpoint node7:29500   # on node8

These are launch settings, not recipe keys: a node's rank differs from node to node while the
recipe, its fingerprints and ``runs/<name>/recipe.yaml`` must be the same on all of them (the
same reason torchrun's own flags are not part of a training config). ``ssp slurm`` writes them
from Slurm's environment (``launch/slurm.py``).

Choices, each exposed:
- ``static`` rendezvous by default (torchrun's ``--master_addr/--master_port/--node_rank``): global
  rank 0 is on node 0, so the node that runs the light stages and whose launcher moves folders
  aside is also the one whose rank 0 writes the manifest and checkpoints. ``c10d`` (elastic: ranks
  assigned as nodes join) is available with ``--rdzv-backend c10d``; then any node may hold rank 0,
  which is fine on the shared filesystem every node must see anyway.
- The run folder must be on a filesystem every node mounts (runs/ on a cluster's shared disk):
  checkpoints are written once, by rank 0, and read by every rank on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssp.core.errors import RecipeError

BACKENDS = ("static", "c10d")


@dataclass(frozen=True)
class Topology:
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""  # HOST:PORT of node 0 (static) or of the c10d store
    rdzv_backend: str = "static"
    rdzv_id: str = "ssp"  # c10d: the job's id (every node the same; ssp slurm passes $SLURM_JOB_ID)

    def __post_init__(self):
        if self.nnodes < 1:
            raise RecipeError(f"--nnodes {self.nnodes}: must be >= 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise RecipeError(
                f"--node-rank {self.node_rank}: must be in 0..{self.nnodes - 1} (--nnodes {self.nnodes})"
            )
        if self.rdzv_backend not in BACKENDS:
            raise RecipeError(f"--rdzv-backend {self.rdzv_backend!r}: one of {', '.join(BACKENDS)}")
        if self.nnodes > 1:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise RecipeError(
                    f"--rdzv-endpoint {self.rdzv_endpoint!r}: {self.nnodes} nodes need node 0's HOST:PORT "
                    "(e.g. node7:29500), the same on every node"
                )

    @property
    def multi_node(self) -> bool:
        return self.nnodes > 1

    @property
    def is_node_zero(self) -> bool:
        """The node whose launcher moves stage folders aside and runs the light stages."""
        return self.node_rank == 0

    def torchrun_args(self, nproc_per_node: int) -> list[str]:
        """torchrun's flags for this topology (``--standalone`` on one node)."""
        if not self.multi_node:
            return ["--standalone", f"--nproc_per_node={nproc_per_node}"]
        common = [f"--nnodes={self.nnodes}", f"--nproc_per_node={nproc_per_node}"]
        if self.rdzv_backend == "static":
            host, _, port = self.rdzv_endpoint.rpartition(":")
            return [
                *common,
                f"--node_rank={self.node_rank}",
                f"--master_addr={host}",
                f"--master_port={port}",
            ]
        return [
            *common,
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={self.rdzv_endpoint}",
            f"--rdzv_id={self.rdzv_id}",
        ]


SINGLE_NODE = Topology()
