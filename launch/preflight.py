"""What a recipe refers to, checked before the first stage runs.

    check_recipe(recipe, ["data", "sft", "probe", "merge", "rl", "eval"])   # RecipeError listing every problem

A recipe names files, models, stages and a process count; a wrong one used to surface only when
its stage started (an RL prompt set that does not exist, hours after SFT began; an eval model
``signa`` that the hub was asked for, after the eval folder had been moved aside). Checked here,
cheaply, in seconds (the network only for hub references that are not cached). Each stage says what
it reads in its own module (``SPEC.preflight``, adding to ``core/checks.Checks``); here: the order,
the process counts, and what is asked once for all stages (the hub, GPU-only settings, the sandbox):

- every stage's upstream stages run earlier in this invocation or have completed in the run;
- ``data.source=files``: the files exist and pass the data stage's row checks (read here, before
  any run folder, manifest or W&B run exists); ``data.source=build``: local sources and
  decontamination files exist; an RL phase with ``prompts: rl`` has an RL split to read;
- model references (``model.name_or_path``, ``eval.models``, a phase's prompts file, benchmark
  sources, ``sft.deepspeed``): an alias, an existing local file or complete model folder
  (``check_model_folder``: config, tokenizer, untruncated weights), or a hub id (``owner/name``);
- every hub model and dataset the stages will load (``model.name_or_path``, ``data.sources[i].path``,
  ``data.teacher.model``, ``data.rl_pass_rate.model``, ``eval.models``, ``eval.benchmarks[i]``'s
  hub dataset, read by eval and by a build's decontamination): in the local hub cache (with
  ``HF_HUB_OFFLINE=1`` a cached model must be complete), or else on a hub this machine reaches:
  one query per reference, all at once, ``HUB_TIMEOUT`` seconds at most (``_hub_problems``).
  Where neither holds, the run would load it minutes later and fail with pages of tracebacks;
- training stages' process counts and sampling stages' engines (``generation.data_parallel``)
  against the visible GPUs (``train/device.resolve_nproc``, ``sampling/data_parallel.py``), and an
  rl stage's own vLLM server (``rl.rollout.server_gpus``: GPUs left to train, CUDA at all);
- settings only a CUDA GPU runs (``sft.bf16: true``, ``rl.rollout.enable_sleep_mode``,
  ``model.attn_implementation: flash_attention_2``) on a machine where no GPU is visible: the
  reference recipe on a CPU machine is refused here, not hours into a CPU run (``_gpu_settings``);
- a ``code_tests`` reward (an RL phase's, the probe's, a LiveCodeBench benchmark's) in strict mode
  on a machine where bubblewrap cannot isolate programs: it would refuse when its stage starts.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.checks import Checks, HubRef
from ssp.core.errors import DataError, RecipeError
from ssp.core.manifest import Manifest

HUB_TIMEOUT = 4.0  # seconds for the hub's answers (all references are asked at once)
TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of a boolean environment variable


def _offline(kind: str) -> str:
    """The variable that keeps the hub from being asked for ``kind`` ("" if none), read now: the
    stages run in processes started with this environment."""
    names = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"] + (
        ["HF_DATASETS_OFFLINE"] if kind == "dataset" else []
    )
    return next((f"{n}={os.environ[n]}" for n in names if os.environ.get(n, "").upper() in TRUE), "")


def _hf_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(os.path.expandvars(os.environ.get("HF_HOME") or str(default))).expanduser()


def _hub_cache() -> Path:
    """The hub cache as huggingface_hub resolves it (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME)."""
    folder = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expandvars(folder)).expanduser() if folder else _hf_home() / "hub"


def _squash(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _cached(ref: HubRef) -> Path | None:
    """The local snapshot of ``ref`` in the hub cache; for a dataset also a folder of datasets' own
    cache (``HF_DATASETS_CACHE``, where ``load_dataset`` keeps a prepared copy, named
    ``owner___name`` with the name snake-cased)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(ref.ref, repo_type=ref.kind, cache_dir=_hub_cache(), local_files_only=True)
        )
    except Exception:  # noqa: BLE001 - not cached (or a malformed id): the hub decides below
        pass
    if ref.kind == "dataset":
        prepared = Path(os.environ.get("HF_DATASETS_CACHE") or _hf_home() / "datasets").expanduser()
        want = _squash(ref.ref.replace("/", "___"))
        if prepared.is_dir():
            return next((d for d in prepared.iterdir() if d.is_dir() and _squash(d.name) == want), None)
    return None


