"""An aiortc client for the WebRTC transport's tests and benchmark, and a server over stand-in sessions."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np


@dataclass
class Call:
    """What one client received: (arrival time, frame) per track, and the data channel's events."""

    video: list = field(default_factory=list)
    audio: list = field(default_factory=list)
    events: list = field(default_factory=list)  # (arrival time, dict)
    sent_at: float = 0.0  # when the client's microphone started
    status: int = 0
    location: str = ""
    reports: dict = field(default_factory=lambda: {"audio": [], "video": []})  # sender reports: (ntp s, rtp ts)
    origins: dict = field(default_factory=dict)  # kind -> RTP timestamp of the first frame (frames' pts count from it)

    def sender_times(self, kind: str) -> np.ndarray:
        """Each received frame's time on the SENDER's clock, from its RTP timestamp and the sender
        reports: what a player uses to line the two tracks up (the aiortc client's own receive
        buffers delay audio and video differently, so arrival times would measure the client)."""
        frames = self.video if kind == "video" else self.audio
        clock = 90_000 if kind == "video" else 48_000
        reports = self.reports[kind]
        assert reports, f"no RTCP sender report for {kind}"
        pts = np.array([f.pts for _, f in frames], np.int64) + self.origins[kind]
        base = int(reports[0][1])

        def unwrap(ts):
            return (np.asarray(ts, np.int64) - base + 2**31) % 2**32 - 2**31

        offset = np.median([ntp - unwrap(rtp) / clock for ntp, rtp in reports])
        return unwrap(pts) / clock + offset


def speech_clip(path: Path, lead_s: float, speech_s: float, tail_s: float) -> Path:
    """samples/speech.wav's first ``speech_s`` between silences: the mouth must rest before and after."""
    import soundfile as sf

    repo = Path(__file__).resolve().parents[2]
    audio, sr = sf.read(str(repo / "samples" / "speech.wav"), dtype="int16")
    clip = np.concatenate(
        [np.zeros(int(lead_s * sr), np.int16), audio[: int(speech_s * sr)], np.zeros(int(tail_s * sr), np.int16)]
    )
    sf.write(str(path), clip, sr, subtype="PCM_16")
    return path


async def call(
    url: str,
    session_id: str,
    wav: Path,
    seconds: float,
    close: bool = True,
    controls: tuple[tuple[float, str], ...] = (),
    until=None,
    headers: dict | None = None,
    wrap_mic=None,
) -> tuple[Call, object]:
    """Offer (microphone from ``wav``, receive video + audio, a data channel), run ``seconds`` (or
    until ``until(call)`` is true); ``controls``: (seconds after the answer, text) sent on the data
    channel; ``headers``: sent with the offer; ``wrap_mic(track)``: the track actually sent."""
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer
    from aiortc.mediastreams import MediaStreamError

    got = Call()
    pc = RTCPeerConnection()
    mic = MediaPlayer(str(wav)).audio
    pc.addTrack(wrap_mic(mic) if wrap_mic else mic)
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("events")
    channel.on("message", lambda m: got.events.append((time.monotonic(), json.loads(m))))
    tasks = []

    async def read(track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            (got.video if track.kind == "video" else got.audio).append((time.monotonic(), frame))

    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(read(track))))
    for transceiver in pc.getTransceivers():
        _record_sender_reports(transceiver.receiver, got.reports[transceiver.kind])
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{url}/v1/sessions/{session_id}/webrtc",
            content=pc.localDescription.sdp,
            headers={**(headers or {}), "content-type": "application/sdp"},
        )
    got.status, got.location = r.status_code, r.headers.get("location", "")
    if r.status_code != 201:
        await pc.close()
        return got, r
    got.sent_at = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    waited = 0.0
    for at, text in controls:
        await asyncio.sleep(at - waited)
        waited = at
        channel.send(text)
    deadline = time.monotonic() + seconds - waited
    while time.monotonic() < deadline and not (until and until(got)):
        await asyncio.sleep(0.05)
    for transceiver in pc.getTransceivers():  # aiortc rebases received pts on the first frame's RTP time
        mapper = getattr(transceiver.receiver, "_RTCRtpReceiver__timestamp_mapper", None)
        got.origins[transceiver.kind] = getattr(mapper, "_origin", None) or 0
    if close:
        await pc.close()
        for t in tasks:
            t.cancel()
    return got, pc


def _page_routes(app, registry) -> None:
    """The web page, and the session routes it calls, over stand-in sessions (the real ones are
    the server's /v1/sessions, tested with the engines)."""
    from liveavatar.serve import ui
    from support.webrtc_standin import open_run

    ui.add_routes(app)

    @app.post("/v1/sessions", status_code=201)
    async def create():
        return open_run(registry).view()

    @app.delete("/v1/sessions/{sid}")
    async def delete(sid: str):
        return {"id": sid, "deleted": registry.delete(sid)}


def _record_sender_reports(receiver, into: list) -> None:
    from aiortc.rtp import RtcpSrPacket

    handle = receiver._handle_rtcp_packet  # aiortc keeps the reports' RTP side to itself

    async def recorded(packet) -> None:
        if isinstance(packet, RtcpSrPacket):
            ntp = packet.sender_info.ntp_timestamp
            into.append(((ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32, packet.sender_info.rtp_timestamp))
        await handle(packet)

    receiver._handle_rtcp_packet = recorded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandinServer:
    """uvicorn in a thread: the WebRTC routes over a StandinRegistry (no engine, no jobs)."""

    def __init__(self, registry, config, page: bool = False) -> None:
        """``registry``: a ``live.registry.SessionRegistry`` (reaped here every 50 ms)."""
        import uvicorn
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse

        from liveavatar.serve import webrtc_routes
        from liveavatar.serve.uploads import Rejected

        app = FastAPI()
        self.registry = registry

        @app.exception_handler(Rejected)
        async def rejected(request, exc: Rejected):
            return JSONResponse(exc.body(), status_code=exc.status)

        self.routes = webrtc_routes.add_routes(app, registry, config)
        if page:
            _page_routes(app, registry)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.registry.start(every_s=0.05)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.routes.speaker.close()  # the peers end with the server's loop
        self.registry.stop()
        self.server.should_exit = True
        self.thread.join(10)
