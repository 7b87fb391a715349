"""The `rl` stage: MGPO over the recipe's curriculum of phases, from the spectrum model.

    ssp stage rl recipes/tiny.yaml                 # torchrun with rl.nproc_per_node
    ssp run recipes/tiny.yaml run_name=grpo rl.lam=0   # the GRPO ablation: same code path

Each phase (``rl.phases``, in order) names its prompts, rewards with weights, completion
length, G, temperature, learning rate and steps, and starts from the previous phase's final
model (the first from the merged "spectrum" model). TRL options pass through under their TRL
names (``rl.phases[i].trl``). A phase writes ``rl/<i>-<name>/checkpoints/checkpoint-N``
(atomic, like SFT) and ``rl/<i>-<name>/final``; a finished phase (its ``final`` exists) is not
rerun, an interrupted one resumes from its last complete checkpoint with the same data order.
With ``rl.lora`` a phase trains peft LoRA adapters; its ``final`` is the last adapter merged into
the phase's starting model (``core/adapters.py``), a full model for the next phase and eval.

Choices where the report is silent, each a recipe key: lambda (``rl.lam``, default 4.0 as a
public re-implementation), the clipped objective's eps (TRL's default 0.2 unless
``trl.epsilon`` is set), std-normalised group advantages (TRL's ``scale_rewards: group``), no
KL term (``beta: 0``), and the prompt filter (``filter_solved``: drop prompts whose pass rate
at the phase's starting model is exactly 0 or 1, as the 3B follow-up does).

What a phase says about its own health (``phase.json``, the log, the report): the steps in which
every group's rewards were equal (TRL's ``frac_reward_zero_std`` = 1: zero advantages, no
gradient from the policy loss), and each reward's mean timeout, error and unscorable rates
(``rewards/<name>/*_rate`` in W&B every step; a reward failing on too many items of a step
stops the stage: ``reward/outcome.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ssp.config.recipe import Recipe
from ssp.config.train import RLPhase
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import PROBLEM_FIELDS, chat_prompt, load_rows
from ssp.core.errors import DataError, RecipeError, StageError
from ssp.core.manifest import Manifest
from ssp.core.model_folder import check_model_folder
from ssp.core.outputs import DataOutputs, MergeOutputs, RLOutputs
from ssp.sampling.generation import SamplingParams
from ssp.stages import rl_report
from ssp.stages.shared import heldout_comparison, probe_sampler
from ssp.stages.spec import Around, StageSpec, check_code_rewards, check_training_settings, sampling_section
from ssp.train.device import checkpointing_args, trainer_device_args

log = logging.getLogger("ssp")


def _prompts(phase: RLPhase, recipe: Recipe, ctx: StageContext) -> list[dict[str, Any]]:
    path = ctx.upstream(DataOutputs).rl if phase.prompts == "rl" else phase.prompts
    rows = load_rows(path, PROBLEM_FIELDS, f"rl.phases[{phase.name}].prompts")
    if not phase.domains:
        return rows
    kept = [r for r in rows if r["domain"] in phase.domains]
    if not kept:
        j = recipe.rl.phases.index(phase)
        raise DataError(
            f"rl.phases[{j}].domains: no prompt of {phase.domains} in {path} "
            f"(its domains: {sorted({r['domain'] for r in rows})})"
        )
    return kept


def pass_rate_filter(rows, model_dir: str, phase: RLPhase, recipe: Recipe) -> tuple[list, dict[str, int]]:
    """Keep prompts whose pass rate at ``model_dir`` is strictly between 0 and 1 (G samples each,
    the phase's temperature, length and correctness reward)."""
    params = SamplingParams(  # the phase's own names (TRL's): num_generations, max_completion_length
        n=phase.num_generations,
        temperature=phase.temperature,
        max_new_tokens=phase.max_completion_length,
        seed=recipe.rl.seed,
    )
    j, spec = next((j, r) for j, r in enumerate(phase.rewards) if r.correctness)
    key = f"rl.phases[{recipe.rl.phases.index(phase)}].rewards[{j}]"
    with probe_sampler(recipe, params, spec, reward_key=key) as sampler:
        result = sampler.score(
            model_dir,
            rows,
            desc=f"rl {phase.name}: pass-rate filter",
        )
    correct = result["correct_per_problem"]
    kept = [r for r, c in zip(rows, correct, strict=True) if 0 < c < params.n]
    counts = {"solved": correct.count(params.n), "unsolved": correct.count(0), "kept": len(kept)}
    return kept, counts


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in rows if h.get(key) is not None]
    return sum(values) / len(values) if values else None


