"""Run stages in order into ``runs/<run_name>/``, skipping what is already done.

A stage is skipped when the manifest says it completed with the same fingerprint: the hash
of the config sections it depends on, the output ids of the upstream stages it reads, and the
size and mtime of external files. A stage whose previous attempt was interrupted (status
running or failed, same fingerprint) is resumed in place: the SFT stage picks up its last
complete checkpoint. A stage folder left by a different config, or by ``--force``, is moved
aside to ``<stage>.replaced-<time>`` rather than deleted: it may hold GPU-days of checkpoints. Only
the newest ``keep_replaced`` such folders of a stage are kept (a recipe key; older ones are
deleted, with a log line): replaced folders used to pile up to hundreds of MB.

Training stages run under torchrun through one entry point: ``run_stage`` launches
``torchrun --standalone --nproc_per_node=N -m ssp.launch.worker sft runs/<name>/.attempts/sft.<host>.<pid>.yaml``
with the recipe resolved to a file of this launch's own, so the workers see exactly the parent's
recipe (``runs/<name>/recipe.yaml`` is written only by the ``ssp run`` holding ``.run.lock``; a
second ``ssp run`` into the folder is refused before it writes anything). What may be reused and
when is one rule (docs/architecture.md, "Reuse"): a shared stage is current only while its donor
holds it completed, with the same fingerprint and output id. torchrun and its
workers are tied to ``ssp`` by the kernel (``core/process.py``): killing ``ssp``, even with
``kill -9``, stops them. Before the first stage runs, ``launch/preflight.py`` checks what the
recipe refers to (files, models, stages, GPUs), so a typo fails in a second, not hours in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ssp.config.recipe import STAGE_ORDER, Recipe, config_hash, save_recipe
from ssp.core.atomic import pid_alive, remove_stale
from ssp.core.context import StageContext, StageResult
from ssp.core.cost import CostMeter, detect_hardware, totals
from ssp.core.errors import StageError
from ssp.core.locks import LockHeld, file_lock
from ssp.core.manifest import Manifest, now
from ssp.core.process import tied_command
from ssp.core.progress import Progress
from ssp.evaluation.curves import stage_folder
from ssp.launch.preflight import check_recipe
from ssp.launch.stages import STAGES, StageSpec, file_identity
from ssp.launch.topology import SINGLE_NODE, Topology
from ssp.launch.torchrun import CLEAN_STOP, ERROR_FILE_ENV
from ssp.launch.tracking import StageTracker, flat_numbers, log_shared_stage

log = logging.getLogger("ssp")


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _require_upstream(spec: StageSpec, recipe: Recipe, manifest: Manifest) -> None:
    for need in spec.upstream(recipe):
        if not manifest.completed(need):
            raise StageError(
                f"stage {spec.name!r} needs stage {need!r}, which has not completed in {recipe.run_dir} "
                f"(run `ssp stage {need} RECIPE` or `ssp run RECIPE` first)"
            )
    if stale := stale_shared_inputs(spec, recipe, manifest):
        raise StageError(
            f"stage {spec.name!r} reads {', '.join(stale)}, which its donor no longer holds (re-run there "
            f"or running now); `ssp run RECIPE` shares it again or runs it here"
        )


@dataclass(frozen=True)
class StageIdentity:
    """What a stage's result depends on: the hash of its config sections, the upstream stages'
    output ids with the external files' identities (``inputs``), and the fingerprint of both."""

    config_hash: str
    fingerprint: str
    inputs: dict[str, Any]


def fingerprint(spec: StageSpec, recipe: Recipe, manifest: Manifest) -> StageIdentity:
    """The identity of ``spec`` for this recipe and manifest."""
    chash = config_hash(*spec.sections(recipe))
    inputs = {
        "stages": {n: manifest.stage(n)["output_id"] for n in spec.upstream(recipe)},
        "files": [file_identity(f) for f in spec.external_files(recipe)],
    }
    return StageIdentity(chash, config_hash(chash, inputs), inputs)


