"""Verifier rewards. This package starts with the answer check the SFT stage needs; the full
reward registry (process-level timeouts, sandboxed code tests) builds on it."""
