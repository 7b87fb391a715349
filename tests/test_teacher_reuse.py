"""Teacher samples are reused only when made from exactly what they would be made from now
(core/reuse.py; data_pipeline/teacher.py), and every round of every shard samples with seeds of
its own (issue 29).

The model is the scripted one (tests/helpers/scripted_model.py: a real Qwen2 folder answering
\\boxed{7} with probability p, else \\boxed{8}) on the transformers backend, scored by the real
math_correctness reward. The seed test drives the real vLLM backend code (VLLMGenerator.generate
and vllm_sampling, behind sampling/data_parallel.py's slicing) with a test double for the vLLM
engine itself: importing vLLM costs ~25 s here, so the engine's fan-out of a request's n samples
(child i seeded seed + i) is written out in the double and checked against the installed vLLM's
source text instead."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pytest

from ssp.core.corpus import iter_jsonl
from ssp.core.errors import DataError
from ssp.data_pipeline import build as build_mod
from ssp.data_pipeline.teacher import SHARD_SEED_STRIDE, call_span, sample_shards, sampled_rows, shard_seeds
from ssp.reward.config import make_reward
from ssp.sampling.generation import GenerationConfig, HFGenerator, SamplingParams

from .helpers.scripted_model import build_scripted_model

ROWS = [
    {"id": f"p{i}", "domain": "algebra", "problem": f"Problem {i}.", "answer": "7", "source": "s"}
    for i in range(4)
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_scripted_model(tmp_path_factory.mktemp("teacher") / "m", p=0.5)


@pytest.fixture(scope="module")
def reward():
    r = make_reward("math_correctness", {"workers": 1}, "test")
    yield r
    r.close()


def _teach(root: Path, teacher: Path, samples: Path, rows: list[dict]) -> list[dict]:
    """The data stage's teacher step (build._teach) on ``rows`` in a run folder of its own, with a
    samples folder shared between runs; returns the SFT rows it wrote."""
    plan = build_mod.Plan(
        sources=[],
        options=build_mod.BuildOptions(),
        domains=["algebra"],
        sizes={},
        sft_cap=0,
        seed=0,
        benchmarks={},
        teacher=build_mod.TeacherOptions(
            model=str(teacher),
            n_samples=8,
            max_new_tokens=8,
            shard_size=2,
            samples_dir=str(samples),
            reward_options={"workers": 1},  # one grading process: starts in half the time
        ),
        generation=GenerationConfig(backend="hf"),
    )
    data = root / "data"
    (data / "build" / "dropped").mkdir(parents=True)
    problems = data / "sft_problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_mod._teach(plan, data / "build", {"sft_problems": problems})
    return list(iter_jsonl(data / "sft.jsonl"))


@pytest.mark.slow
def test_a_corrected_row_is_sampled_and_verified_again_and_unchanged_rows_are_reused(
    tmp_path, teacher, monkeypatch
):
    import ssp.sampling.data_parallel as dp

    opened = []
    real = dp.make_generator
    monkeypatch.setattr(dp, "make_generator", lambda *a, **k: opened.append(1) or real(*a, **k))
    samples = tmp_path / "samples"
    first = _teach(tmp_path / "run1", teacher, samples, ROWS)
    assert len(opened) == 1 and first and all(r["solutions"] == ["\\boxed{7}"] for r in first)

    # the source corrected since: p1's answer 7 -> 8 and its text edited
    corrected = [dict(r) for r in ROWS]
    corrected[1].update(problem="Problem 1, corrected.", answer="8")
    second = _teach(tmp_path / "run2", teacher, samples, corrected)
    assert len(opened) == 2  # sampled again, not served from the first run's shards
    by_id = {r["id"]: r for r in second}
    assert by_id["p1"]["problem"] == "Problem 1, corrected." and by_id["p1"]["answer"] == "8"
    assert by_id["p1"]["solutions"] == ["\\boxed{8}"]  # verified against the new answer
    assert all(r["solutions"] == ["\\boxed{7}"] for r in second if r["id"] != "p1")
    shards = sorted(samples.glob("teacher/*/shard-*.jsonl"))
    stored = {r["id"]: r for p in shards for r in iter_jsonl(p) if r["answer"] == "8"}
    assert [s["score"] for s in stored["p1"]["samples"]] == [
        1.0 if s["text"].strip() == "\\boxed{8}" else 0.0 for s in stored["p1"]["samples"]
    ]
    plans = [json.loads(p.read_text()) for p in samples.glob("teacher/*/plan.json")]
    assert len(plans) == 2 and all(p["made_from"]["teacher"]["files"] for p in plans)
    assert {p["made_from"]["reward"]["name"] for p in plans} == {"math_correctness"}

    # the same rows again: every shard reused, no generator opened
    monkeypatch.setattr(dp, "make_generator", lambda *a, **k: pytest.fail("opened a generator"))
    assert _teach(tmp_path / "run3", teacher, samples, corrected) == second


class Counting(HFGenerator):
    calls = 0

    def generate(self, *args, **kwargs):
        Counting.calls += 1
        return super().generate(*args, **kwargs)


@pytest.mark.slow
def test_new_weights_other_reward_options_or_an_unstamped_folder_sample_again(tmp_path, reward):
    model = build_scripted_model(tmp_path / "model", p=0.6)
    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    spec = {"name": "math_correctness", "options": {}}

    def run(folder, shared=True, **kw):
        Counting.calls = 0
        kw = {"reward_spec": spec, **kw}
        paths = sample_shards(
            ROWS, folder, lambda: Counting(model), reward, params, 4, str(model), **kw, shared=shared
        )
        return paths, Counting.calls

    shared = tmp_path / "samples"
    first, calls = run(shared)
    assert calls == 1 and run(shared) == (first, 0)
    build_scripted_model(model, p=0.3)  # new weights in the same folder: another teacher
    again, calls = run(shared)
    assert calls == 1 and again[0].parent != first[0].parent
    _, calls = run(shared, reward_spec={"name": "math_correctness", "options": {"grader": "deepscaler"}})
    assert calls == 1

    # a folder sampled by an older ssp (plan.json without a made-from record) is never reused
    own = tmp_path / "own"
    paths, _ = run(own, shared=False)
    (own / "plan.json").write_text(json.dumps({"plan": "0123456789abcdef"}))
    before = [p.stat().st_mtime_ns for p in paths]
    assert run(own, shared=False)[1] == 1 and [p.stat().st_mtime_ns for p in paths] != before
    assert json.loads((own / "plan.json").read_text())["made_from"]["problems"]


def test_sampled_rows_hands_out_the_current_rows_and_refuses_stale_shards(tmp_path):
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_text("".join(json.dumps({**r, "samples": [{"text": "x"}]}) + "\n" for r in ROWS))
    got = list(sampled_rows([shard], ROWS))
    assert [r for r, _ in got] == ROWS and all(s == [{"text": "x"}] for _, s in got)
    current = [dict(r) for r in ROWS]
    current[2]["answer"] = "8"
    with pytest.raises(DataError, match=r"shard-00000.jsonl: line 3: samples of problem 'p2' as it was"):
        list(sampled_rows([shard], current))
    with pytest.raises(DataError, match=r"no samples of problem 'p9'"):
        list(sampled_rows([shard], [*ROWS, {**ROWS[0], "id": "p9"}]))


# --- seeds ---------------------------------------------------------------------------------------


@dataclass
class _Out:
    text: str
    token_ids: list
    finish_reason: str


class _FakeVLLMParams:
    """vllm.SamplingParams' constructor, as sampling/generation_vllm.vllm_sampling calls it."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Tokenizer:
    def apply_chat_template(self, chat, tokenize, add_generation_prompt):
        return chat[-1]["content"]

    def __call__(self, text, add_special_tokens):
        return {"input_ids": list(text.encode())}


