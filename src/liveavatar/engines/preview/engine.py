"""PreviewEngine: inputs + plan -> frame blocks, clip by clip (frames are never all held)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from liveavatar.config import Plan
from liveavatar.engines.base import Inputs, Notify, SessionInputs
from liveavatar.engines.preview.style import DEFAULT_STYLE, PreviewStyle

# frames per yielded block: small, so the writer's first fragment (and a live viewer's first
# frame) comes after a fraction of a clip; the diffusion engine's blocks are 12 frames too
BLOCK_FRAMES = 12


class PreviewEngine:
    name = "preview"

    def __init__(self, style: PreviewStyle = DEFAULT_STYLE) -> None:
        self.style = style
        self.resume_states: dict[int, dict] = {}  # what a resumed run checks, keyed by clips done

    def prepare(self, inputs: Inputs, plan: Plan, notify: Notify):
        """Set-up: face model, mouth and motion tracks, renderer. Returns (renderer, frame params)."""
        from liveavatar.engines.preview.face import find_face
        from liveavatar.engines.preview.motion import motion_track, prompt_scales
        from liveavatar.engines.preview.render import Renderer
        from liveavatar.engines.preview.speech import analyse_speech
        from liveavatar.media.image import fit_to_size

        face = find_face(inputs.image, plan.height, plan.width, notify)
        if face.mouth is not None and not face.mouth.plausible:
            notify(
                f"note: the preview moves only the jaw: {face.mouth.problems[0]}; "
                "for lip-sync use a photo with the lips clearly visible"
            )
        portrait = fit_to_size(inputs.image, plan.height, plan.width)
        scales = prompt_scales(plan.prompt, self.style)
        if scales.words:
            notify(f"note: preview motion follows the prompt words: {', '.join(dict.fromkeys(scales.words))}")
        mouth = analyse_speech(inputs.audio, inputs.sample_rate, plan.num_frames, inputs.transcript, notify)
        motion = motion_track(plan.num_frames, mouth.loudness, plan.seed, scales, self.style)
        tracks = FrameTracks(
            open=np.clip(mouth.open * scales.mouth, 0, 1),
            spread=mouth.spread,
            blink=motion.blink,
            head=np.stack([motion.yaw, motion.pitch, motion.roll, motion.tx, motion.ty], axis=1),
        )
        return Renderer(portrait, face, self.style), tracks

    def generate(
        self, inputs: Inputs, plan: Plan, notify: Notify, start_clip: int = 0, memory: object | None = None
    ) -> Iterator[np.ndarray]:
        """Yield the frames of clips ``start_clip`` on, in blocks of at most BLOCK_FRAMES.

        A frame is a pure function of its index (the tracks are computed for the whole video from
        the seed and the audio; the renderer keeps no state between frames), so a resumed run just
        skips the finished clips, and the block size changes when frames arrive, not what they are.
        ``memory`` is not used: the CPU preview needs no memory plan.
        """
        from liveavatar.engines.base import remember_state

        renderer, tracks = self.prepare(inputs, plan, notify)
        digest = tracks.digest()
        self.resume_states = {}
        start = 0
        for clip, count in enumerate(plan.clip_frame_counts()):
            remember_state(self.resume_states, clip, {"clips": clip, "frame": start, "tracks": digest})
            # known before the clip's last block is yielded: the pipeline records it at segment ends
            remember_state(self.resume_states, clip + 1, {"clips": clip + 1, "frame": start + count, "tracks": digest})
            if clip >= start_clip:
                for lo in range(0, count, BLOCK_FRAMES):
                    block = np.empty((min(BLOCK_FRAMES, count - lo), plan.height, plan.width, 3), np.uint8)
                    for j in range(len(block)):
                        block[j] = renderer.render(tracks.params(start + lo + j))
                    yield block
            start += count

    def open_session(self, portrait: SessionInputs, plan: Plan, notify: Notify, options=None):
        """A live session (``live.session.Session``): the same renderer, its tracks made block by block."""
        from liveavatar.engines.preview.live import open_preview_session

        return open_preview_session(portrait, plan, notify, self.style, options)


class FrameTracks:
    """The per-frame parameters (small arrays), turned into FrameParams one frame at a time."""

    def __init__(self, open: np.ndarray, spread: np.ndarray, blink: np.ndarray, head: np.ndarray) -> None:
        self.open, self.spread, self.blink, self.head = open, spread, blink, head

    def __len__(self) -> int:
        return len(self.open)

    def digest(self) -> str:
        """A hash of every frame's parameters: a resumed run checks it rebuilt the same tracks."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.open, self.spread, self.blink, self.head):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    def params(self, i: int):
        from liveavatar.engines.preview.render import FrameParams

        return FrameParams(
            open=float(self.open[i]),
            spread=float(self.spread[i]),
            blink=float(self.blink[i]),
            head=tuple(float(v) for v in self.head[i]),
        )
