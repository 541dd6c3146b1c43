"""The avatar's two outgoing WebRTC tracks (video and the speech it shows) on ONE clock, fed by a
live run (the server's pacer makes each block when it is due), and the microphone going in.

Lip-sync: aiortc stamps each RTP packet with its frame's timestamp and maps RTP time to wall time
(RTCP sender reports) when the packet leaves; both tracks release frame ``i`` / sample ``s`` at
``t0 + i / fps`` / ``t0 + s / rate`` of the same ``t0``, so the receiver lines them up. ``t0`` is set
``lead_s`` after the first block arrives: the margin for the next blocks' making and hand-over.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from liveavatar.live.vad import GateConfig, UtteranceGate

VIDEO_CLOCK = 90_000
AUDIO_PTIME_S = 0.020
QUEUE_S = 2.0  # at most this much made-but-unsent media per track; more is dropped with an event
Emit = Callable[[dict], None]


class LiveBlock(Protocol):
    """What the feed reads of a block (``engines.base.LiveBlock``; named here, not imported: the
    transports stay below the engines in the import graph)."""

    frames: np.ndarray
    audio: np.ndarray
    start_frame: int
    speaking: bool


class Clock(Protocol):
    """What the feed reads of the session (``engines.base.LiveSession``)."""

    fps: int
    sample_rate: int


class Run(Protocol):
    """What the transport uses of a live run (``live.runner.LiveRun``): the session, paced for us."""

    session: Clock

    def attach(self, viewer) -> None: ...

    def detach(self, viewer) -> None: ...

    def push_audio(self, pcm: np.ndarray) -> None: ...

    def end_of_speech(self) -> None: ...

    def clear(self) -> float: ...

    def view(self) -> dict:
        """The API object; ``connected``: a viewer (WebSocket or WebRTC) is attached."""
        ...


def pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)


class AvatarFeed:
    """A viewer of one run: blocks in (from the pacer's thread), two clocked track queues out, the
    microphone's speech and the data channel's controls back to the run."""

    def __init__(self, run: Run, emit: Emit, on_ended: Callable[[str], None], lead_s: float = 0.06) -> None:
        self.run, self.emit, self.on_ended, self.lead_s = run, emit, on_ended, lead_s
        self.fps, self.rate = run.session.fps, run.session.sample_rate
        self.loop = asyncio.get_running_loop()
        self.video: asyncio.Queue = asyncio.Queue(maxsize=int(QUEUE_S * self.fps))
        self.audio: asyncio.Queue = asyncio.Queue(maxsize=int(QUEUE_S / AUDIO_PTIME_S))
        self.t0: float | None = None  # time.monotonic() at which timeline frame 0 is sent
        self.started = asyncio.Event()
        self._pcm = np.zeros(0, np.int16)
        self._audio_pos: int | None = None  # timeline sample of the next 20 ms audio frame
        self._marks: dict[int, list[dict]] = {}  # frame index -> events sent with that frame
        self._pending: list[dict] = []  # events that describe the next block
        self._heard_at: deque[float] = deque(maxlen=8)  # arrival of each pending utterance's first sample
        self._drop_utterance = False
        self.last_heard = time.monotonic()  # the last microphone frame (a live track sends even silence)
        self.closed = False

    # --- the Viewer side (called on the run's pacer thread: hand over, never block) ---------
    def block(self, block: LiveBlock) -> None:
        self.loop.call_soon_threadsafe(self._take, block, time.monotonic())

    def event(self, event: dict) -> None:
        self.loop.call_soon_threadsafe(self._event, event)

    def ended(self, reason: str) -> None:
        self.loop.call_soon_threadsafe(self.on_ended, reason)

    # --- the clock -------------------------------------------------------------------------
    async def wait_until(self, timeline_s: float) -> None:
        await self.started.wait()
        delay = self.t0 + timeline_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _take(self, block: LiveBlock, arrived: float) -> None:
        if self.closed:
            return
        if self.t0 is None:
            self.t0 = arrived + self.lead_s - block.start_frame / self.fps
            self._audio_pos = block.start_frame * self.rate // self.fps
            self.started.set()
        late = arrived - (self.t0 + block.start_frame / self.fps)
        if late > 1 / self.fps:  # a frame late or more: move the one clock, both tracks keep in sync
            # (less is left to the receiver's jitter buffer: the block's audio and video go out together)
            self.t0 += late + self.lead_s / 2
            self.emit(
                {
                    "type": "lagging",
                    "source": "transport",
                    "behind_ms": round(1000 * late),
                    "at_s": block.start_frame / self.fps,
                }
            )
        elif -late > 2 * self.lead_s and not block.speaking:
            # more margin than needed since a slow patch: while the avatar listens, move the clock
            # back (what is queued goes out at once; the receiver's jitter buffer absorbs it), so a
            # moment of lateness does not add to every later utterance's latency
            self.t0 -= -late - self.lead_s
        self._route_events(block)
        for j, frame in enumerate(block.frames):
            self._put(self.video, (block.start_frame + j, frame), "video")
        self._pcm = np.concatenate([self._pcm, pcm16(block.audio)])
        n = round(AUDIO_PTIME_S * self.rate)
        while len(self._pcm) >= n:
            self._put(self.audio, (self._audio_pos, self._pcm[:n]), "audio")
            self._pcm, self._audio_pos = self._pcm[n:], self._audio_pos + n

    def _put(self, queue: asyncio.Queue, item, track: str) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:  # the encoder or the network cannot keep up: drop, never grow
            self.emit(
                {
                    "type": "frames_dropped",
                    "track": track,
                    "at_s": item[0] / (self.fps if track == "video" else self.rate),
                }
            )

    def _event(self, event: dict) -> None:
        if event.get("type") in ("speech.started", "playback.finished"):
            self._pending.append(event)  # the run sends a block's events just before the block
        else:
            self.emit(event)

    def _route_events(self, block: LiveBlock) -> None:
        """A block's speech events go out when the frame they describe is SENT, not when made."""
        end = block.start_frame + len(block.frames)
        for event in self._pending:
            if event["type"] == "speech.started":
                if self._heard_at:
                    event["heard_at"] = self._heard_at.popleft()
                self._marks.setdefault(block.start_frame, []).append(event)
            else:  # it ends after this block's speech, or (nothing left to show) where this block starts
                at = end if block.speaking and not event.get("interrupted") else block.start_frame
                self._marks.setdefault(at, []).append(event)
        self._pending = []

    def frame_sent(self, index: int) -> None:
        for event in self._marks.pop(index, ()):
            heard = event.pop("heard_at", None)
            if heard is not None:  # server side of mouth-to-ear: first sample in -> first frame showing it out
                event["server_latency_ms"] = round(1000 * (time.monotonic() - heard))
            self.emit(event)

    # --- speech in -------------------------------------------------------------------------
    def clear(self) -> None:
        # barge-in drops the utterance being spoken: the rest of it, still arriving from the
        # microphone, is not pushed either (the next utterance is, after the person pauses)
        self._drop_utterance = True
        self._heard_at.clear()
        self.run.clear()

    async def consume_mic(self, track) -> None:
        """The browser's microphone: resampled to the session's rate, gated by voice activity."""
        import av
        from aiortc.mediastreams import MediaStreamError

        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
        gate = UtteranceGate(GateConfig(sample_rate=self.rate))
        while not self.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            self.last_heard = time.monotonic()
            for piece in resampler.resample(frame):
                self._gate(gate, piece.to_ndarray().reshape(-1))
        if gate.speaking and not self.closed:  # the track ended mid-utterance: its tail plays
            self.run.end_of_speech()

    def _gate(self, gate: UtteranceGate, pcm: np.ndarray) -> None:
        for event in gate.feed(pcm):
            if event.kind == "start":
                self._drop_utterance = False
                self._heard_at.append(time.monotonic())
            elif self._drop_utterance:
                continue
            elif event.kind == "audio":
                if len(self._heard_at) and event.pcm is not None and len(event.pcm) > len(pcm):
                    # the pre-roll arrived earlier than now: date the utterance from its first sample
                    self._heard_at[-1] -= (len(event.pcm) - len(pcm)) / self.rate
                self.run.push_audio(event.pcm)
            else:
                self.run.end_of_speech()

    # --- controls from the data channel ----------------------------------------------------
    def control(self, message: str) -> dict | None:
        """A JSON control; returns the reply to send (``pong``, or an ``error`` for a bad message)."""
        try:
            body = json.loads(message)
            kind = body.get("type") if isinstance(body, dict) else None
        except (ValueError, TypeError):
            kind, body = None, None
        if kind == "clear":
            self.clear()
        elif kind == "end_of_speech":
            self.run.end_of_speech()
        elif kind == "ping":
            return {"type": "pong", "t": body.get("t"), "server_t": time.monotonic()}
        else:
            return {
                "type": "error",
                "code": "bad_message",
                "message": 'a control is JSON {"type": "clear" | "end_of_speech" | "ping"}',
            }
        return None

    def close(self) -> None:
        self.closed = True


def video_track(feed: AvatarFeed):
    from aiortc import MediaStreamTrack

    class AvatarVideo(MediaStreamTrack):
        kind = "video"

        async def recv(self):
            import av

            index, rgb = await feed.video.get()
            await feed.wait_until(index / feed.fps)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = index * VIDEO_CLOCK // feed.fps, fractions.Fraction(1, VIDEO_CLOCK)
            feed.frame_sent(index)
            return frame

    return AvatarVideo()


def audio_track(feed: AvatarFeed):
    from aiortc import MediaStreamTrack

    class AvatarAudio(MediaStreamTrack):
        kind = "audio"

        async def recv(self):
            import av

            position, pcm = await feed.audio.get()
            await feed.wait_until(position / feed.rate)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = feed.rate, position, fractions.Fraction(1, feed.rate)
            return frame

    return AvatarAudio()
