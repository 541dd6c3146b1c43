"""A Python client of live sessions (``liveavatar live`` is this module on the command line).

    import asyncio
    from liveavatar.live.client import open_session, LiveClient

    info = open_session("http://127.0.0.1:7860", "portrait.png", prompt="...", token=TOKEN)
    async def talk():
        async with LiveClient.connect("http://127.0.0.1:7860", info["id"], token=TOKEN) as live:
            await live.send_audio(pcm_int16)          # any chunk size, int16 mono at info["sample_rate"]
            await live.end_of_speech()
            async for message in live:                 # bytes: the fragmented MP4; dict: an event
                ...

Needs the ``live`` extra (websockets, httpx); the microphone needs ``sounddevice``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _ws_url(base: str, session_id: str, token: str | None) -> str:
    from urllib.parse import quote

    scheme, rest = base.rstrip("/").split("://", 1)
    url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/v1/sessions/{session_id}/ws"
    return url + (f"?token={quote(token)}" if token else "")


def _headers(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def open_session(base_url: str, image: Path | str, prompt: str = "", token: str | None = None, **options) -> dict:
    """``POST /v1/sessions``: the session object; raises :class:`SessionRefused` with the server's error."""
    import httpx

    image = Path(image)
    data = {"prompt": prompt, **{k: str(v) for k, v in options.items() if v is not None}}
    with open(image, "rb") as handle:
        response = httpx.post(
            f"{base_url.rstrip('/')}/v1/sessions",
            data=data,
            headers=_headers(token),
            timeout=120,
            files={"image": (image.name, handle)},
        )
    if response.status_code != 201:
        raise SessionRefused(response.status_code, _error_text(response))
    return response.json()


def delete_session(base_url: str, session_id: str, token: str | None = None) -> None:
    import httpx

    httpx.delete(f"{base_url.rstrip('/')}/v1/sessions/{session_id}", headers=_headers(token), timeout=30)


def _error_text(response) -> str:
    try:
        return response.json()["error"]["message"]
    except Exception:
        return response.text[:300]


class SessionRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class LiveClient:
    """One WebSocket to a session: send speech and controls, iterate over MP4 bytes and events."""

    def __init__(self, socket) -> None:
        self.socket = socket

    @classmethod
    def connect(cls, base_url: str, session_id: str, token: str | None = None):
        """``async with LiveClient.connect(...) as live:``"""
        return _Connection(_ws_url(base_url, session_id, token), token)

    async def send_audio(self, pcm: np.ndarray) -> None:
        """int16 mono PCM at the session's rate (floats in [-1, 1] are converted)."""
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            pcm = np.round(np.clip(pcm, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        await self.socket.send(pcm.astype("<i2").tobytes())

    async def end_of_speech(self) -> None:
        await self.socket.send(json.dumps({"type": "end_of_speech"}))

    async def clear(self) -> None:
        await self.socket.send(json.dumps({"type": "clear"}))

    async def close_session(self) -> None:
        await self.socket.send(json.dumps({"type": "close"}))

    async def __aiter__(self) -> AsyncIterator[bytes | dict]:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.socket:
                yield message if isinstance(message, bytes) else json.loads(message)
        except ConnectionClosed:
            return


class _Connection:
    def __init__(self, url: str, token: str | None) -> None:
        self.url, self.token = url, token

    async def __aenter__(self) -> LiveClient:
        from websockets.asyncio.client import connect

        self._cm = connect(self.url, additional_headers=_headers(self.token), max_size=None)
        return LiveClient(await self._cm.__aenter__())

    async def __aexit__(self, *exc) -> None:
        await self._cm.__aexit__(*exc)


@dataclass
class Received:
    """What came back: the MP4 bytes, the events with their arrival time (monotonic s), and when
    each binary message arrived (``arrivals``: (monotonic s, bytes so far))."""

    data: bytearray = field(default_factory=bytearray)
    events: list[tuple[float, dict]] = field(default_factory=list)
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict]:
        return [e for _, e in self.events if e.get("type") == kind]


async def collect(live: LiveClient, received: Received, until: asyncio.Event | None = None) -> None:
    """Gather everything the server sends into ``received`` until the socket closes."""
    async for message in live:
        now = time.monotonic()
        if isinstance(message, bytes):
            received.data += message
            received.arrivals.append((now, len(received.data)))
        else:
            received.events.append((now, message))
            if until is not None and message.get("type") == "playback.finished":
                until.set()


async def stream_pcm(
    live: LiveClient,
    pcm: np.ndarray,
    sample_rate: int,
    chunk_ms: float = 20.0,
    sent: list[tuple[float, int]] | None = None,
) -> None:
    """Send ``pcm`` in chunks of ``chunk_ms`` at the pace of real time (``sent``: (time, first sample) per chunk)."""
    step = max(1, int(sample_rate * chunk_ms / 1000))
    start = time.monotonic()
    for lo in range(0, len(pcm), step):
        delay = start + lo / sample_rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if sent is not None:
            sent.append((time.monotonic(), lo))
        await live.send_audio(pcm[lo : lo + step])


async def stream_file(
    base_url: str,
    image: Path,
    audio: Path,
    save_file: Path,
    prompt: str = "",
    token: str | None = None,
    lead_s: float = 0.5,
    tail_s: float = 0.5,
    say=print,
    **options,
) -> Received:
    """``liveavatar live``: open a session, stream ``audio`` (or the microphone when ``audio`` is None)
    in real time, and write what comes back to ``save_file`` (written beside it, then renamed)."""
    from liveavatar.media.audio import read_audio

    info = await asyncio.to_thread(open_session, base_url, image, prompt, token, **options)
    say(
        f"session {info['id']}: {info['width']}x{info['height']} at {info['fps']} fps, {info['engine']} engine, "
        f"lookahead {info['lookahead_ms']:g} ms"
    )
    received = Received()
    try:
        async with LiveClient.connect(base_url, info["id"], token=token) as live:
            finished = asyncio.Event()
            reader = asyncio.create_task(collect(live, received, finished))
            await asyncio.sleep(lead_s)
            if audio is not None:
                await stream_pcm(live, read_audio(audio, info["sample_rate"]), info["sample_rate"])
            else:
                await stream_microphone(live, info["sample_rate"], say)
            await live.end_of_speech()
            await asyncio.wait_for(finished.wait(), 30 + lead_s)
            await asyncio.sleep(tail_s)
            await live.close_session()
            await asyncio.wait_for(reader, 30)
    finally:
        await asyncio.to_thread(delete_session, base_url, info["id"], token)
    tmp = save_file.with_name(f".{save_file.name}.part")
    tmp.write_bytes(bytes(received.data))
    tmp.replace(save_file)
    return received


async def stream_microphone(live: LiveClient, sample_rate: int, say=print) -> None:
    """Send the default microphone until Ctrl-C (needs ``sounddevice``)."""
    import sounddevice

    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue = asyncio.Queue(maxsize=500)

    def heard(indata, frames, when, status) -> None:
        loop.call_soon_threadsafe(chunks.put_nowait, indata[:, 0].copy())

    say("speak now; Ctrl-C ends the speech")
    with sounddevice.InputStream(
        samplerate=sample_rate, channels=1, dtype="int16", blocksize=sample_rate // 50, callback=heard
    ):
        try:
            while True:
                await live.send_audio(await chunks.get())
        except (KeyboardInterrupt, asyncio.CancelledError):
            return
