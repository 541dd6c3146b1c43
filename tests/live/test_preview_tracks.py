"""The preview's live tracks (engines/preview/live_tracks.py): bounded state, stationary motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveavatar.engines.preview.live_tracks import LiveMotion, LiveMouth, Ring
from liveavatar.engines.preview.motion import MotionScales
from liveavatar.live.session import Session
from liveavatar.media.audio import read_audio

REPO = Path(__file__).resolve().parents[2]
SPF = 640


def state_size(obj, seen=None) -> int:
    """Bytes of arrays plus items of containers reachable from ``obj``'s attributes."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple, set)) or type(obj).__name__ == "deque":
        return len(obj) + sum(state_size(v, seen) for v in obj)
    if isinstance(obj, dict):
        return len(obj) + sum(state_size(v, seen) for v in obj.values())
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith(("liveavatar", "test_")):
        return sum(state_size(v, seen) for v in vars(obj).values())
    return 0


class TracksOnly:
    """The preview's BlockMaker without the renderer: its tracks are all the state a long run keeps."""

    width = height = 1
    block_frames = 2

    def __init__(self):
        self.mouth, self.motion = LiveMouth(16_000), LiveMotion(7, MotionScales())
        self.lookahead_samples = self.mouth.lookahead_samples
        self.opens = []

    def make(self, audio, speech, start_frame):
        open_, _, loud = self.mouth.step(audio, speech)
        blink, head = self.motion.step(loud, start_frame)
        self.last = (open_, blink, head)
        return np.zeros((len(speech), 1, 1, 3), np.uint8)

    def expected_block_s(self):
        return None

    def keep_up_offer(self, block_s):
        return {}

    def close(self):
        pass


def test_a_long_session_keeps_constant_state():
    speech = read_audio(REPO / "samples" / "speech.wav")[: 3 * 16_000]
    s = Session(TracksOnly())
    sizes = []
    for _minute in range(4):
        for _ in range(8):  # a minute: 3 s of speech, 4.5 s of listening, 8 times
            s.push_audio(speech)
            s.end_of_speech()
            for _ in range(94):
                s.next_block()
        s.poll_events()
        sizes.append(state_size(s))
    assert s.seconds_shown > 3.5 * 60
    assert sizes[1] == sizes[2] == sizes[3], sizes


def test_ring_keeps_the_last_values():
    r = Ring(5)
    r.add(np.arange(3))
    r.add(np.arange(3, 11))
    assert sorted(r.values().tolist()) == [6, 7, 8, 9, 10]
    r.add(np.array([11.0]))
    assert sorted(r.values().tolist()) == [7, 8, 9, 10, 11]


def test_motion_is_the_same_whatever_the_block_size_and_never_freezes():
    loud = np.zeros(3000, np.float32)
    loud[500:800] = 0.7
    a, b = LiveMotion(3, MotionScales()), LiveMotion(3, MotionScales())
    blink_a, head_a = a.step(loud, 0)
    parts = [b.step(loud[i : i + 7], i) for i in range(0, 3000, 7)]
    np.testing.assert_allclose(head_a, np.concatenate([p[1] for p in parts]), atol=1e-6)
    np.testing.assert_array_equal(blink_a, np.concatenate([p[0] for p in parts]))
    assert (np.abs(np.diff(head_a[:, 0])) > 0).all()  # the head never stops
    blinks = np.flatnonzero(np.diff((blink_a > 0.5).astype(int)) == 1)
    assert 10 <= len(blinks) <= 60  # every 2-6 s over 120 s
    assert head_a[480:820, 1].max() > head_a[:480, 1].max()  # speech nods


def test_mouth_is_the_same_whatever_the_block_size():
    speech = read_audio(REPO / "samples" / "speech.wav")[: 2 * 16_000]
    look = LiveMouth(16_000).lookahead_samples

    def run(block):
        m, out = LiveMouth(16_000), []
        audio = np.concatenate([speech, np.zeros(look + block * SPF, np.float32)])
        for f in range(0, 50, block):
            out.append(m.step(audio[f * SPF : (f + block) * SPF + look], np.ones(block, bool))[0])
        return np.concatenate(out)

    two, five = run(2), run(5)
    assert np.corrcoef(two, five)[0, 1] > 0.97  # only the running statistics see different histories
    assert two.max() > 0.5 and (two == 0).any()