def phase_health(history: list[dict[str, Any]], reward_names: list[str]) -> dict[str, Any]:
    """Signal and reward-failure summary of a phase from its trainer's log history.

    A step without signal trained on no group whose rewards differ: with dynamic sampling, one that
    kept no group (``dynamic_sampling/groups_kept`` = 0); without it, TRL's ``frac_reward_zero_std`` = 1."""
    steps = [h for h in history if "frac_reward_zero_std" in h]
    silent = [
        h.get("step")
        for h in steps
        if (
            h["dynamic_sampling/groups_kept"] == 0
            if "dynamic_sampling/groups_kept" in h
            else h["frac_reward_zero_std"] >= 1.0
        )
    ]
    rates = {}
    for name in reward_names:
        for kind in ("timeout_rate", "error_rate", "unscorable_rate"):
            values = [h[f"rewards/{name}/{kind}"] for h in history if f"rewards/{name}/{kind}" in h]
            if values:
                rates.setdefault(name, {})[kind] = sum(values) / len(values)
    answers: dict[str, Any] = {}
    for name in reward_names:
        for kind in ("no_answer_rate", "truncated_zeroed"):
            mean = _mean(history, f"rewards/{name}/{kind}")
            if mean is not None:
                answers.setdefault(name, {})[kind] = mean
    clipped = _mean(history, "completions/clipped_ratio")
    if answers or clipped is not None:
        answers["clipped_ratio"] = clipped
    health: dict[str, Any] = {
        "logged_steps": len(steps),
        "answers": answers,
        "steps_without_signal": len(silent),
        "steps_without_signal_list": silent[:100],
        "reward_failure_rates": rates,
    }
    dyn = [h for h in steps if "dynamic_sampling/groups_drawn" in h]
    if dyn:
        short = [h.get("step") for h in dyn if h["dynamic_sampling/filler_groups"] > 0]
        health["dynamic_sampling"] = {
            "groups_drawn": int(sum(h["dynamic_sampling/groups_drawn"] for h in dyn)),
            "groups_kept": int(sum(h["dynamic_sampling/groups_kept"] for h in dyn)),
            "rounds_mean": _mean(dyn, "dynamic_sampling/rounds"),
            "frac_mixed_first_round": _mean(dyn, "dynamic_sampling/frac_mixed_first_round"),
            "frac_mixed_drawn": _mean(dyn, "dynamic_sampling/frac_mixed_drawn"),
            "steps_refill_bound_hit": len(short),
            "steps_refill_bound_hit_list": short[:100],
        }
    split = {
        part: _mean(steps, f"perf/{part}_seconds") for part in ("generation", "refill", "scoring", "training")
    }
    if any(v is not None for v in split.values()):
        health["step_seconds"] = {k: v for k, v in split.items() if v is not None}
    mismatch = {k.removeprefix("mismatch/"): _mean(steps, k) for k in _MISMATCH_KEYS}
    if any(v is not None for v in mismatch.values()):
        health["mismatch"] = {k: v for k, v in mismatch.items() if v is not None}
        health["mismatch"]["ratio_min"] = min(
            h["mismatch/ratio_min"] for h in steps if "mismatch/ratio_min" in h
        )
        health["mismatch"]["ratio_max"] = max(
            h["mismatch/ratio_max"] for h in steps if "mismatch/ratio_max" in h
        )
    return health


