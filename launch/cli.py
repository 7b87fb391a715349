"""The ``ssp`` command.

ssp run RECIPE [key=value ...] [--force STAGE]     every stage of the recipe, in order
ssp stage NAME RECIPE [key=value ...] [--force]    one stage
ssp show RECIPE [key=value ...]                    the resolved recipe, validated
ssp merge --out DIR CKPT[:WEIGHT] ...              weighted average of model folders
ssp eval MODEL ... --benchmarks NAME[=SOURCE] ...  benchmark models outside a run
ssp doctor [RECIPE [key=value ...]]                what this machine (and recipe) can run
"""

from __future__ import annotations

import argparse
import sys

from launch.errors import SSPError
from launch.recipe import STAGE_ORDER, load_recipe


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssp", description="Spectrum-to-Signal post-training pipeline.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the recipe's stages in order (completed ones are skipped)")
    run.add_argument("recipe")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sft.learning_rate=3e-4")
    run.add_argument(
        "--force", metavar="STAGE", choices=STAGE_ORDER, help="redo this stage and every stage after it"
    )
    stage = sub.add_parser("stage", help="run one stage")
    stage.add_argument("name", choices=STAGE_ORDER)
    stage.add_argument("recipe")
    stage.add_argument("overrides", nargs="*")
    stage.add_argument("--force", action="store_true", help="redo the stage even if it is up to date")
    sub.add_parser(
        "merge",
        add_help=False,
        help="weighted average of model folders: ssp merge --out DIR CKPT[:WEIGHT] ...",
    )
    sub.add_parser(
        "eval",
        add_help=False,
        help="benchmark models outside a run: ssp eval MODEL ... --benchmarks NAME[=SOURCE] ...",
    )
    doctor = sub.add_parser(
        "doctor", help="check this machine (torch, GPUs, DeepSpeed, vLLM, sandbox, a reward round trip)"
    )
    doctor.add_argument("recipe", nargs="?", help="also check what this recipe refers to")
    doctor.add_argument("overrides", nargs="*")
    show = sub.add_parser("show", help="print the resolved, validated recipe")
    show.add_argument("recipe")
    show.add_argument("overrides", nargs="*")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["merge"], ["eval"]):  # their own argument parsers
        if argv[0] == "merge":
            from train.merge import cli
        else:
            from evaluation.stage import cli

        try:
            return cli(argv[1:])
        except SSPError as err:
            print(f"ssp: error: {err}", file=sys.stderr)
            return 2
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        from launch.doctor import main as doctor

        return doctor([args.recipe, *args.overrides] if args.recipe else None)
    from launch.runner import run_pipeline, run_stage, setup_logging

    setup_logging()
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        if args.command == "show":
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(OmegaConf.structured(recipe)), end="")
        elif args.command == "stage":
            run_stage(args.name, recipe, force=args.force)
        else:
            report = run_pipeline(recipe, force=args.force)
            from launch.report import results_table

            print()
            print(results_table(recipe))
            print(f"\nReport: {report}")
    except SSPError as err:
        print(f"ssp: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