class _RecordingEngine:
    """The vLLM engine: fans each request out into its n samples, child i seeded ``seed + i``
    (vllm/v1/engine/parallel_sampling.py: ParentRequest._get_child_sampling_params), records
    (prompt, seed) of every sample, and answers each one wrong."""

    def __init__(self):
        self.seeds: list[tuple[tuple, int]] = []

    def generate(self, prompts, sampling, use_tqdm):
        outs = []
        for prompt, sp in zip(prompts, sampling, strict=True):
            assert sp.seed is not None  # on GPU every request carries its seed
            self.seeds += [(tuple(prompt["prompt_token_ids"]), sp.seed + i) for i in range(sp.n)]
            outs.append(types.SimpleNamespace(outputs=[_Out("\\boxed{0}", [1], "stop")] * sp.n))
        return outs


def test_child_seeds_are_seed_plus_index_in_the_installed_vllm():
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it (~25 s)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vllm is not installed")
    source = Path(spec.submodule_search_locations[0]) / "v1" / "engine" / "parallel_sampling.py"
    assert "child_sampling_params.seed = seed + index" in source.read_text()


def test_every_round_of_every_shard_samples_with_seeds_of_its_own(tmp_path, monkeypatch):
    """The seeds the vLLM engine gives each sample (GPU path: seeded requests), across teacher
    shards, adaptive rounds and sampling/data_parallel.py's slices of a call: no two calls share a
    seed, no prompt sees a seed twice, and round 0 keeps its seeds (seed + 7919 k)."""
    import ssp.sampling.generation as generation
    import ssp.sampling.generation_vllm as generation_vllm
    from ssp.sampling.data_parallel import make_generator

    engine = _RecordingEngine()

    class RecordingVLLM(generation_vllm.VLLMGenerator):
        def __init__(self, model_dir, cfg):
            self.cfg, self.model_dir, self.llm, self.last_too_long = cfg, str(model_dir), engine, []
            self.tokenizer, self.max_model_len = _Tokenizer(), 1 << 20

        def close(self):
            pass

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = _FakeVLLMParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.setattr(
        generation_vllm, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: True))
    )
    monkeypatch.setattr(sys.modules[__name__], "RecordingVLLM", RecordingVLLM, raising=False)
    monkeypatch.setitem(generation.BACKENDS, "vllm", f"{__name__}:RecordingVLLM")

    calls: dict[str, set[int]] = {}

    class PerCall:
        """Marks which teacher call (shard, round) the engine's seeds belong to."""

        def __init__(self):
            self.inner = make_generator("teacher", GenerationConfig(backend="vllm", shard_prompts=3))

        def generate(self, prompts, params, desc):
            start = len(engine.seeds)
            out = self.inner.generate(prompts, params, desc=desc)
            calls[desc] = {s for _, s in engine.seeds[start:]}
            return out

        def close(self):
            self.inner.close()

    rows = [{"id": f"p{i}", "problem": f"Problem {i}.", "answer": "7"} for i in range(10)]
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=11)
    never = lambda completions, **_: [0.0] * len(completions)  # noqa: E731 - every row gets round 1
    paths = sample_shards(rows, tmp_path, PerCall, never, params, 4, "t", "", 7)
    assert sum(len(r["samples"]) for p in paths for r in iter_jsonl(p)) == 10 * 7
    assert len(calls) == 6  # 3 shards x 2 rounds
    for (a, sa), (b, sb) in combinations(calls.items(), 2):
        assert not sa & sb, f"{a} and {b} share seeds {sorted(sa & sb)}"
    per_prompt: dict[tuple, list[int]] = {}
    for prompt, seed in engine.seeds:
        per_prompt.setdefault(prompt, []).append(seed)
    assert len(per_prompt) == 10 and all(len(set(s)) == len(s) == 7 for s in per_prompt.values())
    for k in range(3):  # round 0 as before: shard k starts at seed + 7919 k
        assert min(calls[f"teacher shard {k + 1}/3"]) == 11 + SHARD_SEED_STRIDE * k

    # the arithmetic for large settings: every round's range of every shard apart
    for shard_size, n, most in ((256, 8, 64), (4096, 5000, 20000), (1, 1, 0), (8000, 16, 0)):
        ranges = []
        for k in range(4):
            r0, r1 = shard_seeds(0, k, shard_size, n, most)
            ranges.append(range(r0, r0 + call_span(shard_size, n)))
            if most > n:
                ranges.append(range(r1, r1 + call_span(shard_size, most - n)))
        for a, b in combinations(ranges, 2):
            assert a.stop <= b.start or b.stop <= a.start, (shard_size, n, most, a, b)
