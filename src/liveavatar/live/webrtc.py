"""WebRTC transport for a live session (aiortc, the `webrtc` extra): WHIP-style signalling, one HTTP
exchange, no signalling server.

The client POSTs an SDP offer (its microphone track, a receive-only video transceiver, and a data
channel); the answer sends the avatar's video (VP8 or H.264, as negotiated) and the speech it shows
(Opus) on one clock. The data channel carries the session's JSON events out and controls in.
Localhost needs no STUN/TURN; other networks pass ``ice_servers`` (the browser's RTCIceServer
dicts), and a server behind NAT needs a TURN server it can relay through (README "WebRTC").
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from liveavatar.live.webrtc_media import Run

MAX_SDP_BYTES = 64 * 1024
SENDING = ("sendrecv", "sendonly")


@dataclass(frozen=True)
class WebRTCConfig:
    ice_servers: tuple[dict, ...] = ()  # [{"urls": ..., "username": ..., "credential": ...}]
    connect_timeout_s: float = 20.0  # an answer nobody connects to is dropped after this
    # no microphone packets this long: the peer is gone (a closed tab sends no goodbye; ICE consent
    # would notice only after about 30 s); a live microphone track sends packets even in silence
    silent_timeout_s: float = 10.0
    # the tracks send a block this long after it arrives: the margin for the next block's making and
    # hand-over (a preview block takes ~10 ms; a later one moves the clock, see webrtc_media)
    lead_s: float = 0.06


class OfferRejected(Exception):
    """A bad offer: ``code`` and one message saying what is wrong and what to send instead."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def parse_ice_servers(text: str) -> tuple[dict, ...]:
    """``--ice_servers``: a JSON list of RTCIceServer dicts, as the browser's RTCPeerConnection takes."""
    try:
        servers = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError('expected a list like [{"urls": "turn:host:3478", "username": "u", "credential": "p"}]')
    allowed = {"urls", "username", "credential"}
    for s in servers:
        if set(s) - allowed:
            raise ValueError(f"unknown keys {sorted(set(s) - allowed)}; each server takes {sorted(allowed)}")
    return tuple(servers)


def check_offer(sdp: str) -> None:
    """What aiortc would accept and still be useless, refused with a reason: no media, no microphone."""
    if not sdp.startswith("v=0"):
        raise OfferRejected(
            "invalid_sdp",
            "the body is not an SDP offer (it must start with 'v=0'); send the browser's "
            "RTCPeerConnection.createOffer() sdp as application/sdp",
        )
    sections = [s for s in sdp.replace("\r\n", "\n").split("\nm=")[1:]]
    if not sections:
        raise OfferRejected(
            "invalid_sdp",
            "the SDP offer has no media sections (m= lines); send the browser's createOffer() sdp unchanged",
        )
    kinds: dict[str, set[str]] = {}
    for section in sections:
        kind, _, rest = section.partition(" ")
        port = rest.split(" ", 1)[0]
        direction = next(
            (d for d in ("sendrecv", "sendonly", "recvonly", "inactive") if f"\na={d}" in "\n" + section), "sendrecv"
        )
        if port != "0":
            kinds.setdefault(kind, set()).add(direction)
    if not kinds.get("audio", set()) & set(SENDING):
        raise OfferRejected(
            "no_audio",
            "the offer sends no audio: add the microphone track "
            "(pc.addTrack(micTrack)) before createOffer(); the avatar speaks what it hears",
        )


class Peer:
    """One client's peer connection to one live run; ``close()`` (or the peer leaving, or the run
    ending) ends it and detaches it from the run, whose idle timeout then starts."""

    def __init__(self, run: Run, config: WebRTCConfig, on_closed: Callable[[Peer], None]) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.id = secrets.token_hex(8)
        self.run, self.session, self.config, self._on_closed = run, run.session, config, on_closed
        ice = [RTCIceServer(**s) for s in config.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        self._channel = None
        self._unsent: deque[str] = deque(maxlen=64)  # events before the data channel opens
        self.feed = None
        self._tasks: list[asyncio.Task] = []
        self.closed = asyncio.Event()
        self.answer_sdp = ""

    async def answer(self, offer_sdp: str) -> str:
        from aiortc import RTCSessionDescription

        from liveavatar.live.webrtc_media import AvatarFeed, audio_track, video_track

        check_offer(offer_sdp)
        self.feed = AvatarFeed(self.run, self.emit, self._run_ended, lead_s=self.config.lead_s)
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_channel)
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError, KeyError, ... on what it cannot use
            raise OfferRejected(
                "invalid_sdp",
                f"the SDP offer could not be used ({type(exc).__name__}: {exc}); "
                "send the browser's createOffer() sdp unchanged",
            ) from None
        if not any(t.kind == "video" for t in pc.getTransceivers()):
            raise OfferRejected(
                "no_video",
                "the offer receives no video: add pc.addTransceiver('video', "
                "{direction: 'recvonly'}) before createOffer()",
            )
        pc.addTrack(audio_track(self.feed))
        pc.addTrack(video_track(self.feed))
        await pc.setLocalDescription(await pc.createAnswer())  # aiortc gathers every candidate first
        self.run.attach(self.feed)
        self._tasks.append(asyncio.ensure_future(self._watch()))
        self.answer_sdp = pc.localDescription.sdp
        return self.answer_sdp

    def emit(self, event: dict) -> None:
        text = json.dumps(event)
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(text)
        else:
            self._unsent.append(text)

    def _on_track(self, track) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(self.feed.consume_mic(track)))

    def _on_channel(self, channel) -> None:
        self._channel = channel

        @channel.on("open")
        def flush() -> None:
            while self._unsent:
                channel.send(self._unsent.popleft())

        @channel.on("message")
        def on_message(message) -> None:
            reply = (
                self.feed.control(message)
                if isinstance(message, str)
                else {"type": "error", "code": "bad_message", "message": "controls are JSON text, not binary"}
            )
            if reply is not None:
                self.emit(reply)

        if channel.readyState == "open":
            flush()

    def _run_ended(self, reason: str) -> None:
        if not self.closed.is_set():
            self.emit({"type": "session.ended", "reason": reason})
            self._tasks.append(asyncio.ensure_future(self.close()))

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    async def _watch(self) -> None:
        """Close a peer that never connects, or whose microphone has gone silent (the tab is gone)."""
        opened = time.monotonic()
        while not self.closed.is_set():
            await asyncio.sleep(min(1.0, self.config.silent_timeout_s / 4))
            now = time.monotonic()
            if self.pc.connectionState != "connected":
                if now - opened > self.config.connect_timeout_s:
                    await self.close()
            elif now - self.feed.last_heard > self.config.silent_timeout_s:
                self.emit(
                    {
                        "type": "error",
                        "code": "peer_silent",
                        "message": f"no microphone packets for "
                        f"{self.config.silent_timeout_s:g} s: the connection is closed",
                    }
                )
                await self.close()

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if self.feed is not None:
            self.feed.close()
            self.run.detach(self.feed)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self.pc.close()
        self._on_closed(self)