_MISMATCH_KEYS = ("mismatch/ratio_mean", "mismatch/logp_abs_diff_mean", "mismatch/frac_outside_bounds")


def _warn_on_health(phase: RLPhase, health: dict[str, Any]) -> None:
    n, silent = health["logged_steps"], health["steps_without_signal"]
    if silent:
        log.warning(
            "rl: phase %s: %d of %d logged steps carried no learning signal (every group's rewards were "
            "equal, frac_reward_zero_std = 1: zero advantages, loss 0), steps %s. Prompts too easy or "
            "too hard for the model (see filter_solved), or a reward that cannot tell answers apart.",
            phase.name,
            silent,
            n,
            health["steps_without_signal_list"][:20],
        )
    for name, rates in health["reward_failure_rates"].items():
        if rates.get("timeout_rate", 0) or rates.get("error_rate", 0):
            log.warning("rl: phase %s: reward %s failed on some items: %s", phase.name, name, rates)
    dyn = health.get("dynamic_sampling")
    if dyn and dyn["steps_refill_bound_hit"]:
        log.warning(
            "rl: phase %s: dynamic sampling reached its bound (max_refills) in %d steps %s: those steps trained "
            "on fewer groups with a signal than the batch holds (the rest masked out).",
            phase.name,
            dyn["steps_refill_bound_hit"],
            dyn["steps_refill_bound_hit_list"][:20],
        )


def _heldout_curve(recipe: Recipe, ctx: StageContext, phase: RLPhase, reward):
    """The phase's held-out curve (train/heldout_curve.py): rl.heldout_problems held-out problems of the
    phase's domains (all without ``domains``) taken in turn from each domain, rl.heldout_samples each,
    with the probe's temperature, top_p and length."""
    from ssp.train.heldout_curve import HeldoutCurve

    heldout = ctx.upstream(DataOutputs).eval
    if not heldout:
        raise StageError(
            "rl.heldout_every: the held-out curve needs the data stage's eval set; this run has none"
        )
    rows = load_rows(heldout, PROBLEM_FIELDS, "eval")
    if phase.domains:  # the phase's own domains: its correctness reward grades only those
        rows = [r for r in rows if r["domain"] in phase.domains]
        if not rows:
            raise StageError(
                f"rl.heldout_every: the held-out set has no problem of rl.phases[{recipe.rl.phases.index(phase)}]"
                f".domains {phase.domains}"
            )
    if 0 < recipe.rl.heldout_problems < len(rows):
        rank: dict[str, int] = {}
        order = []
        for i, r in enumerate(rows):
            rank[r["domain"]] = rank.get(r["domain"], -1) + 1
            order.append((rank[r["domain"]], i))
        rows = [rows[i] for _, i in sorted(order)[: recipe.rl.heldout_problems]]
    params = recipe.probe.params(seed=recipe.rl.seed, n=recipe.rl.heldout_samples)
    return HeldoutCurve(rows, reward, params, recipe.rl.heldout_every, recipe.data.prompt_suffix)


