"""The diffusion engine's live session: the same block loop (runtime/loop.py), fed one block at a time.

Each session block is one block of the loop: 3 latent frames = 12 video frames = 0.48 s. When the
session asks for it, the block's wav2vec2 features are computed over a sliding window
(encoders/audio_window.py: the block's audio, 2 s before it, 0.32 s after it), the loop denoises the
block against its KV rings and the sink (rolled at clip 1 as in a file run, then carried on), and the
streaming decoder turns it into 12 frames. Listening blocks are the same, from silent audio. The
loop's plan has no last clip (runtime/endless.py); the caches, the decoder's state and the audio
window are fixed in size, so a session runs as long as its client stays.
"""

from __future__ import annotations

import numpy as np

from liveavatar.config import Plan
from liveavatar.engines.base import Notify, SessionInputs
from liveavatar.engines.diffusion.encoders.audio_window import LOOKAHEAD_S
from liveavatar.errors import UserError
from liveavatar.sizing import AUDIO_SAMPLE_RATE, FPS, SIZE_DIVISOR

BLOCK_FRAMES = 12  # BLOCK_LATENT_FRAMES x FRAMES_PER_LATENT
LIVE_FRAMES_PER_CLIP = 48  # when the plan's clip is not a whole number of blocks (upstream's default)


class _EveryClip:
    """BlockFrames' per-clip frame budget for clips without end: every clip keeps all its frames."""

    def __init__(self, frames_per_clip: int) -> None:
        self.frames_per_clip = frames_per_clip

    def __getitem__(self, clip: int) -> int:
        return self.frames_per_clip

    def __setitem__(self, clip: int, value: int) -> None:
        pass


