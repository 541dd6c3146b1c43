"""Live-session tests: a preview server, a WebSocket client (the project's own client library) and
decoding what came back with PyAV."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np

from liveavatar.live.client import LiveClient, Received, collect, open_session, stream_pcm

REPO = Path(__file__).resolve().parents[2]
PORTRAIT = REPO / "samples" / "portrait.png"
SPEECH = REPO / "samples" / "speech.wav"
SR = 16_000


def speech_pcm(seconds: float | None = None) -> np.ndarray:
    import soundfile as sf

    pcm, rate = sf.read(str(SPEECH), dtype="int16")
    assert rate == SR
    return pcm if seconds is None else pcm[: int(seconds * SR)]


def new_session(server, token: str | None = None, **options) -> dict:
    return open_session(
        server.url,
        PORTRAIT,
        prompt="A woman speaks calmly.",
        token=token,
        size=options.pop("size", "256*256"),
        **options,
    )


async def talk(
    server,
    session_id: str,
    pcm: np.ndarray,
    lead_s: float = 0.6,
    tail_s: float = 0.4,
    clear_after_s: float | None = None,
    close: bool = True,
    token: str | None = None,
) -> tuple[Received, list]:
    """Connect, listen ``lead_s``, stream ``pcm`` in 20 ms chunks in real time (``clear`` after
    ``clear_after_s`` of it, else end_of_speech), wait for playback.finished and ``tail_s`` more, then
    close the session (or just the socket)."""
    received, sent = Received(), []
    async with LiveClient.connect(server.url, session_id, token=token) as live:
        finished = asyncio.Event()
        reader = asyncio.create_task(collect(live, received, finished))
        await asyncio.sleep(lead_s)
        part = pcm if clear_after_s is None else pcm[: int(clear_after_s * SR)]
        await stream_pcm(live, part, SR, sent=sent)
        sent.append((time.monotonic(), len(part)))
        await (live.clear() if clear_after_s is not None else live.end_of_speech())
        await asyncio.wait_for(finished.wait(), 15)
        await asyncio.sleep(tail_s)
        if close:
            await live.close_session()
            await asyncio.wait_for(reader, 15)
        else:
            reader.cancel()
    return received, sent


def decode(data: bytes) -> tuple[list, np.ndarray, list[float]]:
    """(RGB frames, mono float audio at its own rate, video frame times in s)."""
    import av

    with av.open(io.BytesIO(bytes(data))) as container:
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    with av.open(io.BytesIO(bytes(data))) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, audio, times


def wait_ready(server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(server.url + "/healthz").status_code != 200:
        assert time.monotonic() < deadline, "engine did not load"
        time.sleep(0.05)


def mouth_openings(frames: list) -> np.ndarray:
    """Inner-lip gap per frame (FaceMesh, as the preview's quality tests measure it)."""
    from support import preview_quality as Q

    marks = Q.landmarks_per_frame(frames)
    assert all(m is not None for m in marks), "a frame without a face"
    return np.array([Q.mouth_opening(m) for m in marks])
