"""The built-in tiny task: seeded math problems, a locally trained tokenizer, a tiny Qwen2 model."""
