"""Training machinery the stages use: the MGPO trainer, atomic checkpoints, expert fusion,
cost telemetry callbacks and device settings."""
