"""Recipe schema of the training stages: the starting model, `sft`, `probe`, `merge` and `rl`."""

from dataclasses import dataclass, field
from typing import Any, Union

from ssp.core.errors import check, check_count_or_auto, check_positive
from ssp.reward.config import RewardSpec
from ssp.sampling.generation import SamplingSettings


def check_nproc(cfg) -> None:
    check_count_or_auto(cfg, "nproc_per_node")


@dataclass
class ModelConfig:
    """The model SFT starts from."""

    name_or_path: str = "tiny"
    """'tiny': the model the data stage builds for the tiny task. Otherwise a local folder or a hub id
    (e.g. Qwen/Qwen2.5-Math-1.5B); hub ids need network access at run time."""
    dtype: str = "auto"
    """Weights' dtype when loading: 'auto' (bfloat16 on a bf16-capable GPU, float32 on CPU), 'bfloat16', 'float32'."""
    attn_implementation: str = "sdpa"
    """'sdpa' works everywhere; 'flash_attention_2' on GPUs with flash-attn installed."""
    rope_theta: float | None = None
    """Context extension: the RoPE base written into the model's config before SFT (None = the
    model's own; Qwen2.5-Math-1.5B has 10,000). Carried by every checkpoint into probe, merge, RL and
    eval (docs/sft.md: long traces)."""
    max_position_embeddings: int | None = None
    """Context extension: the position limit written into the model's config (None = the model's own;
    Qwen2.5-Math-1.5B allows 4,096). vLLM engines take their default context from it."""
    rope_scaling: dict[str, Any] = field(default_factory=dict)
    """Context extension by RoPE scaling, transformers' rope_parameters besides rope_theta, e.g.
    {rope_type: yarn, factor: 4.0, original_max_position_embeddings: 4096}; empty = none."""

    def __post_init__(self):
        check(self, "name_or_path", bool(self.name_or_path), "must not be empty")
        check(
            self,
            "dtype",
            self.dtype in ("auto", "bfloat16", "float32", "float16"),
            f"must be auto, bfloat16, float16 or float32, got {self.dtype!r}",
        )
        check(self, "rope_theta", self.rope_theta is None or self.rope_theta > 0, "must be > 0 or null")
        check(
            self,
            "max_position_embeddings",
            self.max_position_embeddings is None or self.max_position_embeddings > 0,
            "must be > 0 or null",
        )
        check(
            self,
            "rope_scaling",
            not self.rope_scaling or "rope_type" in self.rope_scaling,
            f"needs a rope_type (linear, dynamic, yarn, longrope, llama3), got {dict(self.rope_scaling)}",
        )

    def context_extension(self) -> dict[str, Any]:
        """The keyword arguments of train/context_length.py's functions."""
        return {
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_scaling": dict(self.rope_scaling),
        }


@dataclass
class LoraConfig:
    """LoRA through peft: train low-rank adapters instead of every weight."""

    enabled: bool = False
    """False = full fine-tuning."""
    r: int = 64
    """Rank of each adapter."""
    alpha: int = 128
    """Scale numerator: the update is (alpha / r) * B A."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Modules that get adapters: peft names (q_proj, v_proj, ...) or 'all-linear' (every linear layer
    but the output head)."""

    def __post_init__(self):
        check_positive(self, "r", "alpha")
        check(self, "dropout", 0 <= self.dropout < 1, f"must be in [0, 1), got {self.dropout}")
        check(self, "target_modules", bool(self.target_modules), "must name at least one module")

    def peft_config(self):
        """The peft LoraConfig, or None when LoRA is off."""
        if not self.enabled:
            return None
        import peft

        targets = list(self.target_modules)
        return peft.LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets[0] if targets == ["all-linear"] else targets,
            task_type="CAUSAL_LM",
        )


