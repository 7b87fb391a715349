"""What a recipe refers to, checked before the first stage runs.

    check_recipe(recipe, ["data", "sft", "probe", "merge", "rl", "eval"])   # RecipeError listing every problem

A recipe names files, models, stages and a process count; a wrong one used to surface only when
its stage started (an RL prompt set that does not exist, hours after SFT began; an eval model
``signa`` that the hub was asked for, after the eval folder had been moved aside). Checked here,
cheaply and without a network:

- every stage's upstream stages run earlier in this invocation or have completed in the run;
- ``data.source=files``: the files exist and pass the data stage's row checks (read here, before
  any run folder, manifest or W&B run exists); ``data.source=build``: local sources and
  decontamination files exist; an RL phase with ``prompts: rl`` has an RL split to read;
- model references (``model.name_or_path``, ``eval.models``, a phase's prompts file, benchmark
  sources, ``sft.deepspeed``): an alias, an existing local file or complete model folder
  (``check_model_folder``: config, tokenizer, untruncated weights), or something shaped like a
  hub id (``owner/name``), which is left to the hub;
- training stages' process counts and sampling stages' engines (``generation.data_parallel``)
  against the visible GPUs (``train/device.resolve_nproc``, ``sampling/data_parallel.py``), and an
  rl stage's own vLLM server (``rl.rollout.server_gpus``: GPUs left to train, CUDA at all);
- a ``code_tests`` reward (an RL phase's, the probe's, a LiveCodeBench benchmark's) in strict mode
  on a machine where bubblewrap cannot isolate programs: it would refuse when its stage starts.
"""

from __future__ import annotations

from pathlib import Path

from config.recipe import Recipe
from core.errors import DataError, RecipeError
from core.manifest import Manifest
from core.references import HUB_ID, looks_local


def _model(ref: str, key: str, problems: list[str], aliases: tuple[str, ...] = ()) -> None:
    from core.model_folder import check_model_folder

    if looks_local(ref):
        try:
            check_model_folder(ref)
        except DataError as err:
            problems.append(f"{key}: {err}")
    elif not HUB_ID.match(ref):
        known = f"a model alias ({', '.join(aliases)}), " if aliases else ""
        problems.append(f"{key}: {ref!r} is neither {known}a model folder here, nor a hub id (owner/name)")


def _file(ref: str | None, key: str, problems: list[str]) -> None:
    if ref and not Path(ref).exists():
        problems.append(f"{key}: file not found: {ref}")


def _code_sandbox(recipe: Recipe, stages: list[str], problems: list[str]) -> None:
    """code_tests rewards that will refuse to run here (strict sandbox, no bubblewrap)."""
    from evaluation.benchmarks import BENCHMARKS

    uses: list[tuple[str, dict]] = []
    if "rl" in stages:
        for j, phase in enumerate(recipe.rl.phases):
            uses += [
                (f"rl.phases[{j}].rewards[{k}]", r.options)
                for k, r in enumerate(phase.rewards)
                if r.name == "code_tests"
            ]
    if {"probe", "merge"} & set(stages) and recipe.probe.reward.name == "code_tests":
        uses.append(("probe.reward", recipe.probe.reward.options))
    if "eval" in stages:
        for j, bench in enumerate(recipe.eval.benchmarks):
            if BENCHMARKS[bench.name].reward == "code_tests":
                options = {**BENCHMARKS[bench.name].reward_options, **bench.reward_options}
                uses.append((f"eval.benchmarks[{j}] ({bench.name})", options))
    from reward.sandbox import SandboxUnavailable, require_isolation

    refused = []
    for key, options in uses:  # the reward's own rule, as CodeTests applies it when built
        try:
            require_isolation(unsafe=options.get("sandbox") == "unsafe")
        except SandboxUnavailable:
            refused.append(key)
    if refused:
        problems.append(
            f"{', '.join(refused)}: code_tests runs programs only under bubblewrap, which cannot start a "
            "sandbox here: install it (apt-get install bubblewrap), or set the reward's option sandbox: unsafe"
        )


