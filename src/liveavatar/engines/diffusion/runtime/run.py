"""One video on the diffusion engine (`DiffusionRun`), and resuming it exactly.

`DiffusionRun` holds what one call of `DiffusionEngine.generate` needs (conditions, loop plan,
decoder, frames, ladder) and is what the out-of-memory ladder drives (`ladder.LadderRun`: allocate,
produce, step_down, exhausted) and what records the resume fingerprints (`clip_end`).

Resuming: the replay of the finished clips and its fingerprint.

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
from collections.abc import Iterator

import numpy as np
import torch

from liveavatar.engines.base import remember_state
from liveavatar.engines.diffusion.runtime.loop import DenoisedBlock, LoopPlan, LoopState, StepCaches, denoise_blocks

# the decoder is primed with this many still-reference latents so the first generated block
# continues a still portrait (4 frames per latent from the start; nothing is dropped)
DECODER_WARMUP_LATENTS = 7


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


class DiffusionRun:
    """One video: built by the engine from the encoded conditions; iterate it for the frame blocks."""

    def __init__(self, engine, portrait: np.ndarray, plan, notify, start_clip: int, text, audio) -> None:
        from liveavatar.engines.diffusion.encoders.conditioning import reference_latents
        from liveavatar.engines.diffusion.runtime.frames import BlockFrames
        from liveavatar.engines.diffusion.runtime.ladder import Ladder
        from liveavatar.engines.diffusion.runtime.overlap import decode_side

        self.engine, self.plan, self.notify = engine, plan, notify
        self.models, self.portrait = engine.models, portrait
        self.text, self.audio = text, audio
        self.ref, self.motion = reference_latents(self.models.vae, portrait)
        self.loop_plan = LoopPlan.of(plan)
        # one latent per decoder pass on the GPU: the same frames, ~7 % slower, but the decode's
        # activations shrink enough for bf16 14B + four step caches to fit on one 80 GB card
        decoder = engine.decoder(engine.mode)
        # CUDA: block n's decode overlaps block n+1's DiT work (runtime/overlap.py); CPU: in order
        overlap = engine.device.type == "cuda" if engine.overlap_decode is None else engine.overlap_decode
        ahead = overlap and engine.team is None and engine.memory.overlap_fits
        with decode_side(ahead, self.motion):
            decoder.decode_next(self.motion[:, :, :DECODER_WARMUP_LATENTS])
        self.frames = BlockFrames(
            decoder,
            plan.enable_online_decode,
            plan.clip_frame_counts(),
            plan.num_clips > 1,
            start_clip=start_clip,
            on_clip_end=self.clip_end,
        )
        self.ladder = Ladder(engine.mode, engine.later, self, notify, ahead=ahead)

    def __iter__(self) -> Iterator[np.ndarray]:
        team = self.engine.team
        if team is not None:  # K workers: the same loop, one step group each (runtime/workers.py)
            for block in team.run(
                self.models.dit,
                self.text,
                self.audio,
                self.ref,
                self.motion,
                self.loop_plan,
                self.next_motion,
                self.notify,
            ):
                out = self.frames(block)
                if out is not None:
                    yield out
            return
        self.text_ctx = self.models.dit.encode_text(self.text.to(self.engine.device))
        yield from self.ladder.run(self.frames, LoopState.start(self.plan.seed))

    # -- what the ladder drives (ladder.LadderRun) -----------------------------------------
    def allocate(self, form) -> StepCaches:
        return StepCaches.allocate(self.models.dit, self.loop_plan, tuple(range(self.plan.sample_steps)), mode=form)

    def produce(self, caches: StepCaches, state: LoopState) -> Iterator[DenoisedBlock]:
        return denoise_blocks(
            self.models.dit,
            self.text_ctx,
            self.audio,
            self.ref,
            self.motion,
            self.loop_plan,
            caches=caches,
            state=state,
            next_motion=self.next_motion,
        )

    def step_down(self, old, new) -> str:
        from liveavatar.engines.diffusion.runtime.modes import step_down

        return step_down(self.engine, old, new, self.frames)

    def exhausted(self, block: int, mode) -> BaseException:
        from liveavatar.errors import UserError

        return UserError(
            "--gpu_memory",
            f"out of GPU memory at block {block} even in the last memory mode ({mode.name})",
            f"the finished part is kept; to make the whole video run: {self.engine.memory.finish}",
        )

    # -- the loop's callbacks ---------------------------------------------------------------
    def next_motion(self) -> torch.Tensor:
        """The rolling sink's motion at clip 1: clip 0's decoded frames, encoded again."""
        from liveavatar.engines.diffusion.encoders.conditioning import motion_from_frames

        self.ladder.caught_up()  # clip 0's frames are all decoded (the loop may run a block ahead)
        return motion_from_frames(self.models.vae, torch.cat(self.frames.first_clip, dim=2), self.portrait)

    def clip_end(self, block: DenoisedBlock) -> None:
        """Resume records: the loop's state at each clip end (K > 1 workers: it lives in them)."""
        state = self.ladder.live if self.engine.team is None else None
        remember_state(
            self.engine.resume_states,
            block.clip + 1,
            clip_fingerprint(block.clip + 1, block.task.index + 1, state, block.latents),
        )
