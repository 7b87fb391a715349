"""The `sft` stage: diversity-distillation SFT on the multi-solution corpus (TRL SFTTrainer).

    ssp stage sft recipes/tiny.yaml            # launches torchrun with sft.nproc_per_node
    torchrun --nproc_per_node=8 -m ssp.launch.worker sft recipes/vibethinker_1p5b.yaml sft.learning_rate=3e-5

Each (problem, solution) pair of the corpus is one prompt/completion chat example; the loss is
next-token cross-entropy on the completion (assistant turn) only. Departures from a stock TRL
run, each on purpose:

- Examples longer than ``sft.max_length`` are dropped and counted, never truncated (TRL's
  default silently cuts at 1024 tokens, which would teach the model to stop mid-solution).
- A checkpoint every ``save_every`` steps, all kept (probing scores each one), published
  atomically (``train/checkpoints.py``); the final step is always saved.
- Re-running an interrupted stage resumes from the last complete checkpoint, with the same
  data order (the Trainer's own resume).
- The stage ends with a greedy held-out accuracy of the final checkpoint, beside the starting
  model's, as a quick check that SFT learned something.
- ``model.rope_theta`` / ``max_position_embeddings`` / ``rope_scaling`` extend the context before
  training (``train/context_length.py``); ``sft.lora`` trains peft LoRA adapters (checkpoints are
  adapter folders, merged into their base where they are sampled or fused: ``core/adapters.py``).
  The speed keys (padding_free, packing, group_by_length, torch_compile) are TRL's and
  transformers' own; docs/sft.md has their measured effect.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ssp.config.recipe import Recipe
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows, sft_examples
from ssp.core.errors import DataError, RecipeError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, SFTOutputs
from ssp.core.tables import markdown_table
from ssp.stages.spec import StageSpec, check_training_settings
from ssp.train.device import bf16_supported, checkpointing_args, trainer_device_args

log = logging.getLogger("ssp")


def _bf16(recipe: Recipe) -> bool:
    if recipe.sft.bf16 is not None:
        return recipe.sft.bf16
    return bf16_supported()


def _dtype(recipe: Recipe) -> str:
    if recipe.model.dtype != "auto":
        return recipe.model.dtype
    return "bfloat16" if _bf16(recipe) else "float32"


def build_dataset(examples: list[dict[str, Any]], tokenizer, max_length: int):
    """The training set as a ``datasets.Dataset``, without the examples longer than max_length."""
    import datasets

    ds = datasets.Dataset.from_list(examples)

    def length(ex):
        return {
            "n_tokens": len(
                tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True)["input_ids"]
            )
        }

    ds = ds.map(length, desc="sft: measuring example lengths")
    kept = ds.filter(lambda ex: ex["n_tokens"] <= max_length, desc="sft: dropping over-long examples")
    return kept.remove_columns(["n_tokens"]), len(ds) - len(kept), max(ds["n_tokens"])


def check_position_limit(recipe: Recipe, model: str) -> None:
    """sft.max_length within the model's position limit (after the context extension)."""
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", None)
    if limit and recipe.sft.max_length > limit:
        raise RecipeError(
            f"sft.max_length={recipe.sft.max_length} is beyond the position limit of {model} ({limit}): "
            "extend the context (model.max_position_embeddings with model.rope_theta or "
            "model.rope_scaling, docs/sft.md) or lower sft.max_length"
        )


def trl_config(recipe: Recipe, output_dir: Path):
    from trl import SFTConfig

    cfg = recipe.sft
    options = dict(
        output_dir=str(output_dir),
        # padding-free batches without packing: TRL does not cut them, and asks for None; the stage
        # has already dropped every example over sft.max_length (build_dataset)
        max_length=None if cfg.padding_free and not cfg.packing else cfg.max_length,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=None,  # keep every checkpoint: probing needs them all
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        **trainer_device_args(_bf16(recipe)),
        deepspeed=cfg.deepspeed,
        **checkpointing_args(cfg.gradient_checkpointing),
        padding_free=cfg.padding_free,
        packing=cfg.packing,
        packing_strategy="bfd",  # whole examples into max_length rows, attention kept inside each
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        torch_compile=cfg.torch_compile,
        completion_only_loss=True,  # loss on the assistant turn only
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=recipe.tracking.report_to,
        dataset_num_proc=None,
        model_init_kwargs={"dtype": _dtype(recipe), "attn_implementation": recipe.model.attn_implementation},
        disable_tqdm=False,
        save_only_model=False,
    )
    options.update(cfg.trl)  # TRL options under their TRL names win
    return SFTConfig(**options)


