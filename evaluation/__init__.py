"""Benchmark evaluation: the registry, the report's protocol, metrics, and the eval stage."""