def _up_to_date(name: str, fp: str, manifest: Manifest, stage_dir: Path) -> bool:
    entry = manifest.stage(name)
    if not entry or entry["status"] != "completed" or entry.get("fingerprint") != fp:
        return False
    if entry.get("shared_from"):
        return donor_still_holds(name, entry, stage_dir.parent)
    return stage_dir.is_dir()


def donor_still_holds(name: str, entry: dict[str, Any], run_dir: Path) -> bool:
    """A shared stage is current while the run that ran it still records it completed, with the same
    fingerprint and the same output: a donor re-running the stage (its entry ``running``, its folder
    moved aside), killed while re-running it, or re-run since holds another output or none."""
    folder = stage_folder(run_dir, entry, name)  # recorded relative to where the sweep ran
    donor = folder.parent
    if not folder.is_dir() or not (donor / "manifest.json").is_file():
        return False
    held = Manifest(donor).stage(name) or {}
    return (
        held.get("status") == "completed"
        and held.get("fingerprint") == entry.get("fingerprint")
        and held.get("output_id") == entry.get("output_id")
    )


def stale_shared_inputs(spec: StageSpec, recipe: Recipe, manifest: Manifest) -> list[str]:
    """The upstream stages of ``spec`` that this run shares from a donor that no longer holds them
    (``donor_still_holds``), each with its donor folder."""
    out = []
    for need in spec.upstream(recipe):
        entry = manifest.stage(need) or {}
        if entry.get("shared_from") and not donor_still_holds(need, entry, recipe.run_dir):
            out.append(f"{need} (shared from {entry['shared_from']})")
    return out


def adopt(name: str, recipe: Recipe, donors: list[Path]) -> Path | None:
    """Share a stage another run completed with the same fingerprint (the same config sections and
    the same upstream outputs): this run's manifest records the donor's entry, its outputs staying in
    the donor's folder (``shared_from``), at no cost to this run. Returns the donor's stage folder,
    or None when this run must run the stage (or already has it). Downstream stages then see the
    donor's output id, so a chain of identical stages is shared as a whole."""
    spec = STAGES[name]
    manifest = Manifest(recipe.run_dir)
    if any(not manifest.completed(need) for need in spec.upstream(recipe)):
        return None  # run_stage names the missing stage
    identity = fingerprint(spec, recipe, manifest)
    if _up_to_date(name, identity.fingerprint, manifest, recipe.run_dir / name):
        return None
    for donor in donors:
        if donor.resolve() == recipe.run_dir.resolve() or not (donor / "manifest.json").is_file():
            continue
        entry = Manifest(donor).stage(name)
        if (
            not entry
            or entry.get("status") != "completed"
            or entry.get("fingerprint") != identity.fingerprint
        ):
            continue
        if entry.get("shared_from") and not donor_still_holds(name, entry, donor):
            continue  # the donor shares it from a run that no longer holds it
        folder = stage_folder(donor, entry, name)
        if not folder.is_dir():
            continue
        cost = {**entry["cost"], "seconds": 0.0, "hours": 0.0, "usd": 0.0} if entry.get("cost") else None
        with contextlib.ExitStack() as held:
            try:  # `ssp stage NAME` running in this run: its folder and entry are not ours to replace
                held.enter_context(stage_lock(recipe.run_dir, name))
            except StageError:
                return None  # run_stage then names the running stage
            own = recipe.run_dir / name
            if own.exists():  # this run's own earlier attempt (killed, or of another config): not mixed in
                _move_aside(own, recipe.keep_replaced)
            manifest.update(
                name,
                **{
                    **entry,
                    "shared_from": str(folder),
                    "shared_cost": entry.get("shared_cost") or entry.get("cost"),
                    "cost": cost,
                    "attempts": 0,
                },
            )
        log.info("stage %s: shared from %s (same fingerprint %s)", name, folder, identity.fingerprint)
        log_shared_stage(recipe, name, folder, entry)
        return folder
    return None


def _identity_unless_current(
    spec: StageSpec, recipe: Recipe, manifest: Manifest, force: bool
) -> StageIdentity | None:
    """The identity of a stage that must run; None (logged) if it is up to date.

    Fails first if an upstream stage has not completed."""
    _require_upstream(spec, recipe, manifest)
    identity = fingerprint(spec, recipe, manifest)
    if not force and _up_to_date(spec.name, identity.fingerprint, manifest, recipe.run_dir / spec.name):
        log.info("stage %s: up to date (fingerprint %s), skipped", spec.name, identity.fingerprint)
        return None
    return identity