@dataclass
class SFTStageConfig:
    """Supervised fine-tuning on the multi-solution corpus (TRL SFTTrainer).

    Loss is next-token cross-entropy on the assistant turn only (prompt tokens are masked)."""

    nproc_per_node: Union[int, str] = 1  # noqa: UP007 - OmegaConf reads typing.Union, not int | str
    """Processes `ssp run` starts with torchrun: one per GPU, or 'auto' = every visible GPU (1 on a CPU).
    More than the visible GPUs fails before launch."""
    max_length: int = 256
    """Longest tokenised example. Longer examples are dropped with a count in the log, never silently cut
    (TRL's own default truncates at 1024)."""
    num_train_epochs: float = 3.0
    """Epochs over the expanded corpus (one example per problem and solution)."""
    max_steps: int = -1
    """If > 0, overrides num_train_epochs."""
    per_device_train_batch_size: int = 32
    """Micro-batch per process."""
    gradient_accumulation_steps: int = 1
    """Global batch = per_device_train_batch_size x gradient_accumulation_steps x processes."""
    learning_rate: float = 1e-3
    """Peak learning rate (the 3B report: 5e-5 for a pretrained model; the tiny model starts from random weights)."""
    lr_scheduler_type: str = "cosine"
    """Schedule after warmup (transformers names)."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up (the 3B report: 5%)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    save_every: int = 50
    """Save a checkpoint every this many optimizer steps; all are kept because probing scores each one.
    The final step is always saved."""
    logging_steps: int = 10
    """Log loss and learning rate every this many steps."""
    bf16: bool | None = None
    """Mixed precision. None = on where a CUDA GPU supports bf16, off on CPU."""
    deepspeed: str | None = None
    """Path to a DeepSpeed JSON config (recipes/deepspeed/zero2.json, zero3.json); on CPU too (gloo: the
    tests run ZeRO-2 and ZeRO-3 with 2 processes), where it only shows that the path works."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on long sequences (docs/sft.md has the measured cost)."""
    padding_free: bool = False
    """Each micro-batch as one row without padding tokens; position ids mark where examples start and
    attention stays inside each example (exact: flash attention's varlen kernel, or a block mask with
    sdpa). Same examples per step as padded batches."""
    packing: bool = False
    """Pack examples into max_length rows (TRL 'bfd', padding-free, attention inside each example).
    Fewer, fuller rows: steps then count rows, not examples."""
    group_by_length: bool = False
    """Draw micro-batches of similar lengths (transformers' LengthGroupedSampler): less padding, a
    less random data order."""
    torch_compile: bool = False
    """torch.compile the model (transformers' torch_compile)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters instead of full fine-tuning; checkpoints are then adapter folders, merged into
    their base where probe, merge and eval sample or fuse them."""
    trl: dict[str, Any] = field(default_factory=dict)
    """Other SFTConfig options under their TRL names (activation_offloading, optim, ...); they win
    over the keys above."""
    seed: int = 42
    """Seed of training randomness (data order, dropout). The tiny model's initial weights follow data.seed."""
    eval_max_new_tokens: int = 96
    """Greedy held-out check at the end of the stage: tokens generated per problem."""
    eval_batch_size: int = 64
    """Greedy held-out check: prompts per generate call."""
    eval_limit: int = 0
    """Greedy held-out check: at most this many problems (0 = the whole eval set)."""
    eval_base: bool = True
    """Also measure the starting model's greedy held-out accuracy, for the before/after comparison."""

    def __post_init__(self):
        check_nproc(self)
        check(self, "max_length", self.max_length > 0, f"must be > 0, got {self.max_length}")
        check(self, "learning_rate", self.learning_rate > 0, f"must be > 0, got {self.learning_rate}")
        check(self, "warmup_ratio", 0 <= self.warmup_ratio < 1, f"must be in [0, 1), got {self.warmup_ratio}")
        check(self, "save_every", self.save_every > 0, f"must be > 0, got {self.save_every}")
        check(
            self,
            "num_train_epochs",
            self.num_train_epochs > 0 or self.max_steps > 0,
            "must be > 0 unless max_steps > 0",
        )
        check_positive(
            self,
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "eval_max_new_tokens",
            "eval_batch_size",
        )
        check(self, "eval_limit", self.eval_limit >= 0, "must be >= 0")