def grpo_config(recipe: Recipe, phase: RLPhase, output_dir: Path):
    from ssp.train.mgpo import MGPOConfig

    rl = recipe.rl
    options = dict(
        output_dir=str(output_dir),
        max_steps=phase.max_steps,
        per_device_train_batch_size=phase.per_device_train_batch_size,
        num_generations=phase.num_generations,
        max_completion_length=phase.max_completion_length,
        temperature=phase.temperature,
        learning_rate=phase.learning_rate,
        reward_weights=[r.weight for r in phase.rewards],
        save_strategy="steps",
        save_steps=rl.save_every,
        save_total_limit=None,
        logging_steps=1,
        seed=rl.seed,
        data_seed=rl.seed,
        report_to=recipe.tracking.report_to,
        **trainer_device_args(),
        **checkpointing_args(rl.gradient_checkpointing),
        # The report's written objective: std-normalised group advantages, clipped surrogate, no KL.
        scale_rewards="group",
        beta=0.0,
        mgpo_lambda=rl.lam,
        mgpo_p0=rl.p0,
        mgpo_correctness_index=next(i for i, r in enumerate(phase.rewards) if r.correctness),
        dynamic_sampling=phase.dynamic_sampling,
        dynamic_sampling_max_refills=phase.max_refills,
        **rl.rollout.trl_options(),
    )
    options.update(phase.trl)  # TRL options under their TRL names win
    return MGPOConfig(**options)


def _vllm_on_cpu(args):
    """TRL's colocated vLLM on CPU needs linear weights it can load into (sampling/generation_vllm.py)."""
    if getattr(args, "use_vllm", False) and args.vllm_mode == "colocate" and not torch.cuda.is_available():
        from ssp.sampling.generation_vllm import plain_cpu_linear

        return plain_cpu_linear()
    return contextlib.nullcontext()


