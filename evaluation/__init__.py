"""Benchmark evaluation: the registry of public benchmarks and the report's protocol, metrics
(Pass@k, cons@n, failure rates), and ``evaluate`` (many models x benchmarks, one table)."""
