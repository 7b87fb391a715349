"""Data pipeline: the built-in tiny task and the multi-solution SFT corpus format."""
