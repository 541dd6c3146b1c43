"""The checkpoint folder and its files: names, shards, state dicts, LoRA."""
