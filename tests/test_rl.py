"""The rl stage: phases chain, finished phases are not rerun, an interrupted phase resumes."""

import json
import shutil

import pytest

from ssp.config.recipe import load_recipe
from ssp.core.errors import RecipeError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, MergeOutputs
from ssp.launch.runner import execute_here, run_stage

from .conftest import TINY, fast_recipe
from .helpers.scripted_model import build_scripted_model
from .helpers.scripted_run import complete, write_problems

PHASES = (
    "rl.phases=[{name: warm, max_steps: 2, num_generations: 4, per_device_train_batch_size: 8, "
    "max_completion_length: 16, learning_rate: 1e-4}, {name: more, max_steps: 2, num_generations: 4, "
    "per_device_train_batch_size: 8, max_completion_length: 16, trl: {epsilon_high: 0.28}, "
    "dynamic_sampling: true, max_refills: 1}]"
)
RL = [PHASES, "rl.save_every=1", "rl.eval_heldout=false"]


@pytest.fixture(scope="module")
def spectrum(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectrum")
    recipe = fast_recipe(root, *RL)
    run_stage("data", recipe)
    for stage in ("sft", "probe", "merge"):
        execute_here(stage, recipe)
    return root


@pytest.mark.slow
def test_phases_chain_and_resume(spectrum, tmp_path):
    shutil.copytree(spectrum / "tiny", tmp_path / "tiny")
    recipe = fast_recipe(tmp_path, *RL)
    execute_here("rl", recipe)
    entry = Manifest(recipe.run_dir).stage("rl")
    warm, more = entry["metrics"]["phases"]
    assert warm["start_model"] == Manifest(recipe.run_dir).stage("merge")["outputs"]["model"]
    assert more["start_model"] == warm["final"] and entry["outputs"]["model"] == more["final"]
    assert warm["steps"] == 2 and more["steps"] == 2
    from ssp.core.model_folder import is_training_state

    final = {p.name for p in (recipe.run_dir / "rl" / "1-more" / "final").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= final
    assert not [n for n in final if is_training_state(n)], f"training state in the final model: {final}"
    card = (recipe.run_dir / "rl" / "1-more" / "final" / "README.md").read_text()
    assert f"of RL phase more of the ssp run {recipe.run_name}, trained from `{warm['final']}`" in card
    # The fast recipe's spectrum model writes noise: no rollout holds a final answer, so every group
    # is all-wrong. Phase 1 (no dynamic sampling) still logs MGPO's weights over those groups.
    warm_history = json.loads((recipe.run_dir / "rl" / "0-warm" / "log_history.json").read_text())
    assert any("mgpo/weight_mean" in h for h in warm_history), "MGPO metrics are logged"
    history = json.loads((recipe.run_dir / "rl" / "1-more" / "log_history.json").read_text())

    drawn = [(h["reward"], h["dynamic_sampling/groups_drawn"]) for h in history if "reward" in h]
    assert len(drawn) == 2, "phase 2 runs dynamic sampling"

    # Interrupt phase 2 after its first step: drop its final model and its step-2 checkpoint.
    phase2 = recipe.run_dir / "rl" / "1-more"
    shutil.rmtree(phase2 / "final")
    shutil.rmtree(phase2 / "checkpoints" / "checkpoint-2")
    (phase2 / "phase.json").unlink()
    warm_final_mtime = (recipe.run_dir / "rl" / "0-warm" / "final").stat().st_mtime_ns
    Manifest(recipe.run_dir).update("rl", status="running")
    execute_here("rl", recipe)
    entry = Manifest(recipe.run_dir).stage("rl")
    assert entry["status"] == "completed" and entry["attempts"] == 2
    warm2, more2 = entry["metrics"]["phases"]
    assert (recipe.run_dir / "rl" / "0-warm" / "final").stat().st_mtime_ns == warm_final_mtime, (
        "phase 1 reran"
    )
    assert more2["resumed_from"].endswith("checkpoint-1") and more2["steps"] == 2
    history2 = json.loads((phase2 / "log_history.json").read_text())
    # the resumed step 2 drew the same rollouts and refills (the refill stream is a function of the step)
    assert [(h["reward"], h["dynamic_sampling/groups_drawn"]) for h in history2 if "reward" in h][
        -1
    ] == drawn[-1]


@pytest.mark.slow
def test_trl_options_pass_through(spectrum):
    from ssp.stages.rl import grpo_config

    recipe = fast_recipe(spectrum, *RL)
    cfg = grpo_config(recipe, recipe.rl.phases[1], spectrum / "x")
    assert cfg.epsilon_high == 0.28 and cfg.beta == 0.0 and cfg.scale_rewards == "group"
    assert cfg.mgpo_lambda == recipe.rl.lam and cfg.mgpo_correctness_index == 0
    grpo = grpo_config(fast_recipe(spectrum, *RL, "rl.lam=0"), recipe.rl.phases[0], spectrum / "y")
    assert grpo.mgpo_lambda == 0.0  # the GRPO ablation: same trainer, lambda = 0


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "rl.phases=[{name: a, rewards: [{name: math_corectness, correctness: true}]}]",
            "rl.phases[0].rewards[0].name: unknown reward 'math_corectness'",
        ),
        (
            "rl.phases=[{name: a}, {name: b, rewards: [{name: format}]}]",
            "rl.phases[1].rewards: exactly one reward must set correctness: true",
        ),
        ("rl.phases=[{name: a, num_generations: 1}]", "rl.phases[0].num_generations: must be >= 2"),
        ("rl.lam=-1", "rl.lam: must be >= 0"),
    ],
)
def test_rl_recipe_errors_name_the_key(override, message):
    with pytest.raises(RecipeError) as info:
        load_recipe(TINY, [override])
    assert message in str(info.value)


