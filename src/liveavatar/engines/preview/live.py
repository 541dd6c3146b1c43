"""The preview engine's live session: the same renderer, fed by tracks made block by block."""

from __future__ import annotations

import numpy as np

from liveavatar.config import Plan
from liveavatar.engines.base import Notify, SessionInputs
from liveavatar.engines.preview.style import DEFAULT_STYLE, PreviewStyle
from liveavatar.sizing import FPS

# frames per live block: 2 (80 ms) keeps the wait for a block's audio short; a frame costs the same
# whatever the block size, so smaller blocks only add per-call overhead
LIVE_BLOCK_FRAMES = 2


class PreviewBlockMaker:
    """``engines.session.BlockMaker`` for the preview: the renderer plus live mouth and motion tracks."""

    def __init__(
        self,
        renderer,
        mouth,
        motion,
        mouth_scale: float,
        width: int,
        height: int,
        block_frames: int = LIVE_BLOCK_FRAMES,
    ) -> None:
        self.renderer, self.mouth, self.motion = renderer, mouth, motion
        self.mouth_scale = mouth_scale
        self.width, self.height = width, height
        self.block_frames = block_frames
        self.lookahead_samples = mouth.lookahead_samples

    def make(self, audio: np.ndarray, speech: np.ndarray, start_frame: int) -> np.ndarray:
        from liveavatar.engines.preview.render import FrameParams

        open_, spread, loud = self.mouth.step(audio, speech)
        blink, head = self.motion.step(loud, start_frame)
        open_ = np.clip(open_ * self.mouth_scale, 0, 1)
        frames = np.empty((len(speech), self.height, self.width, 3), np.uint8)
        for j in range(len(speech)):
            frames[j] = self.renderer.render(
                FrameParams(
                    open=float(open_[j]),
                    spread=float(spread[j]),
                    blink=float(blink[j]),
                    head=tuple(float(v) for v in head[j]),
                )
            )
        self.last_open = open_  # what the mouth did in the block (tests and benchmarks read it)
        return frames

    def expected_block_s(self) -> float | None:
        return None  # measured over the first blocks (depends on the portrait's face size)

    def keep_up_offer(self, block_s: float) -> dict:
        from liveavatar.sizing import SIZE_DIVISOR

        realtime = self.block_frames / FPS
        # the warp's cost is about proportional to the pixels: scale the area down by the speed
        factor = np.sqrt(realtime / block_s * 0.9)
        w = max(SIZE_DIVISOR, int(self.width * factor) // SIZE_DIVISOR * SIZE_DIVISOR)
        h = max(SIZE_DIVISOR, int(self.height * factor) // SIZE_DIVISOR * SIZE_DIVISOR)
        return {
            "size": f"{w}*{h}",
            "message": f"the preview renders at {realtime / block_s:.2f}x real time "
            f"at {self.width}*{self.height} on this machine; --size {w}*{h} would keep up",
        }

    def close(self) -> None:
        self.renderer = None


def open_preview_session(
    portrait: SessionInputs, plan: Plan, notify: Notify, style: PreviewStyle = DEFAULT_STYLE, options=None
):
    """A :class:`liveavatar.engines.session.Session` animating ``portrait`` at the plan's size."""
    from liveavatar.engines.preview.face import find_face
    from liveavatar.engines.preview.live_tracks import LiveMotion, LiveMouth
    from liveavatar.engines.preview.motion import prompt_scales
    from liveavatar.engines.preview.render import Renderer
    from liveavatar.engines.session import Session, SessionOptions
    from liveavatar.media.image import fit_to_size

    options = options or SessionOptions()
    face = find_face(portrait.image, plan.height, plan.width, notify)
    if face.mouth is not None and not face.mouth.plausible:
        notify(
            f"note: the preview moves only the jaw: {face.mouth.problems[0]}; "
            "for lip-sync use a photo with the lips clearly visible"
        )
    scales = prompt_scales(plan.prompt, style)
    renderer = Renderer(fit_to_size(portrait.image, plan.height, plan.width), face, style)
    maker = PreviewBlockMaker(
        renderer,
        LiveMouth(options.sample_rate),
        LiveMotion(plan.seed, scales, style),
        scales.mouth,
        plan.width,
        plan.height,
    )
    return Session(maker, options, engine="preview")
