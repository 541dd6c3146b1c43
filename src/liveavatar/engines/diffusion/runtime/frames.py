"""Denoised blocks -> uint8 frames: online (each block at once) or per clip, trimmed to the plan.

Transactional for the out-of-memory ladder: `save` before a block and `restore` after a failed
decode put the decoder's causal state and the pending latents back as they were.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from liveavatar.engines.diffusion.runtime.loop import DenoisedBlock


class BlockFrames:
    def __init__(
        self,
        decoder,
        online: bool,
        clip_frames: list[int],
        keep_first_clip: bool,
        start_clip: int = 0,
        on_clip_end: Callable[[DenoisedBlock], None] | None = None,
    ) -> None:
        self.decoder = decoder  # StreamingDecoder or TiledStreamingDecoder (the ladder may swap it)
        self.start_clip = start_clip  # --resume: earlier clips are decoded for the state, not output
        self.on_clip_end = on_clip_end
        self.online = online
        self.remaining = list(clip_frames)
        self.keep_first_clip = keep_first_clip
        self.pending: list[torch.Tensor] = []
        self.first_clip: list[torch.Tensor] = []  # clip 0's decoded frames: motion for the clip-1 sink

    def save(self):
        return self.decoder.save(), list(self.pending), list(self.first_clip), list(self.remaining)

    def restore(self, saved) -> None:
        state, pending, first_clip, remaining = saved
        self.decoder.restore(state)
        self.pending, self.first_clip, self.remaining = pending, first_clip, remaining

    def __call__(self, block: DenoisedBlock) -> np.ndarray | None:
        from liveavatar.engines.diffusion.encoders.conditioning import frames_to_uint8

        self.pending.append(block.latents)
        if block.last_in_clip and self.on_clip_end is not None:
            self.on_clip_end(block)
        # online decode turns each block into frames at once; otherwise a clip is decoded when complete
        if not (self.online or block.last_in_clip):
            return None
        decoded = self.decoder.decode_next(torch.cat(self.pending, dim=2))
        if block.clip == 0 and self.keep_first_clip:
            self.first_clip.append(decoded)
        self.pending = []
        if block.clip < self.start_clip:
            return None  # replayed for the caches and the decoder's state only
        frames = frames_to_uint8(decoded)
        keep = frames[: self.remaining[block.clip]]
        self.remaining[block.clip] -= len(keep)
        return keep if len(keep) else None
