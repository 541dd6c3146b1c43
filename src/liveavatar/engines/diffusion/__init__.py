"""The Live Avatar diffusion engine (Wan2.2-S2V-14B causal DiT + Live Avatar LoRA).

Nothing here imports torch at package import time: `liveavatar --help` and the preview path stay
fast and torch-free.
"""
