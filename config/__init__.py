"""The recipe: one typed tree of every stage's settings, loaded from YAML plus overrides.

Sections read by a library live with it (``sampling.generation.GenerationConfig``,
``reward.config.RewardSpec``, ``core.cost.CostConfig``, ``data_pipeline.tiny.model.TinyModelConfig``);
sections read only by a stage live here."""
