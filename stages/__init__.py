"""The pipeline's stages, one file each: ``run(recipe, ctx) -> StageResult`` and nothing else
runs them (``launch/runner.py`` does, by the names in ``launch/stages.py``)."""
