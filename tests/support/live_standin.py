"""A live session whose engine part is a stand-in: the real ``live.session.Session`` (timeline,
utterances, barge-in, events) over a block maker that paints each frame's loudness as its grey
level. For the framework adapters' tests, which run where the preview engine's face model is not
installed (the integrations' own virtual environment)."""

from __future__ import annotations

import numpy as np

from liveavatar.live.session import Session


class LoudnessMaker:
    width, height, block_frames, lookahead_samples = 32, 32, 2, 0

    def make(self, audio, speech, start_frame):
        spf = len(audio) // len(speech)
        level = [np.sqrt(np.mean(audio[i * spf : (i + 1) * spf] ** 2)) if s else 0.0 for i, s in enumerate(speech)]
        return np.stack([np.full((self.height, self.width, 3), min(255, int(2000 * v)), np.uint8) for v in level])

    def expected_block_s(self):
        return None

    def keep_up_offer(self, block_s):
        return {}

    def close(self):
        pass


def standin_session() -> Session:
    return Session(LoudnessMaker(), engine="standin")
