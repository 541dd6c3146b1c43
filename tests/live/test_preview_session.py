"""A live preview session on the bundled samples, streamed in 20 ms chunks as a transport would,
measured on the frames it makes (FaceMesh, as the offline preview's quality tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liveavatar.config import GenerateConfig
from liveavatar.engines.base import SessionInputs
from liveavatar.engines.preview import PreviewEngine
from liveavatar.live.session import session_plan
from liveavatar.media.audio import read_audio
from liveavatar.media.image import read_image
from support import preview_quality as Q

REPO = Path(__file__).resolve().parents[2]
SR, SPF, CHUNK = 16_000, 640, 320  # 20 ms chunks
IDLE_BLOCKS = 10  # 0.8 s of listening before and after the speech


def open_session(seed: int = 420):
    image = read_image(REPO / "samples" / "portrait.png")
    config = GenerateConfig(
        image=REPO / "samples" / "portrait.png", audio=Path("live"), prompt="a woman", size="384*384", base_seed=seed
    ).resolve()
    return PreviewEngine().open_session(
        SessionInputs("a woman", image), session_plan(config, image, "preview"), lambda line: None
    )


def stream(session, pcm: np.ndarray, until_blocks: int | None = None) -> list:
    """Push ``pcm`` in real time (one block's worth of 20 ms chunks per block made), the end of speech
    with the last chunk, as a TTS does; the blocks made, with their events."""
    blocks, pos = [], 0
    per_block = session.block_frames * SPF
    while pos < len(pcm) and (until_blocks is None or len(blocks) < until_blocks):
        for lo in range(pos, min(pos + per_block, len(pcm)), CHUNK):
            session.push_audio(pcm[lo : min(lo + CHUNK, pos + per_block, len(pcm))])
        pos += per_block
        if pos >= len(pcm):
            session.end_of_speech()
        blocks.append((session.next_block(), session.poll_events()))
    return blocks


@pytest.fixture(scope="module")
def run():
    pcm = (read_audio(REPO / "samples" / "speech.wav")[: 6 * SR] * 32767).astype(np.int16)  # 2 pauses in it
    s = open_session()
    blocks = [(s.next_block(), s.poll_events()) for _ in range(IDLE_BLOCKS)]
    blocks += stream(s, pcm)
    while not any(e["type"] == "playback.finished" for e in blocks[-1][1]):
        blocks.append((s.next_block(), s.poll_events()))
    blocks += [(s.next_block(), s.poll_events()) for _ in range(IDLE_BLOCKS)]
    # barge-in: a second utterance, cleared 1 s in
    blocks += stream(s, pcm, until_blocks=IDLE_BLOCKS)
    cleared_at = s.frames_made
    position = s.clear()
    clear_events = s.poll_events()
    blocks += [(s.next_block(), s.poll_events()) for _ in range(IDLE_BLOCKS)]
    frames = np.concatenate([b.frames for b, _ in blocks])
    audio = np.concatenate([b.audio for b, _ in blocks])
    lms = Q.landmarks_per_frame(frames)
    assert all(lm is not None for lm in lms)
    opening = np.array([Q.mouth_opening(lm) for lm in lms])
    speaking = np.concatenate([np.full(len(b.frames), b.speaking) for b, _ in blocks])
    s.close()
    return {
        "pcm": pcm,
        "blocks": blocks,
        "frames": frames,
        "audio": audio,
        "lms": lms,
        "opening": opening,
        "speaking": speaking,
        "cleared_at": cleared_at,
        "position": position,
        "clear_events": clear_events,
    }


def test_one_continuous_timeline_and_the_speech_comes_out_to_the_sample(run):
    blocks, pcm = run["blocks"], run["pcm"]
    assert [b.start_frame for b, _ in blocks] == list(range(0, len(run["frames"]), 2))
    assert len(run["audio"]) == len(run["frames"]) * SPF
    start = next(b.start_frame for b, _ in blocks if b.speaking) * SPF
    assert start >= IDLE_BLOCKS * 2 * SPF and not run["audio"][:start].any()
    np.testing.assert_array_equal(run["audio"][start : start + len(pcm)], pcm / np.float32(32768))


def test_the_mouth_follows_the_speech_and_rests_in_its_pauses_and_when_listening(run):
    opening, audio = run["opening"], run["audio"]
    end = run["cleared_at"] - 4 * IDLE_BLOCKS  # the first utterance and the idle after it
    env = Q.loudness_envelope(audio[: end * SPF], SR, end)
    r0, lag, _ = Q.lagged_correlation(opening[:end], env)
    assert r0 >= 0.6 and abs(lag) <= 1, (r0, lag)
    rest = float(np.median(opening[: IDLE_BLOCKS * 2]))
    pauses = Q.pause_frames(audio[: end * SPF], SR, end, min_s=0.2, floor_db=-45)
    assert pauses.sum() >= 12
    assert Q.rest_share(opening[:end], pauses, rest=rest) >= 0.8
    listening = ~run["speaking"]
    assert Q.rest_share(opening, listening, rest=rest) >= 0.95
    assert np.percentile(opening[run["speaking"]], 75) > rest + 0.03  # it does open when speaking


def test_clear_closes_the_mouth_within_200_ms_and_says_it_was_interrupted(run):
    opening, at = run["opening"], run["cleared_at"]
    rest = float(np.median(opening[: IDLE_BLOCKS * 2]))
    assert opening[at - 6 : at].max() > rest + 0.03  # it was speaking
    assert np.all(np.abs(opening[at + 5 : at + 2 * IDLE_BLOCKS] - rest) < 0.02)  # closed from 200 ms of video on
    finished = [e for e in run["clear_events"] if e["type"] == "playback.finished"]
    assert finished == [
        {"type": "playback.finished", "position_s": pytest.approx(run["position"]), "interrupted": True}
    ]
    second = run["blocks"][-2 * IDLE_BLOCKS : -IDLE_BLOCKS]
    assert run["position"] == pytest.approx(sum(b.speaking for b, _ in second) * 2 / 25, abs=1e-6)


def test_listening_is_never_frozen_and_speech_starts_without_a_jump(run):
    frames, lms, speaking = run["frames"], run["lms"], run["speaking"]
    idle = np.flatnonzero(~speaking[:-1] & ~speaking[1:])
    same = [np.array_equal(frames[i], frames[i + 1]) for i in idle]
    assert np.mean(same) < 0.05
    rigid = np.stack([lm[list(Q.RIGID)] for lm in lms])
    step = np.linalg.norm(np.diff(rigid, axis=0), axis=2).mean(axis=1)  # per-frame head motion, px
    onset = next(i for i, sp in enumerate(speaking) if sp)
    assert step[onset - 1 : onset + 2].max() <= np.percentile(step, 99) + 0.5
    first_second = rigid[: 2 * IDLE_BLOCKS].mean(axis=1)
    assert np.ptp(first_second, axis=0).max() > 0.3  # the head moves a little while listening


def test_events_in_order(run):
    kinds = [e["type"] for _, ev in run["blocks"] for e in ev]
    assert kinds[:3] == ["session.started", "speech.started", "playback.finished"]
    assert "lagging" not in kinds