class DiffusionBlockMaker:
    """``engines.session.BlockMaker`` over a loaded :class:`DiffusionEngine`."""

    block_frames = BLOCK_FRAMES

    def __init__(self, engine, portrait: np.ndarray, plan: Plan, notify: Notify) -> None:
        import torch

        from liveavatar.engines.diffusion.encoders.audio_window import SlidingFeatures
        from liveavatar.engines.diffusion.encoders.conditioning import motion_from_frames, reference_latents
        from liveavatar.engines.diffusion.runtime.endless import MAX_CLIPS, EndlessPlan
        from liveavatar.engines.diffusion.runtime.frames import BlockFrames
        from liveavatar.engines.diffusion.runtime.loop import LoopState, StepCaches, denoise_blocks
        from liveavatar.engines.diffusion.runtime.run import DECODER_WARMUP_LATENTS

        m = engine.models
        self.engine, self.plan = engine, plan
        self.width, self.height = plan.width, plan.height
        self.lookahead_samples = round(LOOKAHEAD_S * AUDIO_SAMPLE_RATE)
        frames_per_clip = plan.frames_per_clip
        if frames_per_clip % BLOCK_FRAMES:
            notify(
                f"note: a live session makes clips of {LIVE_FRAMES_PER_CLIP} frames (--infer_frames "
                f"{frames_per_clip} is not a whole number of {BLOCK_FRAMES}-frame blocks)"
            )
            frames_per_clip = LIVE_FRAMES_PER_CLIP
        with engine._on_device(m.text.model, stay=engine.text_on_cpu):
            text = m.text.encode(plan.prompt)
        self.features = SlidingFeatures(m.audio, device=engine.device, dtype=engine.dtype)
        ref, motion = reference_latents(m.vae, portrait)
        loop_plan = EndlessPlan(
            frames_per_clip=frames_per_clip,
            num_clips=MAX_CLIPS,
            latent_hw=(plan.height // 8, plan.width // 8),
            sample_steps=plan.sample_steps,
            sample_shift=plan.sample_shift,
            seed=plan.seed,
            rolling_sink=plan.enable_online_decode,
        )
        decoder = engine.decoder(engine.mode)
        decoder.decode_next(motion[:, :, :DECODER_WARMUP_LATENTS])  # primed as for a file
        self.frames = BlockFrames(decoder, True, [], True)
        self.frames.remaining = _EveryClip(frames_per_clip)  # (a list would need one entry per clip)
        steps = tuple(range(plan.sample_steps))
        caches = StepCaches.allocate(m.dit, loop_plan, steps, mode=engine.mode.kv)

        def next_motion():
            return motion_from_frames(m.vae, torch.cat(self.frames.first_clip, dim=2), portrait)

        self.blocks = denoise_blocks(
            m.dit,
            m.dit.encode_text(text.to(engine.device)),
            self.features,
            ref,
            motion,
            loop_plan,
            next_motion=next_motion,
            caches=caches,
            state=LoopState.start(plan.seed),
        )

    def make(self, audio: np.ndarray, speech: np.ndarray, start_frame: int) -> np.ndarray:
        with self.engine._on_device(self.engine.models.audio.model):
            self.features.feed(audio, start_frame, len(speech))
        block = next(self.blocks)
        if block.task.frame_index * 4 != start_frame:
            raise RuntimeError(f"the block loop is at frame {block.task.frame_index * 4}, the session at {start_frame}")
        out = self.frames(block)
        if block.clip >= 1 and self.frames.first_clip:
            self.frames.first_clip = []  # only the clip-1 sink needed them: constant memory from here on
        return out

    def expected_block_s(self) -> float | None:
        return None  # no per-GPU figures in the planner yet: measured over the first blocks

    def keep_up_offer(self, block_s: float) -> dict:
        """Fewer steps when that alone keeps up, and the size that keeps up at the current steps
        (a block's time taken as proportional to steps x pixels, which the DiT dominates)."""
        speed = BLOCK_FRAMES / FPS / block_s
        steps = self.plan.sample_steps
        fewer = int(steps * speed)
        area = self.width * self.height * speed * 0.9
        scale = np.sqrt(area / (self.width * self.height))
        w = max(SIZE_DIVISOR, int(self.width * scale) // SIZE_DIVISOR * SIZE_DIVISOR)
        h = max(SIZE_DIVISOR, int(self.height * scale) // SIZE_DIVISOR * SIZE_DIVISOR)
        smaller = (w, h) != (self.width, self.height)
        offer = {"size": f"{w}*{h}" if smaller else None, "sample_steps": fewer if 1 <= fewer < steps else None}
        ways = ([f"--size {w}*{h}"] if smaller else []) + ([f"--sample_steps {fewer}"] if offer["sample_steps"] else [])
        advice = (
            f"to keep up: {' or '.join(ways)}" if ways else "no smaller size or step count keeps up here: use a GPU"
        )
        offer["message"] = (
            f"this machine makes {speed:.2f}x real time at {self.width}*{self.height}, {steps} steps "
            f"({block_s:.2f} s per {BLOCK_FRAMES / FPS:.2f} s block); {advice}"
        )
        return offer

    def close(self) -> None:
        if self.blocks is not None:
            self.blocks.close()
        self.blocks = self.frames = self.features = None


def open_diffusion_session(engine, portrait: SessionInputs, plan: Plan, notify: Notify, options=None):
    """A :class:`liveavatar.engines.session.Session` over a loaded diffusion engine (this module never
    imports engine.py: engine.py imports it)."""
    from liveavatar.engines.session import Session, SessionOptions
    from liveavatar.media.image import fit_to_size

    options = options or SessionOptions()
    if options.sample_rate != AUDIO_SAMPLE_RATE:
        raise UserError(
            "sample_rate",
            f"the diffusion engine's sessions run at {AUDIO_SAMPLE_RATE} Hz, not {options.sample_rate}",
            f"open the session at {AUDIO_SAMPLE_RATE} Hz; push_audio resamples other rates",
        )
    if engine.team is not None:
        raise UserError("--num_gpus_dit", "live sessions run the DiT on one GPU", "use --num_gpus_dit 1")
    for line in engine.load_message.splitlines():
        notify(line)
    maker = DiffusionBlockMaker(engine, fit_to_size(portrait.image, plan.height, plan.width), plan, notify)
    return Session(maker, options, engine="diffusion")