@dataclass
class ProbeConfig(SamplingSettings):
    """Domain-aware diversity probing: Pass@k of each SFT checkpoint on each subdomain's probing set.
    Its sampling settings (n_samples, temperature, top_p, top_k, max_new_tokens) are
    ``sampling/generation.SamplingSettings``; the probe samples at most 96 new tokens by default
    (the tiny task's answers)."""

    enabled: bool = True
    """False = the diversity ablation: no probing, the last SFT checkpoint is the spectrum model."""
    every: int = 1
    """Probe every m-th checkpoint, counted back from the last one (which is always probed)."""
    domains: list[str] = field(default_factory=list)
    """Subdomains to probe; empty = every domain of the data stage."""
    k: list[int] = field(default_factory=lambda: [1, 4, 8])
    """The k of every Pass@k computed (Pass@1 is always added)."""
    metric: str = "pass@k"
    """Specialist selection: 'pass@k' (the report's choice, k = select_k) or 'pass@1' (the ablation)."""
    select_k: int = 0
    """The K of Pass@K used for selection; 0 = max(k)."""
    max_new_tokens: int = 96
    """Longest completion sampled (a SamplingSettings default of the probe's own)."""
    batch_size: int = 256
    """Sequences per transformers generate call (generation.backend: hf)."""
    seed: int = 0
    """Sampling seed (the same for every checkpoint, so checkpoints are compared on equal terms)."""
    reward: RewardSpec = field(default_factory=lambda: RewardSpec(name="math_correctness", correctness=True))
    """The binary correctness reward a sample is scored with."""
    save_completions: bool = True
    """Keep every sample with its score and status in probe/completions/<checkpoint>.parquet."""

    def __post_init__(self):
        super().__post_init__()
        check(self, "every", self.every >= 1, f"must be >= 1, got {self.every}")
        check(
            self,
            "k",
            bool(self.k) and all(k >= 1 for k in self.k),
            f"must be positive integers, got {self.k}",
        )
        check(self, "n_samples", self.n_samples >= max(self.k), f"must be >= max(k) = {max(self.k)}")
        check(
            self,
            "metric",
            self.metric in ("pass@k", "pass@1"),
            f"must be 'pass@k' or 'pass@1', got {self.metric!r}",
        )
        check(
            self, "select_k", self.select_k == 0 or self.select_k in self.k, f"must be 0 or one of k={self.k}"
        )

    @property
    def selection_key(self) -> str:
        return "pass@1" if self.metric == "pass@1" else f"pass@{self.select_k or max(self.k)}"


@dataclass
class MergeConfig:
    """Expert fusion: a weighted parameter average of the per-domain specialists."""

    weights: dict[str, float] = field(default_factory=dict)
    """Weight per domain; empty = uniform 1/N (the report). A checkpoint chosen by several domains
    gets the sum of their weights."""
    normalize: bool = False
    """Rescale weights to sum to 1. Without it, weights that do not sum to 1 are an error."""
    eval_heldout: bool = True
    """Sample the held-out eval set with the merged model and the last SFT checkpoint (probe's
    sampling settings) and report Pass@1 and Pass@k side by side."""

    def __post_init__(self):
        bad = {d: w for d, w in self.weights.items() if w < 0}
        check(self, "weights", not bad, f"must be >= 0, got {bad}")


def _default_rewards() -> list[RewardSpec]:
    return [RewardSpec(name="math_correctness", weight=1.0, correctness=True)]


