"""Live sessions' public module: the shared session (engines/session.py) and the plan a session follows.

Transports (WebSocket, WebRTC, LiveKit, Pipecat) import from here. The session itself is defined beside
the Engine protocol so that the engines, which build it in ``open_session``, never import ``live/``.
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.session import BlockMaker, Session, SessionOptions, StreamResampler, to_float
from liveavatar.sizing import AUDIO_SAMPLE_RATE

__all__ = ["BlockMaker", "Session", "SessionOptions", "StreamResampler", "session_plan", "to_float"]


def session_plan(config, image: np.ndarray, engine: str):
    """The Plan a live session follows: size, fps, seed, prompt and sampling settings from ``config``
    (a resolved GenerateConfig) and the portrait; the clip and frame counts mean nothing live."""
    from pathlib import Path

    from liveavatar.engines.base import Inputs
    from liveavatar.planning import make_plan

    silence = np.zeros(AUDIO_SAMPLE_RATE, np.float32)
    inputs = Inputs(
        prompt=config.prompt,
        image=image,
        audio=silence,
        sample_rate=AUDIO_SAMPLE_RATE,
        image_path=Path(config.image or "portrait"),
        audio_path=Path("live"),
    )
    return make_plan(config, inputs, engine)
