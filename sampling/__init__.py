"""Sampling models and scoring the samples: generation backends (transformers, vLLM), the
correctness-scored sampler, Pass@k, the greedy check. Probe, merge, RL, eval and the corpus
builder sample only through this package; it imports no stage."""