def _ask_hub(refs: list[HubRef], endpoint: str) -> dict[str, str]:
    """{hub id: why it cannot be had, "" if it can}: one query per id, all at once, HUB_TIMEOUT s
    in all (threads with a deadline, not the queries' own timeouts alone: a name lookup can hang
    past them)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint)
    answers: dict[str, str] = {}

    def ask(ref: HubRef) -> None:
        try:
            api.repo_info(ref.ref, repo_type=ref.kind, timeout=HUB_TIMEOUT)
            answers[ref.ref] = ""
        except GatedRepoError:  # a subclass of RepositoryNotFoundError: first
            answers[ref.ref] = f"is gated on the hub ({endpoint}): accept its terms there and set HF_TOKEN"
        except RepositoryNotFoundError:
            answers[ref.ref] = (
                f"is not a {ref.kind} on the hub ({endpoint}), or a private one (set HF_TOKEN): "
                "check the name"
            )
        except Exception as err:  # noqa: BLE001 - refused, timed out, no route, no DNS: unreachable
            reason = (str(err).splitlines() or [""])[0][:160] or type(err).__name__
            answers[ref.ref] = f"cannot reach the hub ({endpoint}): {reason}"

    threads = [threading.Thread(target=ask, args=(r,), daemon=True) for r in refs]
    for t in threads:
        t.start()
    deadline = time.monotonic() + HUB_TIMEOUT + 0.5
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    late = f"cannot reach the hub ({endpoint}): no answer within {HUB_TIMEOUT:.0f} s"
    return {r.ref: answers.get(r.ref, late) for r in refs}


def _hub_problems(refs: list[HubRef], problems: list[str]) -> None:
    """Each hub reference: in the hub cache here, or on a hub this machine reaches."""
    from ssp.core.model_folder import check_model_folder

    missing: list[HubRef] = []
    for ref in dict.fromkeys(refs):
        snapshot = _cached(ref)
        if snapshot is None:
            missing.append(ref)
        elif ref.kind == "model" and _offline("model"):  # nothing will complete it: check it now
            try:
                check_model_folder(snapshot)
            except DataError as err:
                problems.append(f"{ref.key}: {ref.ref!r} is incomplete in the hub cache: {err}")
    if not missing:
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    online = list({r.ref: r for r in missing if not _offline(r.kind)}.values())
    answers = _ask_hub(online, endpoint) if online else {}
    for ref in missing:
        offline = _offline(ref.kind)
        why = f"{offline} keeps the hub from being asked" if offline else answers[ref.ref]
        if not why:
            continue  # on the hub: the stage downloads it
        if why.startswith("is "):  # the hub answered: not there, or gated
            problems.append(f"{ref.key}: {ref.ref!r} {why}")
            continue
        fetch = f"hf download {ref.ref}" + (" --repo-type dataset" if ref.kind == "dataset" else "")
        problems.append(
            f"{ref.key}: {ref.ref!r} is not in the hub cache ({_hub_cache()}) and {why}: download it "
            f"where the hub is reachable (`{fetch}`, into the same HF_HOME), or set {ref.key} to a local copy"
        )


def _code_sandbox(checks: Checks) -> None:
    """code_tests rewards that will refuse to run here (strict sandbox, no bubblewrap)."""
    from ssp.reward.sandbox import SandboxUnavailable, require_isolation

    refused = []
    for key, options in checks.code_rewards:  # the reward's own rule, as CodeTests applies it when built
        try:
            require_isolation(unsafe=options.get("sandbox") == "unsafe")
        except SandboxUnavailable:
            refused.append(key)
    if refused:
        checks.problem(
            f"{', '.join(refused)}: code_tests runs programs only under bubblewrap, which cannot start a "
            "sandbox here: install it (apt-get install bubblewrap), or set the reward's option sandbox: unsafe"
        )


def _gpu_settings(checks: Checks) -> None:
    """Settings only a CUDA GPU runs, on a machine that shows none: one line naming them. Process
    counts alone are not among them (``auto`` is 1 process on a CPU: the tiny recipe's runs)."""
    import torch

    if not checks.gpu_settings or torch.cuda.is_available():
        return
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    auto = checks.auto_processes
    checks.problem(
        f"{', '.join(checks.gpu_settings)}: the recipe is set up for GPUs, but no CUDA GPU is visible here"
        + (f" (CUDA_VISIBLE_DEVICES={devices})" if devices is not None else "")
        + (f"; {' and '.join(auto)} would train in 1 CPU process" if auto else "")
        + ": run it on a GPU node (`ssp doctor RECIPE` there), or override these keys for a CPU run"
    )


def check_recipe(recipe: Recipe, stages: list[str]) -> None:
    """Raise one RecipeError listing every problem found for running ``stages`` of ``recipe``: the
    order and process counts here, each stage's own checks (its ``SPEC.preflight``), then the hub,
    the GPU-only settings and the code sandbox once for all."""
    from ssp.launch.stages import STAGES

    checks = Checks(list(stages), Manifest(recipe.run_dir))
    for i, name in enumerate(stages):
        spec = STAGES[name]
        for need in spec.upstream(recipe):
            if need not in stages[:i] and not checks.manifest.completed(need):
                checks.problem(
                    f"stage {name!r} needs stage {need!r}, which is neither run before it here nor "
                    f"completed in {recipe.run_dir}"
                )
        try:  # process counts and sampling engines against the visible GPUs
            spec.nproc(recipe) if spec.distributed else spec.gpus(recipe)
        except RecipeError as err:
            checks.problem(str(err))
    for name in stages:
        STAGES[name].preflight(recipe, checks)
    _gpu_settings(checks)
    _hub_problems(checks.hub, checks.problems)
    _code_sandbox(checks)
    if checks.problems:
        raise RecipeError(
            "the recipe refers to things that are not there, or that this machine cannot run "
            "(nothing has run):\n  - " + "\n  - ".join(checks.problems)
        )
