"""Arms of a sweep at once: ``ssp sweep --jobs N``.

Each arm is ``ssp run <sweep>/.arms/<arm>.yaml --from <sweep>`` in a process of its own (tied to
the sweep's process by the kernel: ``core/process.py``), N at a time, each on its own GPUs
(``CUDA_VISIBLE_DEVICES``), its output in ``<sweep>/logs/<arm>.log``. Arms that reach an identical
stage at the same moment share it through ``launch/runner.py: share_lock``. Departure from a
scheduler: no queueing across machines, no GPU packing by memory; the visible GPUs are split evenly
(or ``sweep.gpus_per_arm`` each) and an arm waits for a free slot.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.errors import RecipeError
from ssp.launch.stages import STAGES

log = logging.getLogger("ssp")


def gpu_slots(jobs: int, per_arm: int | None, arms: list[tuple[str, Recipe]]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each of ``jobs`` concurrent slots (None everywhere on a CPU machine).
    An arm whose training stages want more GPUs than a slot has is refused before anything runs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g for g in visible.split(",") if g.strip()]
    else:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    if not gpus:
        return [None] * jobs
    per_arm = per_arm or len(gpus) // jobs
    if per_arm < 1 or per_arm * jobs > len(gpus):
        raise RecipeError(
            f"--jobs {jobs} x {per_arm or 0} GPUs per arm: this machine shows {len(gpus)} GPUs "
            f"({','.join(gpus)}); lower --jobs or sweep.gpus_per_arm"
        )
    for name, recipe in arms:
        for stage in recipe.stages:
            spec = STAGES[stage]
            want = spec.nproc_setting(recipe) if spec.distributed else "auto"
            if want != "auto" and want > per_arm:
                raise RecipeError(
                    f"sweep arm {name}: {stage}.nproc_per_node={want} but each of {jobs} concurrent "
                    f"arms gets {per_arm} GPUs"
                )
    return [",".join(gpus[i * per_arm : (i + 1) * per_arm]) for i in range(jobs)]


def run_concurrently(
    arms: list[tuple[str, Recipe]], folder: Path, gpu_sets: list[str | None], donors: list[Path]
) -> None:
    """Each arm as ``ssp run <sweep>/.arms/<arm>.yaml --from <sweep>`` in its own process, as many at once
    as ``gpu_sets`` has slots (``gpu_slots``), each on its slot's GPUs, its output in
    ``<sweep>/logs/<arm>.log``. Identical stages are shared through ``launch/runner.py: share_lock``. A failed arm does not stop the others; the sweep
    then fails naming every failed arm and its log."""
    import queue
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ssp.config.recipe import save_recipe
    from ssp.core.process import tied_command

    slots: queue.Queue = queue.Queue()
    for gpus in gpu_sets:
        slots.put(gpus)
    (folder / "logs").mkdir(exist_ok=True)

    running: set[subprocess.Popen] = set()
    stopping = False

    def one(arm: tuple[str, Recipe]) -> str | None:
        name, recipe = arm
        devices = slots.get()
        if stopping:
            return None
        try:
            # the arm's own recipe.yaml is written by its `ssp run`, under that run's lock: a sweep
            # launched again beside a running arm must not rewrite it before being refused
            recipe_file = folder / ".arms" / f"{name}.yaml"
            save_recipe(recipe, recipe_file)
            env = dict(os.environ)
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices
            logfile = folder / "logs" / f"{name}.log"
            cmd = [sys.executable, "-m", "ssp.launch.cli", "run", str(recipe_file), "--from", str(folder)]
            cmd += [a for d in donors for a in ("--from", str(d))]
            start = time.monotonic()
            log.info(
                "sweep %s: arm %s started%s; log %s",
                folder.name,
                name,
                f" on GPUs {devices}" if devices else "",
                logfile,
            )
            with logfile.open("a") as out:
                proc = subprocess.Popen(tied_command(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
                running.add(proc)
                code = proc.wait()
                running.discard(proc)
            took = time.monotonic() - start
            if code:
                log.error(
                    "sweep %s: arm %s failed (exit %d) after %.0f s; see %s",
                    folder.name,
                    name,
                    code,
                    took,
                    logfile,
                )
                return f"{name} (exit {code}; log {logfile})"
            log.info("sweep %s: arm %s done in %.0f s", folder.name, name, took)
            return None
        finally:
            slots.put(devices)

    with ThreadPoolExecutor(max_workers=len(gpu_sets)) as pool:
        try:
            failed = [f for f in pool.map(one, arms) if f]
        except BaseException:  # Ctrl-C: stop the arms (each resumes where it was on the next sweep)
            stopping = True
            for proc in list(running):
                proc.terminate()
            raise
    if failed:
        raise RecipeError(f"sweep {folder}: {len(failed)} of {len(arms)} arms failed: {'; '.join(failed)}")
