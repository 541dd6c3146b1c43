"""How much GPU memory the block loop's caches take, and a check before the loop allocates them.

Per denoising step the DiT keeps a KV ring of one clip of latent frames (K and V, every layer);
the sink (reference + motion tokens) is shared. At 14B, 704*384, 48 frames per clip that is
9.7 GiB per step, so the step count and the clip length decide whether a run fits: better a
one-line answer before the loop than an out-of-memory error after the compile.
"""

from __future__ import annotations

from dataclasses import dataclass

from liveavatar.errors import UserError

GIB = 2**30
# room for activations and the streaming decoder next to the caches (measured peaks: 4-6 GiB)
WORKING_MARGIN = 6 * GIB


@dataclass(frozen=True)
class CacheBudget:
    ring_bytes_per_step: int
    sink_bytes: int
    steps: int

    @property
    def total(self) -> int:
        return self.ring_bytes_per_step * self.steps + self.sink_bytes


def cache_budget(num_layers: int, dim: int, latent_hw: tuple[int, int], latents_per_clip: int, steps: int,
                 sink_tokens_per_frame: float, bytes_per_value: int) -> CacheBudget:
    tokens_per_frame = (latent_hw[0] // 2) * (latent_hw[1] // 2)
    per_token = 2 * num_layers * dim * bytes_per_value  # K and V of every layer
    return CacheBudget(
        ring_bytes_per_step=latents_per_clip * tokens_per_frame * per_token,
        sink_bytes=int(sink_tokens_per_frame * tokens_per_frame) * per_token,
        steps=steps,
    )


def require_room(budget: CacheBudget, free_bytes: int, size: tuple[int, int], frames_per_clip: int) -> None:
    """UserError with the ways out when the caches and working room exceed the free GPU memory."""
    need = budget.total + WORKING_MARGIN
    if need <= free_bytes:
        return
    height, width = size
    raise UserError(
        "--sample_steps",
        f"{budget.steps} steps at {width}x{height} with {frames_per_clip} frames per clip need "
        f"{need / GIB:.1f} GiB on the GPU ({budget.steps} KV caches of {budget.ring_bytes_per_step / GIB:.1f} GiB, "
        f"sink and working room) but {free_bytes / GIB:.1f} GiB are free",
        "use --fp8, fewer --sample_steps, a smaller --size or --infer_frames, or a GPU with more memory",
    )
