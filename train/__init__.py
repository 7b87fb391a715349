"""Training stages: SFT (this package), later probing, merging and MGPO RL."""
