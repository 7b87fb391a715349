"""Throughput of the code reward: programs and tests per second in the sandbox, alone and inside
the steps of a code RL phase under TRL (issue 33).

    python benchmarks/code_throughput.py [--problems 40] [--steps 4] [--repeats 2] [--parts alone,trainer,engine]

Part 1, the reward alone, on the tiny task's code problems (data_pipeline/tiny/code.py): every
reference program (all tests pass, so every test runs) and the same number of wrong programs
(they fail at the first test, where ``code_tests`` stops), at ``max_concurrency`` 1, 2 and 4, the
settings interleaved and repeated so drift hits them alike. Part 2, the reward under the trainer: a
code RL phase (``ssp stage rl``'s own code, in process) whose policy is a scripted model writing one
of two programs for every prompt (tests/helpers/scripted_model.py: a real Qwen2 folder whose
weights are chosen, not trained), G = 8, 2 prompts per step; the trainer logs the seconds each
step spends scoring (``perf/scoring_seconds``), so programs per second = completions per step /
scoring seconds. Part 3, beside a sampling engine: the passing programs of part 1 scored with
programs started by the spawner (reward/spawner.py, the default) and by forking the calling process
(the way before it), first with torch and vLLM imported only, then with a CPU vLLM engine loaded (a tiny
Qwen2 model), the two ways interleaved. Figures are for the machine it runs on; docs/benchmarks.md
has ours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers


def reward_alone(problems: int, repeats: int) -> None:
    from ssp.data_pipeline.tiny.problems import generate
    from ssp.reward import get_reward

    items = []
    for p in generate("code", problems, seed=5):
        wrong = "```python\ndef f(*a):\n    return -1\nprint(-1)\n```"
        items.append((p.solutions[0].text, p, len(p.tests)))  # passes: every test runs
        items.append((wrong, p, 1))  # fails at its first test
    settings = [1, 2, 4]
    seconds: dict[int, list[float]] = {c: [] for c in settings}
    for _ in range(repeats):
        for c in settings:
            reward = get_reward("code_tests", max_concurrency=c, test_seconds=3)
            start = time.perf_counter()
            scores = reward(
                [t for t, _, _ in items],
                tests=[json.dumps(list(p.tests)) for _, p, _ in items],
                fn_name=[p.fn_name or None for _, p, _ in items],
            )
            seconds[c].append(time.perf_counter() - start)
            assert scores == [1.0, 0.0] * problems, "a reference program failed or a wrong one passed"
    runs = sum(n for _, _, n in items)
    print(
        f"reward alone: {len(items)} programs ({problems} passing all tests, {problems} failing the first), "
        f"{runs} test runs"
    )
    print("| max_concurrency | seconds (median) | programs/s | test runs/s |")
    print("|---|---|---|---|")
    for c in settings:
        s = statistics.median(seconds[c])
        print(
            f"| {c} | {s:.2f} ({', '.join(f'{x:.2f}' for x in seconds[c])}) | {len(items) / s:.1f} | {runs / s:.1f} |"
        )


def under_the_trainer(steps: int) -> None:
    from ssp.config.recipe import load_recipe
    from ssp.core.manifest import Manifest
    from ssp.core.outputs import DataOutputs, MergeOutputs
    from ssp.data_pipeline.tiny.problems import generate
    from ssp.launch.runner import execute_here
    from tests.helpers.scripted_model import build_scripted_model
    from tests.helpers.scripted_run import complete

    root = Path(tempfile.mkdtemp(prefix="ssp-code-throughput-"))
    rows = [
        {
            "id": f"c{i}",
            "domain": "code",
            "problem": p.problem,
            "tests": json.dumps(list(p.tests)),
            "fn_name": p.fn_name or None,
        }
        for i, p in enumerate(generate("code", 64, seed=9))
    ]
    (root / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "card.md").write_text("# Data card\n")
    phase = (
        "rl.phases=[{name: code, domains: [code], rewards: [{name: code_tests, correctness: true, "
        f"options: {{test_seconds: 3, max_concurrency: 2}}}}], max_steps: {steps}, num_generations: 8, "
        "per_device_train_batch_size: 16, max_completion_length: 4}]"
    )
    recipe = load_recipe(
        ROOT / "recipes" / "tiny.yaml",
        [
            f"output_root={root}",
            phase,
            "rl.eval_heldout=false",
            "rl.heldout_every=0",
            "rl.save_every=100",
        ],
    )
    programs = ("```python\nprint(7)\n```", "```python\ndef f(*a):\n    return 7\n```")
    model = build_scripted_model(root / "policy", p=0.5, completions=programs)
    complete(
        recipe, DataOutputs(model="(scripted)", data_card=str(root / "card.md"), rl=str(root / "rl.jsonl"))
    )
    complete(recipe, MergeOutputs(model=str(model), merged=False))
    execute_here("rl", recipe)
    summary = Manifest(recipe.run_dir).stage("rl")["metrics"]["phases"][0]
    history = json.loads((recipe.run_dir / "rl" / "0-code" / "log_history.json").read_text())
    scoring = [h["perf/scoring_seconds"] for h in history if "perf/scoring_seconds" in h]
    per_step = 16
    print(
        f"under the trainer: {len(scoring)} steps of {per_step} completions (2 prompts x G 8), "
        f"max_concurrency 2; mean seconds per step {summary.get('step_seconds')}"
    )
    print("scoring seconds per step:", ", ".join(f"{s:.2f}" for s in scoring))
    print(f"programs/s while training: {per_step / statistics.median(scoring):.1f} (median step)")


def beside_an_engine(problems: int, repeats: int) -> None:
    import functools

    from ssp.data_pipeline.tiny.problems import generate
    from ssp.reward import get_reward, sandbox, spawner
    from ssp.sampling.generation import GenerationConfig
    from ssp.sampling.scoring import Engine
    from tests.helpers.scripted_model import build_scripted_model

    passing = list(generate("code", problems, seed=5))
    ways = {"spawner": spawner.spawn, "fork the caller": functools.partial(spawner.spawn, here=True)}

    def timed(way: str) -> float:
        sandbox.spawn = ways[way]
        reward = get_reward("code_tests", max_concurrency=2, test_seconds=3)
        start = time.perf_counter()
        scores = reward(
            [p.solutions[0].text for p in passing],
            tests=[json.dumps(list(p.tests)) for p in passing],
            fn_name=[p.fn_name or None for p in passing],
        )
        assert scores == [1.0] * problems, scores
        return time.perf_counter() - start

    seconds: dict[tuple[str, str], list[float]] = {}
    engine = None
    try:
        for where in ("torch and vLLM imported", "vLLM engine loaded"):
            if where == "vLLM engine loaded":
                model = build_scripted_model(Path(tempfile.mkdtemp(prefix="ssp-engine-")) / "m", p=0.5)
                engine = Engine(
                    GenerationConfig(backend="vllm", max_model_len=512, gpu_memory_utilization=0.3)
                )
                engine.on(model)
            for _ in range(repeats):
                for way in ways:
                    seconds.setdefault((where, way), []).append(timed(way))
    finally:
        sandbox.spawn = ways["spawner"]
        if engine is not None:
            engine.close()
    print(f"beside an engine: {problems} passing programs, max_concurrency 2")
    print("| caller | programs started by | seconds (median) | programs/s |")
    print("|---|---|---|---|")
    for (where, way), values in seconds.items():
        s = statistics.median(values)
        runs = ", ".join(f"{x:.2f}" for x in values)
        print(f"| {where} | {way} | {s:.2f} ({runs}) | {problems / s:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--parts", default="alone,trainer,engine", help="which parts to run")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if "alone" in parts:
        reward_alone(args.problems, args.repeats)
    if "trainer" in parts:
        under_the_trainer(args.steps)
    if "engine" in parts:
        beside_an_engine(args.problems, args.repeats)


if __name__ == "__main__":
    main()
