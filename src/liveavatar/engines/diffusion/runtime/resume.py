"""Resuming the diffusion loop exactly: the replay of the finished clips and its fingerprint.

Why a replay from the first block (and not of the blocks still in the ring window): the K/V a
block leaves in the ring at layer l come from its hidden states, which attended to the ring as it
was then, i.e. to every earlier block; replaying only the window starts from different rings and
gives different caches (measured: benchmarks/bench_resume.py). So a resumed run runs the DiT and
the streaming decoder over the finished clips again (the decoder's causal state, about 1 GB at
704*384, is rebuilt the same way, and clip 0's frames give the rolling sink its motion) and only
skips turning their frames into images and writing them. Its cost is the finished part's DiT and
decode time; what it buys is the uninterrupted run's video, bit for bit on the CPU.
"""

from __future__ import annotations

import hashlib

import torch

from liveavatar.engines.diffusion.runtime.loop import LoopState


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def tensor_digest(t: torch.Tensor | None) -> str | None:
    if t is None:
        return None
    return _digest(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())


def clip_fingerprint(clips: int, next_block: int, state: LoopState | None, last_latents: torch.Tensor) -> dict:
    """Where the loop stands after ``clips`` clips: small, JSON-able, equal iff the replay matched.

    The next block, the sink-offset random state, the rolling-sink reference and the last block's
    clean latents (which depend on everything before them). With several workers the loop's
    state lives in them (``state`` is None): the latents alone still pin the replay down.
    """
    out = {"clips": clips, "next_block": next_block, "latents": tensor_digest(last_latents)}
    if state is not None:
        out["rng"] = _digest(repr(state.rng_state).encode())
        out["reference"] = tensor_digest(state.reference)
    return out
