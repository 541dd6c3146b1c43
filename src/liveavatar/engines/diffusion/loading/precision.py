"""The dtype the diffusion models run in, by device (one rule for the engine, its workers and the benchmarks)."""

from __future__ import annotations


def model_dtype(device):
    """bfloat16 on a CUDA GPU (the release's dtype); float32 on the CPU, where bfloat16 matmuls are
    slow and the tests compare against float32 references. ``device``: a torch.device or its name."""
    import torch

    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
