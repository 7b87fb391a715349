"""The ``ssp`` command.

ssp run RECIPE [key=value ...] [--force STAGE] [--from RUN]   every stage of the recipe, in order
ssp stage NAME RECIPE [key=value ...] [--force] [--nnodes N --node-rank R --rdzv-endpoint H:P]   one stage
ssp slurm RECIPE --nodes N --gpus-per-node G [--partition P] [--submit]   an sbatch script of the recipe
ssp show RECIPE [key=value ...]                    the resolved recipe, validated
ssp merge --out DIR CKPT[:WEIGHT] ...              weighted average of model folders
ssp eval MODEL ... --benchmarks NAME[=SOURCE] ...  benchmark models outside a run
ssp sweep RECIPE [key=value ...] [--grid KEY=V1,V2 ...] [--seeds 0,1,2] [--jobs N]   arms x seeds, shared stages
ssp compare RUN_DIR... [--by KEY,...] [--baseline ARM]   arms of an ablation over seeds, one table
ssp doctor [RECIPE [key=value ...]]                what this machine (and recipe) can run
ssp --version
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ssp.config.eval import BenchmarkSpec, EvalConfig
from ssp.config.recipe import STAGE_ORDER, load_recipe
from ssp.core.errors import RecipeError, SSPError
from ssp.evaluation.benchmarks import BENCHMARKS


def _version() -> str:
    try:
        return version("ssp")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file (recipes/tiny.yaml, ...)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sft.learning_rate=3e-4")


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output model folder (written atomically)")
    p.add_argument(
        "checkpoints", nargs="+", metavar="CKPT[:WEIGHT]", help="model folders; no weights = uniform"
    )
    p.add_argument("--normalize", action="store_true", help="rescale weights to sum to 1")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models",
        nargs="+",
        help="model folders or hub ids, optionally NAME=PATH (default name: the shortest tail of the "
        "path no other model has, e.g. A/final and B/final)",
    )
    p.add_argument(
        "--benchmarks",
        nargs="+",
        required=True,
        metavar="NAME[=SOURCE]",
        help=f"benchmarks ({', '.join(BENCHMARKS)}), each optionally with a local file or hub id",
    )
    p.add_argument("--out", help="output folder (default runs/eval-<time>)")
    p.add_argument("--n-samples", type=int, default=0, help="samples per problem (default: the protocol's)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-new-tokens", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="first N problems of each benchmark (smoke runs)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--graders",
        nargs="+",
        default=[],
        metavar="GRADER",
        help="also grade math samples with these graders (ssp deepscaler qwen25math) and tabulate their "
        "Pass@1 and disagreements",
    )
    p.add_argument(
        "--backend",
        default="vllm" if importlib.util.find_spec("vllm") is not None else "hf",
        choices=["vllm", "hf"],
        help="generation engine (default: vllm where it can be imported)",
    )
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument(
        "--data-parallel",
        default="1",
        help="engines sampling at once, each on --tensor-parallel-size GPUs; auto = every GPU (docs/cluster.md)",
    )
    p.add_argument("--seed", type=int, default=0)


def _from_arg(parser: argparse.ArgumentParser, help: str) -> None:
    """``--from RUN`` (repeatable): run folders whose identical completed stages are shared."""
    parser.add_argument(
        "--from", dest="donors", metavar="RUN", type=Path, action="append", default=[], help=help
    )


def _topology_args(p: argparse.ArgumentParser) -> None:
    """Multi-node flags of a training stage, passed to torchrun (``launch/topology.py``)."""
    g = p.add_argument_group("several nodes (training stages; docs/cluster.md)")
    g.add_argument("--nnodes", type=int, default=1, help="nodes the stage spans (one launcher per node)")
    g.add_argument("--node-rank", type=int, default=0, help="this node's rank, 0..nnodes-1")
    g.add_argument("--rdzv-endpoint", default="", help="HOST:PORT of node 0, the same on every node")
    g.add_argument("--rdzv-backend", default="static", choices=["static", "c10d"])
    g.add_argument("--rdzv-id", default="ssp", help="c10d: the job's id, the same on every node")


def _topology(args: argparse.Namespace):
    from ssp.launch.topology import Topology

    return Topology(args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_backend, args.rdzv_id)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssp", description="Spectrum-to-Signal post-training pipeline.")
    p.add_argument("--version", action="version", version=f"ssp {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the recipe's stages in order (completed ones are skipped)")
    _recipe_args(run)
    run.add_argument(
        "--force", metavar="STAGE", choices=STAGE_ORDER, help="redo this stage and every stage after it"
    )
    _from_arg(
        run,
        "branch from another run folder (or every run of a folder of runs, such as a sweep): its "
        "completed stages this recipe would run identically are shared, not run again (repeatable)",
    )
    sweep = sub.add_parser(
        "sweep", help="arms of an ablation x seeds, identical stages shared, then compared"
    )
    _recipe_args(sweep)
    sweep.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2", help="a swept key (repeatable)"
    )
    sweep.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="a named ablation of the paper: entropy (rl.lam 0 vs the recipe's), diversity (1 vs the "
        "recipe's solutions per problem), probing (on vs off); repeatable, combines with --grid",
    )
    sweep.add_argument("--seeds", default=None, help="comma-separated seeds (default: sweep.seeds, [0])")
    sweep.add_argument(
        "--name", default=None, help="sweep folder under output_root (default: sweep.name, <run_name>-sweep)"
    )
    sweep.add_argument(
        "--seed-keys",
        default=None,
        help="recipe keys a seed is added to (default: sweep.seed_keys, sft.seed,rl.seed)",
    )
    _from_arg(
        sweep,
        "branch the sweep from a run: its completed stages an arm would run identically are shared "
        "(repeatable)",
    )
    sweep.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="arms at once, each in its own process on its own GPUs (default: sweep.jobs, 1)",
    )
    stage = sub.add_parser("stage", help="run one stage")
    stage.add_argument("name", choices=STAGE_ORDER)
    _recipe_args(stage)
    stage.add_argument("--force", action="store_true", help="redo the stage even if it is up to date")
    _topology_args(stage)
    slurm = sub.add_parser("slurm", help="write (and --submit) an sbatch job running the recipe's stages")
    _recipe_args(slurm)
    slurm.add_argument("--nodes", type=int, required=True, help="nodes of the job")
    slurm.add_argument("--gpus-per-node", type=int, required=True, help="GPUs of each node")
    slurm.add_argument("--partition", default="")
    slurm.add_argument("--account", default="")
    slurm.add_argument("--time", default="", help="sbatch --time, e.g. 2-00:00:00")
    slurm.add_argument(
        "--cpus-per-node",
        type=int,
        default=0,
        help="sbatch --cpus-per-task (one task per node); default: GPUs per node x --cpus-per-gpu",
    )
    slurm.add_argument(
        "--cpus-per-gpu", type=int, default=8, help="CPUs per GPU when --cpus-per-node is not given"
    )
    slurm.add_argument("--submit", action="store_true", help="sbatch the script once written")
    _merge_args(sub.add_parser("merge", help="weighted parameter average of model folders"))
    _eval_args(sub.add_parser("eval", help="benchmark models outside a run"))
    cmp = sub.add_parser("compare", help="compare runs: arms over seeds, intervals, deltas, cost")
    cmp.add_argument("runs", nargs="+", type=Path, help="run folders, or folders of runs")
    cmp.add_argument(
        "--by", default="", help="recipe keys that name the arms (default: the keys that differ)"
    )
    cmp.add_argument("--baseline", default=None, help="the arm deltas are taken against (default: the first)")
    cmp.add_argument(
        "--allow-stale",
        action="store_true",
        help="compare runs whose results are not their current recipe's (listed at the top of compare.md)",
    )
    cmp.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first run's parent>/compare)"
    )
    doctor = sub.add_parser(
        "doctor", help="check this machine (torch, GPUs, DeepSpeed, vLLM, sandbox, a reward round trip)"
    )
    doctor.add_argument("recipe", nargs="?", help="also check what this recipe refers to")
    doctor.add_argument("overrides", nargs="*")
    _recipe_args(sub.add_parser("show", help="print the resolved, validated recipe"))
    show_run = sub.add_parser(
        "show-run", help="print what a run logged to W&B, from its offline files (no account needed)"
    )
    show_run.add_argument("run", type=Path, help="a run folder (runs/<name>)")
    show_run.add_argument("--stage", default=None, help="only this stage's W&B run (sft, rl, eval, ...)")
    show_run.add_argument(
        "--keys",
        nargs="+",
        default=None,
        help="metrics to show: names, parts of names or globs (train/rewards/*)",
    )
    show_run.add_argument(
        "--steps", action="store_true", help="also print every logged step of those metrics"
    )
    return p


def merge(args: argparse.Namespace) -> int:
    """``ssp merge``: ``train/fusion.py`` on the command line's folders and weights."""
    from ssp.train.fusion import merge_checkpoints, parse_sources

    out = merge_checkpoints(
        parse_sources(args.checkpoints),
        args.out,
        normalize=args.normalize,
        overwrite=args.overwrite,
        option_names={"normalize": "--normalize", "overwrite": "--overwrite"},
    )
    print(out)
    return 0


