"""Recipe schema of the `eval` stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssp.core.errors import check
from ssp.evaluation.benchmarks import BENCHMARKS

MODEL_ALIASES = {"base": "data", "sft": "sft", "spectrum": "merge", "signal": "rl"}
"""Model names the eval stage resolves from the run (alias -> stage that produces the model);
'base' is the starting model (model.name_or_path, or the tiny model the data stage built)."""


@dataclass
class BenchmarkSpec:
    """One benchmark of the eval stage. Unset sampling fields take the benchmark's protocol default."""

    name: str = "tiny_heldout"
    """Registry name: aime24, aime25, hmmt25, math500, gpqa_diamond, lcb_v5, lcb_v6, tiny_heldout, tiny_code."""
    source: str = ""
    """A local .jsonl/.json/.parquet file or folder of them, or a hub dataset id; empty = the registry's
    hub dataset (tiny_heldout: the data stage's held-out set). Hub ids need network access."""
    subset: str = ""
    """Hub dataset configuration (e.g. gpqa_diamond); empty = the registry's."""
    split: str = ""
    """Hub split; empty = the registry's."""
    limit: int = 0
    """Evaluate only the first N problems (0 = all): for smoke runs, never for reported numbers."""
    n_samples: int = 0
    """Samples per problem; 0 = the protocol's (math 64, GPQA 16, LiveCodeBench 8)."""
    temperature: float | None = None
    """None = the protocol's (math and GPQA 1.0, LiveCodeBench 0.6)."""
    top_p: float | None = None
    """None = the protocol's (0.95)."""
    max_new_tokens: int = 0
    """0 = the protocol's (40960, the report's 40K)."""
    prompt_suffix: str | None = None
    """Appended to every problem; None = the protocol's (math: "Let's think step by step and output
    the final answer within \\boxed{}.")."""
    k: list[int] = field(default_factory=list)
    """The k of every Pass@k; empty = the protocol's (k <= n_samples are kept)."""
    reward_options: dict[str, Any] = field(default_factory=dict)
    """Options of the benchmark's reward over the registry's, e.g. {timeout: 30} for math or
    {sandbox: unsafe} for LiveCodeBench on a machine without bubblewrap (docs/security.md)."""

    def __post_init__(self):
        check(
            self,
            "name",
            self.name in BENCHMARKS,
            f"unknown benchmark {self.name!r}; known: {sorted(BENCHMARKS)}",
        )
        check(self, "limit", self.limit >= 0, "must be >= 0")
        check(self, "n_samples", self.n_samples >= 0, "must be >= 0 (0 = the protocol's)")
        check(self, "max_new_tokens", self.max_new_tokens >= 0, "must be >= 0 (0 = the protocol's)")
        check(self, "temperature", self.temperature is None or self.temperature >= 0, "must be >= 0")
        check(self, "top_p", self.top_p is None or 0 < self.top_p <= 1, "must be in (0, 1]")
        check(self, "k", all(k >= 1 for k in self.k), f"must be positive integers, got {self.k}")


@dataclass
class EvalConfig:
    """Benchmark evaluation under the report's protocol; several models give one comparison table."""

    models: list[str] = field(default_factory=lambda: ["base", "spectrum", "signal"])
    """Models to compare: base, sft (last SFT checkpoint), spectrum (merged), signal (after RL), or
    model folders / hub ids."""
    benchmarks: list[BenchmarkSpec] = field(default_factory=lambda: [BenchmarkSpec()])
    """Benchmarks, each with its data source and any departure from its protocol."""
    batch_size: int = 64
    """Sequences per transformers generate call (generation.backend: hf)."""
    seed: int = 0
    """Sampling seed (the same for every model)."""
    save_completions: bool = True
    """Write every sampled completion with its score to eval/completions/<model>__<benchmark>.parquet."""
    graders: list[str] = field(default_factory=list)
    """Also grade every math sample with these graders (ssp, deepscaler, qwen25math: reward/graders.py)
    and tabulate Pass@1 per grader and how many samples each pair disagrees on (results.md)."""

    def __post_init__(self):
        check(self, "models", bool(self.models), "needs at least one model")
        check(self, "models", len(set(self.models)) == len(self.models), f"duplicates in {self.models}")
        check(self, "benchmarks", bool(self.benchmarks), "needs at least one benchmark")
        names = [b.name for b in self.benchmarks]
        check(self, "benchmarks", len(set(names)) == len(names), f"a benchmark is listed twice: {names}")
        check(self, "batch_size", self.batch_size > 0, "must be > 0")
        from ssp.reward.graders import GRADERS

        unknown = [g for g in self.graders if g not in GRADERS]
        check(self, "graders", not unknown, f"unknown grader(s) {unknown}; known: {', '.join(GRADERS)}")