def check_recipe(recipe: Recipe, stages: list[str]) -> None:
    """Raise one RecipeError listing every problem found for running ``stages`` of ``recipe``."""
    from config.eval import MODEL_ALIASES
    from launch.stages import STAGES

    problems: list[str] = []
    manifest = Manifest(recipe.run_dir)
    for i, name in enumerate(stages):
        for need in STAGES[name].upstream(recipe):
            if need not in stages[:i] and not manifest.completed(need):
                problems.append(
                    f"stage {name!r} needs stage {need!r}, which is neither run before it here nor "
                    f"completed in {recipe.run_dir}"
                )
        try:  # process counts and sampling engines against the visible GPUs
            STAGES[name].nproc(recipe) if STAGES[name].distributed else STAGES[name].gpus(recipe)
            if name == "rl" and recipe.rl.rollout.server_gpus:
                from launch.rollout_server import gpu_split, training_nproc
                from sampling.data_parallel import visible_gpus

                training_nproc(recipe, gpu_split(recipe, visible_gpus())[1])
        except RecipeError as err:
            problems.append(str(err))
    data = recipe.data
    if "data" in stages and data.source == "files":
        _file(data.train_file, "data.train_file", problems)
        _file(data.eval_file, "data.eval_file", problems)
        _file(data.rl_file, "data.rl_file", problems)
        for domain, path in data.probe_files.items():
            _file(path, f"data.probe_files.{domain}", problems)
        if not problems:
            from stages.data import check_files

            try:
                check_files(recipe)
            except DataError as err:
                problems.append(str(err))
    if "data" in stages and data.source == "build":
        for i, src in enumerate(data.sources):
            if looks_local(src.path):
                _file(src.path, f"data.sources[{i}].path", problems)
        for name, path in data.build.decontaminate_files.items():
            _file(path, f"data.build.decontaminate_files.{name}", problems)
        if (
            "sft" in stages
            and not data.teacher.model
            and not any(src.fields.get("solution") for src in data.sources)
        ):
            problems.append(
                "data.sources: the sft stage needs solutions, but no source maps a solution column "
                "(fields.solution) and data.teacher.model is empty: map one, or set a teacher (docs/data.md)"
            )
        for key, model in data.sampled_models().items():
            _model(model, key, problems)
    if "sft" in stages:
        _file(recipe.sft.deepspeed, "sft.deepspeed", problems)
        if recipe.model.name_or_path != "tiny":
            _model(recipe.model.name_or_path, "model.name_or_path", problems)
    if "rl" in stages:
        data_done = manifest.stage("data") if "data" not in stages else None
        has_rl_split = (
            "rl" in data_done["outputs"]
            if data_done
            else data.source == "tiny"
            or (data.source == "build" and data.rl_problems_per_domain > 0)
            or bool(data.rl_file)
        )
        for j, phase in enumerate(recipe.rl.phases):
            if phase.prompts == "rl" and not has_rl_split:
                problems.append(
                    f"rl.phases[{j}].prompts: 'rl' reads the data stage's RL prompt set, but there is none "
                    "(data.source=files with data.rl_file: null): set data.rl_file, or the phase's prompts "
                    "to a file"
                )
            elif phase.prompts != "rl":
                _file(phase.prompts, f"rl.phases[{j}].prompts", problems)
    if "eval" in stages:
        for j, model in enumerate(recipe.eval.models):
            if model not in MODEL_ALIASES:
                _model(model, f"eval.models[{j}]", problems, tuple(MODEL_ALIASES))
        for j, bench in enumerate(recipe.eval.benchmarks):
            if looks_local(bench.source):
                _file(bench.source, f"eval.benchmarks[{j}].source", problems)
    _code_sandbox(recipe, stages, problems)
    if problems:
        raise RecipeError(
            "the recipe refers to things that are not there (nothing has run):\n  - "
            + "\n  - ".join(problems)
        )