def _run_phase(
    recipe: Recipe, ctx: StageContext, index: int, phase: RLPhase, start_model: str
) -> dict[str, Any]:
    import datasets

    from ssp.core.adapters import full_model_folder
    from ssp.core.model_folder import is_training_state
    from ssp.reward.config import build_rewards
    from ssp.train.checkpoints import TrainingFolder, latest_checkpoint
    from ssp.train.log_line import use_step_line
    from ssp.train.mgpo import TimedMGPOTrainer
    from ssp.train.rollout_mismatch import correction_in_use

    phase_dir = ctx.stage_dir / f"{index}-{phase.name}"
    final = phase_dir / "final"
    if final.is_dir():
        log.info("rl: phase %s already finished (%s)", phase.name, final)
        return json.loads((phase_dir / "phase.json").read_text())
    phase_dir.mkdir(parents=True, exist_ok=True)
    rows = _prompts(phase, recipe, ctx)
    filtered = None
    if phase.filter_solved:
        rows, filtered = pass_rate_filter(rows, start_model, phase, recipe)
        log.info("rl: phase %s pass-rate filter: %s", phase.name, filtered)
        if not rows:
            raise DataError(
                f"rl.phases[{index}] ({phase.name}): every prompt has pass rate 0 or 1: {filtered}"
            )
    ds = datasets.Dataset.from_list(
        [
            {
                **{k: v for k, v in r.items() if k != "problem"},
                "prompt": chat_prompt(r["problem"], recipe.data.prompt_suffix),
            }
            for r in rows
        ]
    )
    funcs, _, correct_index = build_rewards(phase.rewards, where=f"rl.phases[{index}].rewards")
    for j, f in enumerate(funcs):
        if getattr(f, "grades_truncated", True) is None:  # by_domain over rules that differ
            raise RecipeError(
                f"rl.phases[{index}].rewards[{j}]: by_domain mixes rewards that treat a truncated completion "
                "differently (math zeroes it, code_tests runs it), which the trainer cannot apply per item: "
                "give each phase one kind of domain (rl.phases[i].domains) and that domain's reward itself "
                "(math_correctness or code_tests), as the report's curriculum does"
            )
    curve = _heldout_curve(recipe, ctx, phase, funcs[correct_index]) if recipe.rl.heldout_every else None
    folder = TrainingFolder(phase_dir)
    resume = folder.resume_point(ctx.is_main)
    args = grpo_config(recipe, phase, folder.staging)
    if resume:
        log.info("rl: phase %s resuming from %s", phase.name, resume)
    try:
        with _vllm_on_cpu(args):
            trainer = TimedMGPOTrainer(
                model=start_model,
                reward_funcs=funcs,
                args=args,
                train_dataset=ds,
                peft_config=recipe.rl.lora.peft_config(),
                callbacks=[
                    *folder.callbacks(
                        ctx, f"RL phase {phase.name} of the ssp run {recipe.run_name}", start_model
                    ),
                    *([curve] if curve else []),
                ],
            )
            use_step_line(trainer, f"rl {phase.name}")
            if curve:
                curve.bind(trainer)
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        for f in funcs:
            if hasattr(f, "close"):
                f.close()
    folder.raise_if_over_budget()
    history = trainer.state.log_history
    health = phase_health(history, [r.name for r in phase.rewards])
    _warn_on_health(phase, health)
    if curve and curve.curve:
        log.info(
            "rl: phase %s: held-out pass@1 (%d samples) %s",
            phase.name,
            curve.curve[0]["samples"],
            ", ".join(f"step {p['step']}: {p['pass@1']:.3f}" for p in curve.curve),
        )
    folder.save_history(history, ctx.is_main)
    summary = {
        "phase": phase.name,
        "start_model": start_model,
        "steps": trainer.state.global_step,
        "prompts": len(rows),
        "filter": filtered,
        "resumed_from": str(resume) if resume else None,
        "final": str(final),
        **health,
        "rollouts": correction_in_use(args),
        "sync_checks": trainer.sync_checks,
        "heldout_curve": curve.curve if curve else None,
    }
    if ctx.is_main:
        (phase_dir / "phase.json").write_text(json.dumps(summary, indent=2))
        tmp = phase_dir / f".final.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(
            # with LoRA, the final model is the last adapter merged into the phase's starting model
            full_model_folder(latest_checkpoint(phase_dir)),
            tmp,
            ignore=lambda _, names: [n for n in names if is_training_state(n)],
        )
        tmp.rename(final)  # the phase is finished once this exists
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return summary


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    merge = ctx.upstream(MergeOutputs)
    model = merge.model
    check_model_folder(model)
    spectrum, phases = model, []
    for index, phase in enumerate(recipe.rl.phases):
        summary = _run_phase(recipe, ctx, index, phase, model)
        phases.append(summary)
        model = summary["final"]
    metrics: dict[str, Any] = {"lam": recipe.rl.lam, "phases": phases}
    if recipe.rl.eval_heldout and ctx.is_main:
        # The merge stage already sampled the spectrum model with these settings and seed (the
        # rl fingerprint covers the probe config it used): reuse it rather than sample it again.
        if merge.heldout is not None:
            before = merge.heldout
            after = heldout_comparison(recipe, ctx, {"signal (after RL)": model})
            metrics["heldout"] = {"spectrum (before RL)": before, **after}
        else:
            metrics["heldout"] = heldout_comparison(
                recipe, ctx, {"spectrum (before RL)": spectrum, "signal (after RL)": model}
            )
        (ctx.stage_dir / "heldout.json").write_text(json.dumps(metrics["heldout"], indent=2))
    return StageResult(outputs=RLOutputs(model=model, phases=[p["final"] for p in phases]), metrics=metrics)


# ------------------------------------------------------------------ what the launcher knows of it


def _has_rl_split(recipe: Recipe, checks: Checks) -> bool:
    """Whether the data stage hands on an RL prompt set: as recorded if it ran before, else as
    the recipe will make it."""
    data = recipe.data
    if not checks.runs("data") and checks.manifest.completed("data"):
        return checks.manifest.outputs("data").rl is not None
    return (
        data.source == "tiny"
        or (data.source == "build" and data.rl_problems_per_domain > 0)
        or bool(data.rl_file)
    )


