"""The session core (live/session.py) over a recording block maker: timeline, queue, barge-in, events."""

from __future__ import annotations

import time

import numpy as np
import pytest

from liveavatar.live.session import Session, SessionOptions

SR, SPF = 16_000, 640


class Recorder:
    """A BlockMaker that draws each frame's index and keeps what the session handed it."""

    width, height = 8, 8

    def __init__(self, block_frames: int = 2, lookahead: int = 320, expected: float | None = None, sleep: float = 0.0):
        self.block_frames, self.lookahead_samples = block_frames, lookahead
        self.expected, self.sleep = expected, sleep
        self.calls: list[tuple[np.ndarray, np.ndarray, int]] = []
        self.closed = False

    def make(self, audio, speech, start_frame):
        self.calls.append((audio.copy(), speech.copy(), start_frame))
        time.sleep(self.sleep)
        frames = np.zeros((len(speech), 8, 8, 3), np.uint8)
        frames[..., 0] = (start_frame + np.arange(len(speech)))[:, None, None] % 256
        return frames

    def expected_block_s(self):
        return self.expected

    def keep_up_offer(self, block_s):
        return {"size": "64*64", "block_s": block_s}

    def close(self):
        self.closed = True


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.5, 0.5, int(seconds * SR)) * 32767).astype(np.int16)


def run(session: Session, blocks: int):
    return [session.next_block() for _ in range(blocks)]


def test_timeline_is_continuous_and_audio_is_the_speech_to_the_sample():
    s = Session(Recorder())
    pcm = speech(2.33)
    out = run(s, 5)  # idle lead-in
    rng = np.random.default_rng(1)
    pos = 0
    while pos < len(pcm):  # chunks of any size, pushed between blocks
        k = int(rng.integers(1, 2000))
        s.push_audio(pcm[pos : pos + k])
        pos += k
        if rng.random() < 0.3:
            out += run(s, 1)
    s.end_of_speech()
    out += run(s, 80)
    starts = [b.start_frame for b in out]
    assert starts == list(range(0, 2 * len(out), 2))
    frames = np.concatenate([b.frames for b in out])
    assert list(frames[:, 0, 0, 0]) == [i % 256 for i in range(len(frames))]
    audio = np.concatenate([b.audio for b in out])
    assert len(audio) == len(frames) * SPF
    first = next(b.start_frame for b in out if b.speaking)
    got = audio[first * SPF : first * SPF + len(pcm)]
    np.testing.assert_array_equal(got, pcm.astype(np.float32) / 32768)
    assert not audio[: first * SPF].any() and not audio[first * SPF + len(pcm) :].any()
    events = s.poll_events()
    kinds = [e["type"] for e in events]
    assert kinds == ["session.started", "speech.started", "playback.finished"]
    assert events[2] == {
        "type": "playback.finished",
        "position_s": pytest.approx(len(pcm) / SR, abs=1e-4),
        "interrupted": False,
    }
    assert s.speech_seconds_played == pytest.approx(len(pcm) / SR)


def test_a_block_waits_for_its_lookahead_unless_the_utterance_ended():
    rec = Recorder(lookahead=320)
    s = Session(rec)
    pcm = speech(1.0)
    s.push_audio(pcm[: 2 * SPF])  # the block's audio, but not the 20 ms after it
    assert not s.next_block().speaking
    s.push_audio(pcm[2 * SPF : 2 * SPF + 320])
    b = s.next_block()
    assert b.speaking
    audio = rec.calls[-1][0]
    np.testing.assert_array_equal(audio[2 * SPF :], pcm[2 * SPF : 2 * SPF + 320] / 32768)  # the lookahead, not zeros
    s.push_audio(pcm[2 * SPF + 320 : 2 * SPF + 500])
    s.end_of_speech()  # the 500 samples left play at once, the block's rest is silence
    b = s.next_block()
    assert b.speaking and list(rec.calls[-1][1]) == [True, False]
    np.testing.assert_array_equal(b.audio[:500], pcm[2 * SPF : 2 * SPF + 500] / 32768)
    assert not b.audio[500:].any()


