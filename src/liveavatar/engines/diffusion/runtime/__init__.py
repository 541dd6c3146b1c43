"""How the DiT runs: the block loop, its step caches, and (later) workers and resume records."""
