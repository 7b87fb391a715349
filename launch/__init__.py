"""Launching the pipeline (the top floor): the `ssp` CLI, the stage runner and its stage table,
the torchrun worker entry point, preflight checks, doctor, W&B tracking and the run report."""