def _move_aside(stage_dir: Path, keep: int) -> None:
    """Rename ``stage_dir`` to ``<stage>.replaced-<time>``; keep the newest ``keep`` of those."""
    if stage_dir.exists():
        dest = stage_dir.with_name(
            f"{stage_dir.name}.replaced-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        )
        stage_dir.rename(dest)
        log.info("moved previous %s to %s", stage_dir, dest)
    replaced = sorted(
        stage_dir.parent.glob(f"{stage_dir.name}.replaced-*"), key=lambda p: p.stat().st_mtime_ns
    )
    for old in replaced[: max(0, len(replaced) - keep)]:
        shutil.rmtree(old)
        log.info("deleted %s (keep_replaced=%d keeps the newest replaced folders only)", old, keep)


@contextlib.contextmanager
def stage_lock(run_dir: Path, name: str):
    """Hold ``runs/<name>/.<stage>.lock`` while the stage runs (rank 0 only).

    torchrun starts workers in their own sessions: killing only the launcher can leave a worker
    training. A second attempt started meanwhile would write into the same checkpoints, so it
    fails here instead (``core/locks.py``: released by the kernel when its holder dies)."""
    path = run_dir / f".{name}.lock"
    with _held_or_refused(
        path,
        lambda pid: (
            f"stage {name!r} is already running in {run_dir} (lock {path} held by pid "
            f"{pid}); stop that process first"
        ),
    ):
        yield


@contextlib.contextmanager
def _held_or_refused(path: Path, refusal):
    """Hold ``path``'s lock for the block, or raise StageError(refusal(holder pid)) at once; an
    error raised by the block itself is never taken for a refusal."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(path, wait=False, holder=os.getpid()))
        except LockHeld as held:
            raise StageError(refusal(held.holder)) from None
        yield


def execute_here(name: str, recipe: Recipe, force: bool = False) -> StageResult | None:
    """Run stage ``name`` in this process (one torchrun worker, or the CLI for light stages).

    Every rank takes the same skip decision; only rank 0 touches the manifest and moves folders."""
    spec = STAGES[name]
    manifest = Manifest(recipe.run_dir)
    identity = _identity_unless_current(spec, recipe, manifest, force)
    if identity is None:
        return None
    stage_dir = recipe.run_dir / name
    ctx = StageContext(
        name=name,
        run_dir=recipe.run_dir,
        stage_dir=stage_dir,
        inputs={n: manifest.outputs(n) for n in spec.upstream(recipe)},
    )
    # Only rank 0 takes the lock: it alone moves folders, writes the manifest and publishes checkpoints.
    with stage_lock(recipe.run_dir, name) if ctx.is_main else contextlib.nullcontext():
        return _run_locked(spec, recipe, ctx, manifest, identity, force)


def _run_locked(
    spec: StageSpec,
    recipe: Recipe,
    ctx: StageContext,
    manifest: Manifest,
    identity: StageIdentity,
    force: bool,
) -> StageResult:
    name, stage_dir = spec.name, ctx.stage_dir
    entry = manifest.stage(name)
    if ctx.is_main:
        fresh = force or not entry or entry.get("fingerprint") != identity.fingerprint
        attempts = 0 if fresh else entry.get("attempts", 0)
        # recorded running (no output) before the folder changes: a run sharing it sees it gone
        manifest.update(name, status="running", output_id=None)
        if fresh:
            _move_aside(stage_dir, recipe.keep_replaced)
        else:
            log.info("stage %s: resuming an interrupted attempt in %s", name, stage_dir)
            for leftover in remove_stale(stage_dir, "**/.*.tmp-*") + remove_stale(stage_dir, "**/.*.old-*"):
                log.info("stage %s: removed %s, left by a killed writer", name, leftover)
        stage_dir.mkdir(parents=True, exist_ok=True)
        manifest.update(
            name,
            status="running",
            config_hash=identity.config_hash,
            fingerprint=identity.fingerprint,
            inputs=identity.inputs,
            outputs={},
            metrics={},
            started_at=now(),
            ended_at=None,
            wall_seconds=None,
            attempts=attempts + 1,
            world_size=ctx.world_size,
            shared_from=None,  # run here now, whatever it was shared from before
            shared_cost=None,
            output_id=None,  # no output until it completes: a run sharing the old one sees it gone
        )
    _barrier()
    log.info("stage %s: running into %s", name, stage_dir)
    start = time.monotonic()
    gpus = ctx.world_size + spec.extra_gpus(recipe) if spec.distributed else spec.gpus(recipe)
    ctx.cost = _cost_meter(recipe, ctx, manifest, gpus)
    ctx.tracker = StageTracker.start(recipe, name, stage_dir, ctx.is_main)
    try:
        result = spec.run(recipe, ctx)
    except BaseException as err:
        if ctx.is_main:
            manifest.update(
                name,
                status="failed",
                error=f"{type(err).__name__}: {err}",
                ended_at=now(),
                cost=ctx.cost.record(),
            )
            ctx.tracker.finish(failed=True)
        raise
    _barrier()
    if ctx.is_main and (stale := stale_shared_inputs(spec, recipe, Manifest(recipe.run_dir))):
        message = (
            f"stage {name!r}: {', '.join(stale)} changed in its donor while this stage read it; its "
            f"result is not kept (re-run `ssp run RECIPE` once the donor's stage has completed)"
        )
        manifest.update(name, status="failed", error=message, ended_at=now(), cost=ctx.cost.record())
        ctx.tracker.finish(failed=True)
        raise StageError(message)
    if ctx.is_main:
        cost = ctx.cost.record()
        manifest.update(
            name,
            status="completed",
            outputs=result.outputs.to_record() if result.outputs is not None else {},
            metrics=result.metrics,
            error=None,
            ended_at=now(),
            wall_seconds=round(time.monotonic() - start, 2),
            output_id=uuid.uuid4().hex[:16],
            cost=cost,
        )
        ctx.log({})
        ctx.tracker.summary({**flat_numbers(result.metrics), **{f"cost/{k}": v for k, v in cost.items()}})
        ctx.tracker.finish()
        log.info(
            "stage %s: completed in %.1f s (%.4f %s, $%.4f)",
            name,
            time.monotonic() - start,
            cost["hours"],
            ctx.cost.hardware.unit_label,
            cost["usd"],
        )
    # Every launcher (one per node) reads the manifest once its torchrun exits: no rank may exit
    # before rank 0 has recorded the completion, or another node's launcher would find none.
    _barrier()
    return result


def _cost_meter(recipe: Recipe, ctx: StageContext, manifest: Manifest, gpus: int) -> CostMeter:
    """The stage's meter: earlier attempts' time from ``<stage>/cost.json``, and the other completed
    stages' costs for the pipeline totals (and the budget)."""
    stages = manifest.data["stages"]
    earlier = totals(
        [
            e["cost"]
            for n, e in stages.items()
            if n != ctx.name and e.get("status") == "completed" and e.get("cost")
        ]
    )
    return CostMeter(
        recipe.cost,
        detect_hardware(gpus, recipe.cost.gpu_type),
        ctx.stage_dir / "cost.json",
        earlier,
        writable=ctx.is_main,
    )


def run_stage(
    name: str, recipe: Recipe, force: bool = False, checked: bool = False, topology: Topology = SINGLE_NODE
) -> None:
    """Run one stage from the CLI: in this process, or through torchrun for training stages.
    ``checked``: the recipe's references were already checked (``run_pipeline`` does it once).
    ``topology``: the nodes a training stage spans; this process is the launcher of one of them
    (``launch/topology.py``). Only node 0's launcher moves a forced stage's folder aside."""
    spec = STAGES[name]
    if topology.multi_node and not spec.distributed:
        raise StageError(
            f"stage {name!r} runs on one node (its sampling uses every GPU of that node: "
            f"generation.data_parallel); launch it there without --nnodes"
        )
    if not checked:
        check_recipe(recipe, [name])
    if not spec.distributed or "LOCAL_RANK" in os.environ:
        execute_here(name, recipe, force)
        return
    manifest = Manifest(recipe.run_dir)
    if _identity_unless_current(spec, recipe, manifest, force) is None:
        return
    nproc, env, server = spec.nproc(recipe), None, contextlib.nullcontext
    around = spec.around(recipe, manifest, topology.multi_node)  # checked before anything is moved aside
    if around is not None:
        nproc, env, server = around.nproc, around.env, around.service
    if force and topology.is_node_zero:
        _move_aside(recipe.run_dir / name, recipe.keep_replaced)
        manifest.reset(name)
    with _attempt_recipe(recipe, name) as resolved:
        error_file = resolved.with_suffix(".error")
        error_file.unlink(missing_ok=True)
        try:
            code = _launch(
                name,
                recipe,
                resolved,
                nproc,
                {**(env or os.environ), ERROR_FILE_ENV: str(error_file)},
                server,
                topology,
            )
            stopped = error_file.read_text() if code == CLEAN_STOP and error_file.exists() else None
        finally:
            error_file.unlink(missing_ok=True)
    if stopped:  # a worker's clean stop (budget, user data): its own one line, nothing more
        raise StageError(stopped)
    entry = _recorded(recipe, name, wait=MANIFEST_WAIT_S if topology.multi_node and code == 0 else 0)
    where = f" (node {topology.node_rank} of {topology.nnodes})" if topology.multi_node else ""
    if code != 0:
        reason = f": {entry['error']}" if entry.get("status") == "failed" and entry.get("error") else ""
        raise StageError(
            f"stage {name!r} failed{where}: torchrun exited with code {code}{reason} (see the log above; "
            f"re-running resumes from the last complete checkpoint)"
        )
    if entry.get("status") != "completed":
        raise StageError(
            f"stage {name!r}{where}: torchrun exited 0 but the manifest does not record completion"
        )


def _launch(name, recipe, resolved: Path, nproc, env, server, topology: Topology) -> int:
    """torchrun's exit code for the stage's workers, given the recipe file they read."""
    cmd = [
        sys.executable,
        "-m",
        "ssp.launch.torchrun",
        *topology.torchrun_args(nproc),
        "-m",
        "ssp.launch.worker",
        name,
        str(resolved),
    ]
    where = f" (node {topology.node_rank} of {topology.nnodes})" if topology.multi_node else ""
    log.info("stage %s%s: launching %s", name, where, " ".join(cmd[1:]))
    with server():
        return subprocess.call(tied_command(cmd), env=env)


ATTEMPTS = ".attempts"


@contextlib.contextmanager
def _attempt_recipe(recipe: Recipe, name: str):
    """The resolved recipe in a file of this attempt's own (``runs/<name>/.attempts/<stage>.<host>.
    <pid>.yaml``, removed when torchrun has exited): the workers read the recipe their launcher
    resolved, never ``runs/<name>/recipe.yaml``, which another ``ssp run`` may rewrite meanwhile."""
    path = recipe.run_dir / ATTEMPTS / f"{name}.{socket.gethostname()}.{os.getpid()}.yaml"
    save_recipe(recipe, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def remove_leftovers(run_dir: Path) -> list[Path]:
    """What killed ``ssp`` processes on this host left in ``run_dir``: attempt recipes and temporary
    recipe files of processes no longer alive (another host's files are left to that host)."""
    host, removed = socket.gethostname(), []
    candidates = [
        (p, re.fullmatch(rf"[a-z]+\.{re.escape(host)}\.(\d+)\.(yaml|error)", p.name))
        for p in (run_dir / ATTEMPTS).glob("*.*")
    ] + [
        (p, re.fullmatch(rf"\.recipe\.yaml\.tmp-{re.escape(host)}-(\d+)", p.name))
        for p in run_dir.glob(".recipe.yaml.tmp-*")
    ]
    for path, m in candidates:
        if m and not pid_alive(int(m.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# A shared filesystem (NFS) may show another node's manifest write a few seconds late.
MANIFEST_WAIT_S = 30.0


def _recorded(recipe: Recipe, name: str, wait: float) -> dict[str, Any]:
    """The stage's manifest entry as the workers left it; waits up to ``wait`` seconds for one
    recording completion (another node's rank 0 wrote it)."""
    deadline = time.monotonic() + wait
    while True:
        entry = Manifest(recipe.run_dir).stage(name) or {}
        if entry.get("status") == "completed" or time.monotonic() >= deadline:
            return entry
        time.sleep(1.0)


def donor_runs(donors: list[Path]) -> list[Path]:
    """The run folders among ``donors``: a run folder itself; a folder of runs (a sweep) the runs
    under it *now* (looked up again before every stage: arms running at once finish stages)."""
    out: list[Path] = []
    for d in donors:
        out += [d] if (d / "manifest.json").is_file() else sorted(p.parent for p in d.glob("*/manifest.json"))
    return out


@contextlib.contextmanager
def share_lock(name: str, recipe: Recipe, donors: list[Path]):
    """While held, no other run sharing this run's parent folder (the arms of a sweep) runs or
    adopts stage ``name`` with the same fingerprint: two arms started at once would otherwise both
    run the identical stage. The second waits, then adopts the first's result. Locks live in
    ``<parent>/.share/<stage>-<fingerprint>.lock`` (flock: released if the holder dies)."""
    spec = STAGES[name]
    manifest = Manifest(recipe.run_dir)
    if not donors or any(not manifest.completed(n) for n in spec.upstream(recipe)):
        yield
        return
    fp = fingerprint(spec, recipe, manifest).fingerprint
    path = recipe.run_dir.parent / ".share" / f"{name}-{fp}.lock"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(path, wait=False, holder=os.getpid()))
        except LockHeld:
            log.info("stage %s: another run is running it with the same fingerprint; waiting to share", name)
            stack.enter_context(file_lock(path, holder=os.getpid()))
        yield


def run_pipeline(recipe: Recipe, force: str | None = None, donors: list[Path] = ()) -> Path:
    """Run the recipe's stages in order; ``force`` redoes that stage and every stage after it.
    ``donors``: other run folders, or folders of runs, whose completed stages this run shares where
    identical (``adopt``; guarded by ``share_lock`` against arms running at once)."""
    if force is not None and force not in recipe.stages:
        raise StageError(f"--force {force!r}: not a stage of this recipe (stages: {recipe.stages})")
    check_recipe(recipe, recipe.stages)
    with run_lock(recipe.run_dir):
        return _run_stages(recipe, force, donors)


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold ``runs/<name>/.run.lock`` while ``ssp run`` runs the pipeline: a second ``ssp run`` into
    the same folder is refused before it writes anything (it used to rewrite ``recipe.yaml`` first,
    under the first run's feet). ``ssp stage`` beside a running pipeline takes only its stage's lock."""
    path = run_dir / ".run.lock"
    with _held_or_refused(
        path,
        lambda pid: (
            f"{run_dir} is being run by another `ssp run` (lock {path} held by pid {pid}); "
            f"nothing was changed: stop that process first, or give this run another run_name"
        ),
    ):
        yield


def _run_stages(recipe: Recipe, force: str | None, donors: list[Path]) -> Path:
    for leftover in remove_leftovers(recipe.run_dir):
        log.info("removed %s, left by a killed ssp", leftover)
    save_recipe(recipe, recipe.run_dir / "recipe.yaml")  # written only under the run lock
    progress = Progress(len(recipe.stages), eta=False)  # stages differ in size by 1000x
    for i, name in enumerate(recipe.stages, start=1):
        log.info("run %s: stage %d of %d: %s", recipe.run_name, i, len(recipe.stages), name)
        forced = force is not None and STAGE_ORDER.index(name) >= STAGE_ORDER.index(force)
        with share_lock(name, recipe, list(donors)) if not forced else contextlib.nullcontext():
            if forced or not adopt(name, recipe, donor_runs(list(donors))):
                run_stage(name, recipe, force=forced, checked=True)
        log.info("run %s: stages %s", recipe.run_name, progress.step())
    from ssp.launch.report import write_report

    return write_report(recipe)