def _benchmark_arg(text: str) -> BenchmarkSpec:
    name, _, source = text.partition("=")
    if name not in BENCHMARKS:
        raise RecipeError(f"--benchmarks {text!r}: unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BenchmarkSpec(name=name, source=source)


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise RecipeError(f"{flag} {text!r}: a positive integer or auto")
    return value


def evaluate_models(args: argparse.Namespace) -> int:
    """``ssp eval``: ``evaluation/evaluate.py`` on models outside a recipe run."""
    from ssp.core.atomic import write_atomic
    from ssp.core.cost import CostConfig, CostMeter, detect_hardware
    from ssp.evaluation.evaluate import evaluate, model_names
    from ssp.sampling.data_parallel import engine_count, gpus_per_engine
    from ssp.sampling.generation import GenerationConfig

    # NAME=PATH, or PATH shown as the shortest tail of it no other model has (A/final, B/final)
    models = model_names(
        [
            (name, path) if "=" in m else (None, m)
            for m in args.models
            for name, _, path in [m.partition("=")]
        ],
        "ssp eval",
    )
    specs = [
        replace(
            _benchmark_arg(b),
            n_samples=args.n_samples,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            limit=args.limit,
        )
        for b in args.benchmarks
    ]
    cfg = EvalConfig(
        models=list(models),
        benchmarks=specs,
        batch_size=args.batch_size,
        seed=args.seed,
        graders=args.graders,
    )
    dp = (
        args.data_parallel
        if args.data_parallel == "auto"
        else _positive_int(args.data_parallel, "--data-parallel")
    )
    generation = GenerationConfig(
        backend=args.backend, tensor_parallel_size=args.tensor_parallel_size, data_parallel=dp
    )
    out = Path(args.out or f"runs/eval-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    meter = CostMeter(CostConfig(), detect_hardware(engine_count(generation) * gpus_per_engine(generation)))
    summary = evaluate(models, specs, cfg, out, generation=generation)
    summary["cost"] = meter.record()
    write_atomic(out / "results.json", json.dumps(summary, indent=2))
    print((out / "results.md").read_text())
    print(
        f"Results: {out}/results.json, {out}/results.md, {out}/pass1.png, completions in {out}/completions/"
    )
    return 0


def slurm_job(args: argparse.Namespace, recipe) -> int:
    """``ssp slurm``: ``launch/slurm.py`` writes the job (and submits it with ``--submit``)."""
    import os

    from ssp.launch.slurm import SlurmOptions, submit, write_job

    opts = SlurmOptions(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        partition=args.partition,
        time=args.time,
        account=args.account,
        cpus_per_node=args.cpus_per_node,
        cpus_per_gpu=args.cpus_per_gpu,
        python=sys.executable,
        workdir=os.getcwd(),
    )
    script = write_job(recipe, opts)
    print(f"Written: {script} (the resolved recipe beside it)")
    if args.submit:
        print(submit(script))
    else:
        print(f"Submit with: sbatch {script}")
    return 0


def _check_donors(donors: list[Path]) -> None:
    for donor in donors:
        if not (donor / "manifest.json").is_file() and not (donor / "sweep.json").is_file():
            raise RecipeError(
                f"--from {donor}: not a run folder (no manifest.json) nor a sweep folder (no sweep.json)"
            )


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line, with ``key=value`` (and ``~key``) overrides allowed after options too
    (``ssp run RECIPE --force sft sft.learning_rate=1e-3``): argparse alone takes positionals only
    before the first option and refused that, as written in the docs."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    stray = [
        a
        for a in extra
        if a.startswith("-") or ("=" not in a and not a.startswith("~")) or not hasattr(args, "overrides")
    ]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "doctor":
        from ssp.launch.doctor import main as doctor

        return doctor([args.recipe, *args.overrides] if args.recipe else None)
    from ssp.launch.logs import setup_logging
    from ssp.launch.runner import run_pipeline, run_stage

    setup_logging()
    try:
        if args.command == "merge":
            return merge(args)
        if args.command == "eval":
            return evaluate_models(args)
        if args.command == "show-run":
            from ssp.launch.show_run import show_run

            print(show_run(args.run, args.keys, args.stage, args.steps), end="")
            return 0
        if args.command == "compare":
            from ssp.evaluation.compare import compare_runs

            first = args.runs[0].resolve()
            out = args.out or (first.parent if (first / "manifest.json").is_file() else first) / "compare"
            by = [k for k in args.by.split(",") if k]
            from ssp.launch.run_state import stale_stages

            text = compare_runs(
                args.runs, out, by or None, args.baseline, check=stale_stages, allow_stale=args.allow_stale
            )
            print(text)
            print(f"Written: {out}/compare.md, compare.json, compare_<benchmark>.png")
            return 0
        if args.command == "sweep":
            from ssp.launch.sweep import resolve_plan, run_sweep

            try:
                seeds = None if args.seeds is None else [int(x) for x in args.seeds.split(",")]
            except ValueError:
                raise RecipeError(f"--seeds {args.seeds!r}: expected integers such as 0,1,2") from None
            plan = resolve_plan(
                Path(args.recipe),
                args.overrides,
                args.grid,
                args.preset,
                seeds,
                None if args.seed_keys is None else [k for k in args.seed_keys.split(",") if k],
                args.name,
                args.jobs,
            )
            _check_donors(args.donors)
            folder = run_sweep(
                Path(args.recipe),
                plan.grid,
                plan.seeds,
                args.overrides,
                plan.name,
                plan.seed_keys,
                plan.jobs,
                plan.gpus_per_arm,
                args.donors,
            )
            print(f"Sweep: {folder}; comparison: {folder}/compare/compare.md")
            return 0
        recipe = load_recipe(args.recipe, args.overrides)
        if args.command == "show":
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(OmegaConf.structured(recipe)), end="")
        elif args.command == "slurm":
            return slurm_job(args, recipe)
        elif args.command == "stage":
            run_stage(args.name, recipe, force=args.force, topology=_topology(args))
        else:
            _check_donors(args.donors)
            report = run_pipeline(recipe, force=args.force, donors=args.donors)
            from ssp.launch.report import results_table

            print()
            print(results_table(recipe))
            print(f"\nReport: {report}")
    except SSPError as err:
        print(f"ssp: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
