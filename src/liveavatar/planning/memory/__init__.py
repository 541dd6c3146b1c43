"""The memory planner: the GPU memory a run needs, component by component, from shapes alone.

A pure function of the shapes (the DiT's config.json, the output size, frames per clip, how many
denoising steps a GPU holds) and a budget; nothing is loaded. The engine, ``--dry_run``, doctor
and the out-of-memory ladder all ask it, and nothing else estimates memory. By job:

- calibration.py  the measured constants and the command that produced them
- modes.py        the memory modes, by name, fastest first (and the guide's shape-changing rungs)
- workload.py     the shapes of one GPU's share (``Workload``; ``workload_for`` builds it from a config)
- components.py   one estimator per component (weights, rings, sink, activations, VAE, encoders ...)
- estimate.py     a mode's components and phase peaks; select.py: the first mode that fits
- workers.py      per-worker plans (multi-GPU: each rank for its own GPU; one GPU: one entry)
- run.py          the plans for a resolved run; gpus.py: the CUDA query; advice.py: text for people
"""

from liveavatar.planning.memory.advice import finish_command, gpu_table
from liveavatar.planning.memory.calibration import CALIBRATION, CUDA_CONTEXT_BYTES, GIB, MARGIN
from liveavatar.planning.memory.components import dit_weight_bytes, rope_table_bytes
from liveavatar.planning.memory.estimate import Estimate, estimate
from liveavatar.planning.memory.gpus import cuda_budget, cuda_budgets
from liveavatar.planning.memory.modes import (
    BF16_RESIDENT,
    DECODE_TILED,
    FP8_KV,
    FP8_WEIGHTS,
    GUIDE_FRAMES,
    GUIDE_SIZES,
    KV_STREAMED,
    MODES,
    TEXT_ON_CPU,
    Mode,
    candidate_modes,
    default_mode,
    mode_named,
    modes_after,
)
from liveavatar.planning.memory.run import budgets_for, given_budgets_gib, plan_for_run, read_dit_config, run_shares
from liveavatar.planning.memory.select import Choice, choose, fits, needed_budget
from liveavatar.planning.memory.workers import (
    RunMemory,
    WorkerPlan,
    WorkerShare,
    plan_workers,
    share_workload,
    worker_shares,
)
from liveavatar.planning.memory.workload import Workload, resize, workload_for

__all__ = [
    "BF16_RESIDENT",
    "CALIBRATION",
    "CUDA_CONTEXT_BYTES",
    "DECODE_TILED",
    "FP8_KV",
    "FP8_WEIGHTS",
    "GIB",
    "GUIDE_FRAMES",
    "GUIDE_SIZES",
    "KV_STREAMED",
    "MARGIN",
    "MODES",
    "TEXT_ON_CPU",
    "Choice",
    "Estimate",
    "Mode",
    "RunMemory",
    "WorkerPlan",
    "WorkerShare",
    "Workload",
    "budgets_for",
    "candidate_modes",
    "choose",
    "cuda_budget",
    "cuda_budgets",
    "default_mode",
    "dit_weight_bytes",
    "estimate",
    "finish_command",
    "fits",
    "given_budgets_gib",
    "gpu_table",
    "mode_named",
    "modes_after",
    "needed_budget",
    "plan_for_run",
    "plan_workers",
    "read_dit_config",
    "resize",
    "rope_table_bytes",
    "run_shares",
    "share_workload",
    "worker_shares",
    "workload_for",
]