@pytest.mark.slow
def test_pass_rate_filter_keeps_only_prompts_sometimes_solved(spectrum, monkeypatch):
    """Rows the model always or never solves go; the counts add up. Scores come from a real
    sampling pass; the reward is a stand-in that solves by row, so every case occurs."""
    import ssp.reward.registry as registry
    from ssp.stages import rl

    recipe = fast_recipe(spectrum, *RL)
    rows = [
        {"id": str(i), "domain": "algebra", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
        for i in range(6)
    ]
    real_get_reward = registry.get_reward

    def by_row(name, **options):  # row i: every sample right (i % 3 == 0), none (1), half (2)
        def score(completions, id, **columns):
            return [[1.0, 0.0, float(k % 2)][int(i) % 3] for k, i in enumerate(id)]

        return score if name == "math_correctness" else real_get_reward(name, **options)

    monkeypatch.setattr(registry, "get_reward", by_row)
    monkeypatch.setattr("ssp.reward.get_reward", by_row)
    monkeypatch.setattr("ssp.reward.config.get_reward", by_row)  # where samplers build their reward
    kept, counts = rl.pass_rate_filter(
        rows, Manifest(spectrum / "tiny").stage("merge")["outputs"]["model"], recipe.rl.phases[0], recipe
    )
    assert [r["id"] for r in kept] == ["2", "5"]
    assert counts == {"solved": 2, "unsolved": 2, "kept": 2}


@pytest.mark.slow
def test_a_phase_without_learning_signal_says_so(tmp_path, caplog):
    """A scripted spectrum model that answers every prompt right: every group's rewards are equal,
    so no step carries signal. The stage must say so (log, phase summary, report), computed from
    the trainer's own log history; the reward's failure rates are logged as 0."""
    from ssp.launch.report import write_report

    recipe = fast_recipe(
        tmp_path,
        "rl.phases=[{name: solved, max_steps: 2, num_generations: 4, per_device_train_batch_size: 8, "
        "max_completion_length: 4}]",
        "rl.eval_heldout=false",
        "rl.heldout_every=0",
        "rl.save_every=1",
    )
    model = build_scripted_model(tmp_path / "spectrum", p=1.0)
    card = tmp_path / "data_card.md"
    card.write_text("# Data card\n\nhand-made RL prompts\n")
    rl_file = write_problems(tmp_path / "rl.jsonl", "algebra", gold="7", count=8)
    complete(recipe, DataOutputs(model="(a test double)", data_card=str(card), rl=rl_file))
    complete(recipe, MergeOutputs(model=str(model), merged=False))
    with caplog.at_level("WARNING", logger="ssp"):
        execute_here("rl", recipe)
    phase = Manifest(recipe.run_dir).stage("rl")["metrics"]["phases"][0]
    history = json.loads((recipe.run_dir / "rl" / "0-solved" / "log_history.json").read_text())
    silent = [h for h in history if h.get("frac_reward_zero_std") == 1.0]
    assert [h["reward"] for h in history if "reward" in h] == [1.0, 1.0]
    assert phase["logged_steps"] == 2 and phase["steps_without_signal"] == len(silent) == 2
    assert phase["reward_failure_rates"]["math_correctness"] == {
        "timeout_rate": 0.0,
        "error_rate": 0.0,
        "unscorable_rate": 0.0,
    }
    assert "2 of 2 logged steps carried no learning signal" in caplog.text
    report = write_report(recipe).read_text()
    assert "Steps without learning signal (no group with differing rewards trained on): 2 of 2." in report
    assert "No learning signal in most steps" in report


def test_phase_health_counts_silent_steps_and_reward_failures():
    from ssp.stages.rl import phase_health

    history = [
        {"step": 1, "frac_reward_zero_std": 1.0, "rewards/math_correctness/timeout_rate": 0.5},
        {"step": 2, "frac_reward_zero_std": 0.25, "rewards/math_correctness/timeout_rate": 0.0},
        {"step": 3, "frac_reward_zero_std": 1.0},
        {"train_runtime": 1.0},
    ]
    health = phase_health(history, ["math_correctness", "format"])
    assert health["logged_steps"] == 3 and health["steps_without_signal"] == 2
    assert health["steps_without_signal_list"] == [1, 3]
    assert health["reward_failure_rates"] == {"math_correctness": {"timeout_rate": 0.25}}


def test_phase_health_and_report_show_rollouts_without_an_answer():
    """The share of rollouts with no final answer (and scored 0 for truncation) reaches phase.json and
    the report: a policy that stops answering, or runs into the token limit, is visible there."""
    from ssp.stages.rl import phase_health
    from ssp.stages.rl_report import rl_health

    history = [
        {
            "step": 1,
            "frac_reward_zero_std": 0.0,
            "rewards/math_correctness/no_answer_rate": 0.5,
            "rewards/math_correctness/truncated_zeroed": 0.25,
            "completions/clipped_ratio": 0.5,
        },
        {
            "step": 2,
            "frac_reward_zero_std": 0.0,
            "rewards/math_correctness/no_answer_rate": 0.25,
            "rewards/math_correctness/truncated_zeroed": 0.0,
            "completions/clipped_ratio": 0.25,
        },
    ]
    health = phase_health(history, ["math_correctness"])
    assert health["answers"] == {
        "math_correctness": {"no_answer_rate": 0.375, "truncated_zeroed": 0.125},
        "clipped_ratio": 0.375,
    }
    text = "\n".join(rl_health(health))
    assert (
        "math_correctness: 37.5% held no final answer, 12.5% scored 0 for truncation; 37.5% truncated" in text
    )


@pytest.mark.slow
def test_the_heldout_curve_measures_the_policy_without_changing_training(spectrum, tmp_path):
    """heldout_every=1: a point at the start and after each step. The last point equals Pass@1 of the
    saved final model sampled here with the same rows, settings and seed (an independent sampling
    through the generation interface); and the phase trains on the same rollouts as without the
    curve (the random state is restored around each measurement)."""
    from ssp.core.corpus import chat_prompt
    from ssp.reward import get_reward
    from ssp.sampling.generation import HFGenerator

    def run(name, *extra):
        shutil.copytree(spectrum / "tiny", tmp_path / name / "tiny")
        one_phase = PHASES.split("}, {")[0] + "}]"  # the warm phase alone
        recipe = fast_recipe(tmp_path / name, one_phase, *RL[1:], *extra)
        execute_here("rl", recipe)
        phase = Manifest(recipe.run_dir).stage("rl")["metrics"]["phases"][0]
        history = json.loads((recipe.run_dir / "rl" / "0-warm" / "log_history.json").read_text())
        return recipe, phase, history

    recipe, phase, history = run(
        "curve", "rl.heldout_every=1", "rl.heldout_samples=3", "rl.heldout_problems=0"
    )
    _, plain, plain_history = run("plain", "rl.heldout_every=0")
    curve = phase["heldout_curve"]
    assert [p["step"] for p in curve] == [0, 1, 2] and plain["heldout_curve"] is None
    assert [h["heldout/pass@1"] for h in history if "heldout/pass@1" in h] == [p["pass@1"] for p in curve[1:]]

    def rollouts(hist):  # what depends on the sampled completions, not only on their rewards
        return [(h["reward"], h["completions/mean_length"], h["entropy"]) for h in hist if "reward" in h]

    assert rollouts(history) == rollouts(plain_history)
    rows = [json.loads(line) for line in (recipe.run_dir / "data" / "eval.jsonl").read_text().splitlines()]
    params = recipe.probe.params(seed=recipe.rl.seed, n=3)
    gen = HFGenerator(phase["final"], batch_size=256)  # the curve's batch size
    outs = gen.generate([chat_prompt(r["problem"], "") for r in rows], params)
    reward = get_reward("math_correctness")
    try:
        flat = [c for o in outs for c in o]
        scores = reward([c.text for c in flat], answer=[r["answer"] for r in rows for _ in range(3)])
        scores = [0.0 if c.finish_reason == "length" else s for c, s in zip(flat, scores, strict=True)]
    finally:
        reward.close()
    assert curve[-1]["samples"] == 3 * len(rows)
    assert curve[-1]["pass@1"] == sum(s == 1.0 for s in scores) / len(scores)