def preflight(recipe: Recipe, checks: Checks) -> None:
    rollout = recipe.rl.rollout
    if rollout.server_gpus:  # the node's GPUs split between the server and the trainers
        from ssp.sampling.data_parallel import visible_gpus
        from ssp.stages.rollout_server import gpu_split, training_nproc

        try:
            training_nproc(recipe, gpu_split(recipe, visible_gpus())[1])
        except RecipeError as err:
            checks.problem(str(err))
    has_rl_split = _has_rl_split(recipe, checks)
    for j, phase in enumerate(recipe.rl.phases):
        if phase.prompts == "rl" and not has_rl_split:
            checks.problem(
                f"rl.phases[{j}].prompts: 'rl' reads the data stage's RL prompt set, but there is none "
                "(data.source=files with data.rl_file: null): set data.rl_file, or the phase's prompts "
                "to a file"
            )
        elif phase.prompts != "rl":
            checks.file(phase.prompts, f"rl.phases[{j}].prompts")
        for k, reward in enumerate(phase.rewards):
            check_code_rewards(f"rl.phases[{j}].rewards[{k}]", reward.name, reward.options, checks)
    if rollout.engine == "vllm" and rollout.vllm_mode == "colocate" and rollout.enable_sleep_mode:
        checks.gpu_only("rl.rollout.enable_sleep_mode=true")
    check_training_settings(recipe, checks, "rl.nproc_per_node", recipe.rl.nproc_per_node)


def around(recipe: Recipe, manifest: Manifest, multi_node: bool) -> Around | None:
    """With ``rl.rollout.server_gpus``, the stage's own vLLM server on the node's last GPUs
    (``stages/rollout_server.py``) and the trainers on the others. Checks only: nothing starts here."""
    if not recipe.rl.rollout.server_gpus:
        return None
    from ssp.sampling.data_parallel import visible_gpus
    from ssp.stages.rollout_server import gpu_split, rollout_server, running, training_nproc

    if multi_node:
        raise StageError(
            "rl.rollout.server_gpus: the rl stage starts its vLLM server on one node only; across nodes, "
            "start `trl vllm-serve` yourself and set rl.rollout.server_base_url (docs/cluster.md)"
        )
    serve, train = gpu_split(recipe, visible_gpus())
    model = manifest.outputs("merge").model
    log_file = recipe.run_dir / "logs" / "rl-vllm-server.log"
    return Around(
        nproc=training_nproc(recipe, train),
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(train)},
        service=lambda: running(rollout_server(recipe, model, serve, log_file)),
    )


def job_check(recipe: Recipe, nodes: int) -> None:
    """A Slurm job's shape for the stage's own vLLM server (server_gpus implies engine vllm and
    vllm_mode server: RolloutConfig checks it)."""
    from ssp.stages.rollout_server import EPHEMERAL_PORTS

    rollout = recipe.rl.rollout
    if rollout.server_gpus and nodes > 1:
        raise RecipeError(
            "rl.rollout.server_gpus: the rl stage starts its vLLM server on single-node jobs only; "
            "across nodes, start `trl vllm-serve` yourself and set rl.rollout.server_base_url "
            "(docs/cluster.md)"
        )
    if rollout.server_gpus and rollout.server_port in EPHEMERAL_PORTS:
        raise RecipeError(
            f"rl.rollout.server_port={rollout.server_port} is in Linux's ephemeral port range "
            f"({EPHEMERAL_PORTS.start}-{EPHEMERAL_PORTS.stop - 1}), where any outgoing connection of the node "
            "may hold it when the server starts: pick one below 32768 (the default is 8000)"
        )


SPEC = StageSpec(
    "rl",
    run,
    needs=("data", "merge"),
    distributed=True,
    sections=lambda r: (r.rl, r.probe, sampling_section(r), r.data.prompt_suffix),
    nproc_setting=lambda r: r.rl.nproc_per_node,
    extra_gpus=lambda r: r.rl.rollout.server_gpus,
    preflight=preflight,
    around=around,
    report=rl_report.report,
    results=rl_report.results,
    job_check=job_check,
    on_one_node="torchrun on the first node (and the vLLM server, with rl.rollout.server_gpus)",
)
