"""Developer tools: parity checks, tiny checkpoints, speech synthesis for fixtures."""