@dataclass
class RLPhase:
    """One phase of the RL curriculum; it starts from the previous phase's final model."""

    name: str = "math"
    """Folder name of the phase under rl/."""
    prompts: str = "rl"
    """'rl' = the data stage's RL prompt set; otherwise a JSONL/Parquet file (id, domain, problem, answer, ...)."""
    domains: list[str] = field(default_factory=list)
    """Only the prompts of these domains (the report's curriculum: math phases, then a code phase on
    the same prompt set); empty = every prompt."""
    rewards: list[RewardSpec] = field(default_factory=_default_rewards)
    """Reward functions with weights; exactly one should set correctness: true (MGPO's p_c)."""
    max_completion_length: int = 96
    """Longest completion sampled (the reference run: 16K, then 32K tokens)."""
    num_generations: int = 8
    """G: completions per prompt."""
    temperature: float = 1.0
    """Rollout temperature."""
    learning_rate: float = 1e-5
    """Peak learning rate of the phase."""
    max_steps: int = 50
    """Optimizer steps of the phase."""
    per_device_train_batch_size: int = 16
    """Completions per process per step (a multiple of num_generations / processes)."""
    filter_solved: bool = False
    """Drop prompts whose pass rate at the phase's starting model is exactly 0 or 1 (the 3B report)."""
    dynamic_sampling: bool = False
    """Dynamic sampling (DAPO; verl's filter_groups): every step drops groups whose correctness rewards are
    all equal (zero advantage) and samples fresh prompts of the phase's set until the batch holds only
    groups with a signal, or max_refills extra rounds were drawn (train/dynamic_sampling.py)."""
    max_refills: int = 4
    """Dynamic sampling: extra generation rounds per step at most, each as large as the step's batch. If
    the batch is still short, dropped groups fill it with their loss masked out, and the step is counted."""
    trl: dict[str, Any] = field(default_factory=dict)
    """GRPOConfig options passed through under their TRL names (loss_type, scale_rewards, epsilon,
    epsilon_high, beta, num_iterations, ...)."""

    def __post_init__(self):
        check(
            self,
            "name",
            bool(self.name) and "/" not in self.name,
            f"must be a folder name, got {self.name!r}",
        )
        check(self, "num_generations", self.num_generations >= 2, "must be >= 2 (group statistics)")
        check(self, "max_steps", self.max_steps > 0, "must be > 0")
        check(self, "max_refills", self.max_refills >= 0, f"must be >= 0, got {self.max_refills}")
        local = self.per_device_train_batch_size * int(
            self.trl.get("steps_per_generation") or self.trl.get("gradient_accumulation_steps") or 1
        )
        check(
            self,
            "per_device_train_batch_size",
            not self.dynamic_sampling or local % self.num_generations == 0,
            f"with dynamic_sampling every process must generate whole groups: {local} completions per "
            f"generation (per_device_train_batch_size x trl steps_per_generation or gradient_accumulation_steps) "
            f"is not a multiple of num_generations ({self.num_generations})",
        )
        check(
            self,
            "rewards",
            sum(r.correctness for r in self.rewards) == 1,
            "exactly one reward must set correctness: true (MGPO's p_c comes from it)",
        )


@dataclass
class RolloutConfig:
    """How RL samples its rollouts: transformers generate in the trainer, or vLLM (TRL's use_vllm)."""

    engine: str = "hf"
    """'vllm' (TRL use_vllm) or 'hf' (transformers generate inside the trainer)."""
    vllm_mode: str = "colocate"
    """'colocate': a vLLM engine inside every training process, sharing its GPU (and on CPU, its RAM);
    'server': a separate `trl vllm-serve` on other GPUs or nodes (GPU only: weights go over NCCL)."""
    gpu_memory_utilization: float = 0.3
    """colocate: the engine's share of each GPU; the rest is left to training."""
    enable_sleep_mode: bool = False
    """colocate: release the engine's weights and KV cache while the training step runs (GPU)."""
    tensor_parallel_size: int = 1
    """colocate: GPUs one engine spans."""
    max_model_length: int | None = None
    """Engine context (prompt + completion); None = TRL's default."""
    server_base_url: str = ""
    """server: e.g. http://node7:8000; empty = server_host:server_port."""
    server_host: str = "0.0.0.0"
    """server: host of `trl vllm-serve`."""
    server_port: int = 8000
    """server: its port."""
    server_timeout: float = 240.0
    """server: seconds to wait for it to come up; with server_gpus, also the longest it may leave
    /health unanswered while training (then it is killed and the stage stops, naming it)."""
    server_gpus: int = 0
    """server: the rl stage starts `trl vllm-serve` itself on the last server_gpus visible GPUs of the
    node (tensor parallel over them), waits for its health, trains on the other GPUs and stops the
    server when the stage ends or fails (single-node jobs; docs/cluster.md). 0 = a server you
    started yourself, at server_base_url or server_host:server_port."""
    sync_check_every: int = 10
    """vllm: at each phase's first step and every this many steps, a fixed prompt is sampled by the
    engine and scored by the trainer; the stage stops if they disagree (stale weights, another
    model on the server). 0 = never (train/rollout_mismatch.py)."""
    sync_check_tolerance: float = 0.1
    """vllm: largest mean |engine - trainer| log-probability per token (nats) the check accepts; a bf16
    engine on its own differs from an fp32 trainer by ~0.01-0.05."""

    def __post_init__(self):
        check(self, "engine", self.engine in ("hf", "vllm"), f"must be hf or vllm, got {self.engine!r}")
        check(
            self,
            "vllm_mode",
            self.vllm_mode in ("colocate", "server"),
            f"must be colocate or server, got {self.vllm_mode!r}",
        )
        check(self, "gpu_memory_utilization", 0 < self.gpu_memory_utilization <= 1, "must be in (0, 1]")
        check(self, "server_gpus", self.server_gpus >= 0, "must be >= 0 (0 = a server started separately)")
        check(self, "sync_check_every", self.sync_check_every >= 0, "must be >= 0 (0 = never)")
        check(self, "sync_check_tolerance", self.sync_check_tolerance > 0, "must be > 0")
        check(
            self,
            "server_gpus",
            not self.server_gpus or (self.engine == "vllm" and self.vllm_mode == "server"),
            "starts a vLLM server: set engine: vllm and vllm_mode: server too",
        )
        check(
            self,
            "server_base_url",
            not (self.server_gpus and self.server_base_url),
            "with server_gpus the stage starts the server on this node (server_port): leave server_base_url empty",
        )

    def trl_options(self) -> dict[str, Any]:
        """The GRPOConfig options under TRL's names."""
        if self.engine != "vllm":
            return {"use_vllm": False}
        opts: dict[str, Any] = {
            "use_vllm": True,
            "vllm_mode": self.vllm_mode,
            "weight_sync_check_every": self.sync_check_every,
            "weight_sync_tolerance": self.sync_check_tolerance,
        }
        if self.max_model_length:
            opts["vllm_max_model_length"] = self.max_model_length
        if self.vllm_mode == "colocate":
            return {
                **opts,
                "vllm_gpu_memory_utilization": self.gpu_memory_utilization,
                "vllm_enable_sleep_mode": self.enable_sleep_mode,
                "vllm_tensor_parallel_size": self.tensor_parallel_size,
            }
        return {
            **opts,
            "vllm_server_base_url": self.server_base_url or None,
            "vllm_server_host": self.server_host,
            "vllm_server_port": self.server_port,
            "vllm_server_timeout": self.server_timeout,
        }