def build_trainer(recipe: Recipe, start_model: str, train_ds, tokenizer, output_dir: Path, callbacks=()):
    """The stage's SFTTrainer (also what benchmarks/sft_throughput.py times): TRL's config from the
    recipe, the model loaded from ``start_model``, LoRA adapters when ``sft.lora.enabled``."""
    from trl import SFTTrainer

    from ssp.train.log_line import use_step_line

    trainer = SFTTrainer(
        model=start_model,
        args=trl_config(recipe, output_dir),
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=recipe.sft.lora.peft_config(),
        callbacks=list(callbacks),
    )
    use_step_line(trainer, "sft")
    return trainer


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    from transformers import AutoTokenizer

    from ssp.sampling.greedy import greedy_accuracy
    from ssp.train.checkpoints import TrainingFolder, barrier, complete_checkpoints, latest_checkpoint
    from ssp.train.context_length import extended_start_model

    cfg, data = recipe.sft, ctx.upstream(DataOutputs)
    # Validate every input before any training (bad rows fail naming file, row and field).
    rows = load_rows(data.sft, SFT_FIELDS, "sft")
    # A build may hold out no split of its own (data.eval_problems_per_domain: 0, the eval stage
    # reading a benchmark instead): the greedy held-out checks are then skipped, and said so.
    eval_rows = load_rows(data.eval, PROBLEM_FIELDS, "eval") if data.eval else []
    if not eval_rows:
        log.warning("sft: the data stage wrote no held-out split; greedy held-out checks skipped")
    if cfg.eval_limit:
        eval_rows = eval_rows[: cfg.eval_limit]
    start_model = data.model  # the starting model, as the data stage resolved it
    tokenizer = AutoTokenizer.from_pretrained(start_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_ds, dropped, longest = build_dataset(
        sft_examples(rows, recipe.data.prompt_suffix), tokenizer, cfg.max_length
    )
    if dropped:
        log.warning(
            "sft: dropped %d of %d examples longer than sft.max_length=%d (longest: %d tokens)",
            dropped,
            dropped + len(train_ds),
            cfg.max_length,
            longest,
        )
    if len(train_ds) == 0:
        raise DataError(
            f"sft: every example is longer than sft.max_length={cfg.max_length} (raise sft.max_length or shorten the data)"
        )

    metrics: dict[str, Any] = {"examples": len(train_ds), "dropped_too_long": dropped}
    eval_kw = dict(
        suffix=recipe.data.prompt_suffix,
        batch_size=cfg.eval_batch_size,
        max_new_tokens=cfg.eval_max_new_tokens,
    )
    folder = TrainingFolder(ctx.stage_dir)
    resume = folder.resume_point(ctx.is_main)
    if ctx.is_main:
        base_file = ctx.stage_dir / "base_eval.json"
        if cfg.eval_base and eval_rows and not base_file.exists():
            base = greedy_accuracy(
                start_model, eval_rows, desc="sft: greedy eval of the starting model", **eval_kw
            )
            base_file.write_text(json.dumps(base, indent=2))

    # The context extension is written once, by rank 0 (launch/worker.py set up the process group).
    if ctx.is_main:
        extended_start_model(start_model, ctx.stage_dir, _dtype(recipe), **recipe.model.context_extension())
    barrier()
    trained_from = extended_start_model(
        start_model, ctx.stage_dir, _dtype(recipe), **recipe.model.context_extension()
    )
    check_position_limit(recipe, trained_from)
    trainer = build_trainer(
        recipe,
        trained_from,
        train_ds,
        tokenizer,
        folder.staging,
        callbacks=folder.callbacks(ctx, f"the sft stage of the ssp run {recipe.run_name}", trained_from),
    )
    if resume:
        log.info("sft: resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    folder.raise_if_over_budget()

    final = latest_checkpoint(ctx.stage_dir)
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    metrics.update(
        steps=trainer.state.global_step,
        resumed_from=str(resume) if resume else None,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
    )
    folder.save_history(history, ctx.is_main)
    if recipe.sft.deepspeed:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        # The Trainer's ZeRO-3 setting outlives training: rank 0's model load for the eval below
        # would partition parameters with a collective the other ranks never join (a hang).
        unset_hf_deepspeed_config()
    if ctx.is_main and not eval_rows:
        metrics["heldout_greedy_accuracy"] = "skipped: no held-out split"
    elif ctx.is_main:
        final_eval = greedy_accuracy(
            final, eval_rows, desc="sft: greedy eval of the final checkpoint", **eval_kw
        )
        (ctx.stage_dir / "final_eval.json").write_text(json.dumps(final_eval, indent=2))
        metrics["heldout_greedy_accuracy"] = {
            "final": final_eval["accuracy"],
            "final_per_domain": final_eval["per_domain"],
        }
        if (ctx.stage_dir / "base_eval.json").exists():
            base = json.loads((ctx.stage_dir / "base_eval.json").read_text())
            metrics["heldout_greedy_accuracy"].update(
                start=base["accuracy"], start_per_domain=base["per_domain"]
            )
        log.info("sft: held-out greedy accuracy %s", metrics["heldout_greedy_accuracy"])
    outputs = SFTOutputs(
        model=str(final),
        checkpoints=[str(p) for p in complete_checkpoints(ctx.stage_dir)],
        log_history=str(folder.history_file),
    )
    return StageResult(outputs=outputs, metrics=metrics)


# ------------------------------------------------------------------ what the launcher knows of it


def preflight(recipe: Recipe, checks: Checks) -> None:
    checks.file(recipe.sft.deepspeed, "sft.deepspeed")
    if recipe.model.name_or_path != "tiny":
        checks.model(recipe.model.name_or_path, "model.name_or_path")
    if recipe.sft.bf16:
        checks.gpu_only("sft.bf16=true")
    check_training_settings(recipe, checks, "sft.nproc_per_node", recipe.sft.nproc_per_node)


def greedy_table(manifest: Manifest) -> str:
    """Markdown table: held-out greedy accuracy per domain, starting model vs SFT final checkpoint."""
    acc = manifest.stage("sft")["metrics"].get("heldout_greedy_accuracy", {})
    if isinstance(acc, str):  # "skipped: no held-out split"
        return f"Held-out greedy accuracy: {acc}"
    rows = [
        ("starting model", acc.get("start"), acc.get("start_per_domain", {})),
        (
            f"SFT final ({Path(manifest.outputs('sft').model).name})",
            acc.get("final"),
            acc.get("final_per_domain", {}),
        ),
    ]
    domains = sorted(acc.get("final_per_domain", {}))
    table = markdown_table(
        ["model", "all", *domains],
        (
            [name, f"{total:.3f}", *(f"{per.get(d, 0):.3f}" for d in domains)]
            for name, total, per in rows
            if total is not None
        ),
    )
    return f"Held-out greedy accuracy (one greedy completion per problem)\n\n{table}"


def _loss_plot(history_file: Path, out_png: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads(history_file.read_text())
    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(*zip(*points, strict=True), marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("train loss (assistant tokens)")
    ax.set_title("SFT loss")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return True


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    parts = ["## SFT", ""]
    if _loss_plot(Path(manifest.outputs("sft").log_history), recipe.run_dir / "sft_loss.png"):
        parts += ["![SFT loss](sft_loss.png)", ""]
    m = manifest.stage("sft")["metrics"]
    return parts + [
        f"{m['examples']} examples ({m['dropped_too_long']} dropped as too long), {m['steps']} steps, "
        f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}.",
        "",
        greedy_table(manifest),
        "",
    ]


def _external_files(r: Recipe) -> list[str]:
    files = [r.sft.deepspeed] if r.sft.deepspeed else []
    if r.model.name_or_path != "tiny" and Path(r.model.name_or_path).exists():
        files.append(r.model.name_or_path)
    return files


SPEC = StageSpec(
    "sft",
    run,
    needs=("data",),
    distributed=True,
    sections=lambda r: (r.model, r.sft),
    external_files=_external_files,
    nproc_setting=lambda r: r.sft.nproc_per_node,
    preflight=preflight,
    deepspeed=lambda r: bool(r.sft.deepspeed),
    report=report,
    results=lambda r, m: [greedy_table(m)],
    on_one_node="torchrun on the first node",
)
