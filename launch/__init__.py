"""Launching the SSP pipeline: recipes, the stage runner, the manifest and the `ssp` CLI."""
