"""The GPU query: what CUDA reports free, per device (the planner itself never touches a device)."""

from __future__ import annotations

from liveavatar.planning.memory.calibration import CUDA_CONTEXT_BYTES


def cuda_budget(device: int | None = None) -> int | None:
    """What CUDA reports free on `device` (default: the current one) plus the context this process
    already holds there; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info() if device is None else torch.cuda.mem_get_info(device)
    return free + CUDA_CONTEXT_BYTES


def cuda_budgets() -> list[int]:
    """`cuda_budget` of every visible GPU, in device order (empty without CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [cuda_budget(i) for i in range(torch.cuda.device_count())]
