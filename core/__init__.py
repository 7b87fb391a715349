"""Ground floor: what every other package shares; it imports nothing of the project.

Errors, atomic writes, the run manifest, the stage context, cost accounting, the corpus file
format (rows and chat prompts), model-folder checks, markdown tables, process ties.
"""