@dataclass
class RLConfig:
    """The "signal" phase: MGPO (GRPO with max-entropy-deviation weighting) over a curriculum of phases."""

    lam: float = 4.0
    """lambda of w = exp(-lambda KL(Ber(p_c) || Ber(p_0))); 0 = plain GRPO (not published; a public
    re-implementation uses 4.0)."""
    p0: float = 0.5
    """p_0 of the max-entropy weight."""
    nproc_per_node: Union[int, str] = 1  # noqa: UP007
    """Processes torchrun starts for each phase: one per GPU, or 'auto' = every visible GPU (1 on a CPU)."""
    save_every: int = 25
    """Checkpoint interval of each phase (resume picks the last complete one)."""
    seed: int = 0
    """Seed of rollouts and data order."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (TRL's default for GRPO: long rollouts); false is
    faster where memory allows (the tiny demo)."""
    phases: list[RLPhase] = field(default_factory=lambda: [RLPhase()])
    """The curriculum, in order (the reference run: math 16K, math 32K, code)."""
    eval_heldout: bool = True
    """Sample the held-out set with the spectrum model and the final RL model (probe's sampling settings)."""
    heldout_every: int = 0
    """The held-out curve: every this many steps of a phase (and at its start), Pass@1 of the policy being
    trained on the held-out set, in the log, W&B (heldout/pass@1) and the report; 0 = off."""
    heldout_problems: int = 0
    """The curve's problems: this many of the held-out set, taken in turn from each domain, the same at
    every point (0 = all)."""
    heldout_samples: int = 2
    """The curve's samples per problem (probe's temperature, top_p and length)."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """The rollout engine of every phase (a phase's `trl` options can still override TRL's vllm_* keys)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters on the phase's starting model; each phase ends with the adapter merged into a full
    model (the next phase's start and the eval stage's signal model)."""

    def __post_init__(self):
        check_nproc(self)
        check(self, "lam", self.lam >= 0, f"must be >= 0, got {self.lam}")
        check(self, "p0", 0 < self.p0 < 1, f"must be in (0, 1), got {self.p0}")
        check(self, "phases", len(self.phases) > 0, "needs at least one phase")
        check(self, "heldout_every", self.heldout_every >= 0, "must be >= 0 (0 = no curve)")
        check(self, "heldout_problems", self.heldout_problems >= 0, "must be >= 0 (0 = all)")
        check(self, "heldout_samples", self.heldout_samples >= 1, "must be >= 1")
        names = [p.name for p in self.phases]
        check(self, "phases", len(set(names)) == len(names), f"phase names must be unique, got {names}")