def test_speech_that_runs_dry_is_played_after_the_stall_limit():
    s = Session(Recorder(), SessionOptions(stall_flush_s=0.2))
    s.push_audio(speech(0.05))  # 50 ms: less than a block plus lookahead, and no end_of_speech
    flags = [s.next_block().speaking for _ in range(5)]
    assert flags == [False, False, False, True, False]  # 0.24 s of stall (>= 0.2 s), then played


def test_clear_stops_at_the_next_block_and_reports_what_was_played():
    rec = Recorder()
    s = Session(rec)
    pcm = speech(3.0)
    s.push_audio(pcm)
    played = run(s, 10)
    assert all(b.speaking for b in played)
    s.poll_events()
    position = s.clear()
    assert position == pytest.approx(20 * SPF / SR)
    assert s.poll_events() == [{"type": "playback.finished", "position_s": pytest.approx(0.8), "interrupted": True}]
    after = run(s, 3)
    assert not any(b.speaking for b in after) and not any(b.audio.any() for b in after)
    assert s.queued_seconds == 0.0
    s.push_audio(pcm[:SR])  # a new utterance after the barge-in starts again from its own beginning
    s.end_of_speech()
    b = s.next_block()
    assert b.speaking and np.array_equal(b.audio, pcm[: 2 * SPF] / 32768)


def test_other_sample_rates_are_resampled_without_seams():
    from liveavatar.live.session import StreamResampler

    s = Session(Recorder())
    t = np.arange(48_000) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for lo in range(0, len(tone), 480):  # 10 ms chunks at 48 kHz
        s.push_audio(tone[lo : lo + 480], sample_rate=48_000)
    s.end_of_speech()
    blocks = run(s, 30)
    audio = np.concatenate([b.audio for b in blocks])
    whole = StreamResampler(48_000, SR)  # the same resampler given the whole second at once
    ref = np.concatenate([whole.push(tone), whole.flush()])
    got = audio[next(b.start_frame for b in blocks if b.speaking) * SPF :]
    assert abs(len(ref) - SR) <= 20
    np.testing.assert_allclose(got[: len(ref)], ref, atol=1e-5)  # chunking leaves no seams
    assert not got[len(ref) :].any()


def test_the_speech_queue_is_bounded():
    s = Session(Recorder(), SessionOptions(max_queued_s=1.0))
    s.push_audio(speech(0.7))
    s.push_audio(speech(0.7, seed=1))
    assert s.queued_seconds == pytest.approx(1.0)
    errors = [e for e in s.poll_events() if e["type"] == "error"]
    assert errors and errors[0]["code"] == "speech_queue_full"


def test_bad_audio_is_refused_and_the_session_stays_usable():
    s = Session(Recorder())
    with pytest.raises(ValueError):
        s.push_audio(np.array(["a", "b"]))
    s.push_audio(np.array([np.nan, np.inf, 0.5], np.float32))
    s.end_of_speech()
    b = s.next_block()
    assert b.speaking and np.isfinite(b.audio).all() and b.audio[:3].tolist() == [0.0, 1.0, 0.5]


def test_a_slow_engine_says_so_at_start_with_an_offer():
    s = Session(Recorder(expected=0.5))  # 0.5 s for a 0.08 s block
    lag = [e for e in s.poll_events() if e["type"] == "lagging"]
    assert lag and lag[0]["offer"] == {"size": "64*64", "block_s": 0.5} and lag[0]["speed"] < 1


def test_a_slow_engine_is_found_out_by_measuring_when_nothing_is_known():
    s = Session(Recorder(block_frames=1, sleep=0.06))  # a 40 ms frame takes 60 ms or more
    run(s, 3)
    lag = [e for e in s.poll_events() if e["type"] == "lagging"]
    assert len(lag) == 1 and lag[0]["source"] == "measured" and lag[0]["s_per_block"] >= 0.06


def test_a_fast_engine_says_nothing_and_events_are_bounded():
    s = Session(Recorder(), SessionOptions(max_events=4))
    run(s, 5)
    assert [e["type"] for e in s.poll_events()] == ["session.started"]
    for _ in range(10):
        s.push_audio(speech(0.01))
        s.clear()
    assert len(s.poll_events()) == 4


def test_close_frees_the_engine_and_refuses_more_blocks():
    rec = Recorder()
    s = Session(rec)
    s.push_audio(speech(1.0))
    s.close()
    assert rec.closed and s.queued_seconds == 0
    with pytest.raises(RuntimeError):
        s.next_block()
