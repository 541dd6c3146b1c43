"""What every engine's live session shares: one timeline, the speech queue, barge-in, events.

It lives beside the Engine protocol, not in ``live/``, so the engines never import the transports'
package (``live/`` imports the engines, not the other way round); ``liveavatar.live.session`` is its
public name.

The timeline is a grid of frames at ``fps``; frame ``i`` shows audio samples
``[i * spf, (i + 1) * spf)`` (``spf = sample_rate / fps``, 640 at 16 kHz and 25 fps). Every call of
:meth:`Session.next_block` appends exactly ``maker.block_frames`` frames and their audio, so the
video and the audio track never drift apart and never stop: when no speech is ready the block is a
listening block (silent audio, mouth closed, the engine's idle motion).

Speech is played in utterances. An utterance starts at a block boundary and ends where its last
sample is (``end_of_speech``), the rest of that block being silence; the queue therefore comes out
sample for sample, with silence only between utterances and where the speech ran dry mid-utterance
(a stall: after ``stall_flush_s`` of it the queued tail is played without waiting for lookahead).

Thread use: the push/clear/end calls may come from one thread (a transport's event loop) while
``next_block`` runs in another; the queue is guarded by a lock that ``make`` runs outside of.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from liveavatar.engines.base import LiveBlock
from liveavatar.sizing import AUDIO_SAMPLE_RATE, FPS


@dataclass(frozen=True)
class SessionOptions:
    sample_rate: int = AUDIO_SAMPLE_RATE  # what push_audio takes by default and what blocks carry
    fps: int = FPS
    max_queued_s: float = 120.0  # speech queued beyond this is refused (an `error` event), never buffered
    stall_flush_s: float = 0.3  # speech ran dry mid-utterance this long: play the queued tail anyway
    max_events: int = 256  # events not polled beyond this are dropped, oldest first
    speed_window: int = 8  # blocks over which the production speed is judged


class BlockMaker(Protocol):
    """The engine's part of a live session: frames for a block of the timeline, given its audio."""

    width: int
    height: int
    block_frames: int  # frames per block (the session always asks for exactly this many)
    lookahead_samples: int  # audio after a block's end the engine needs (at the session's rate)

    def make(self, audio: np.ndarray, speech: np.ndarray, start_frame: int) -> np.ndarray:
        """uint8 RGB ``[len(speech), H, W, 3]``.

        ``audio``: float32, the block's samples followed by ``lookahead_samples`` more (the speech
        that follows, or silence where none is known yet); ``speech``: bool per frame, False where
        the avatar listens (the frame's audio is silence).
        """
        ...

    def expected_block_s(self) -> float | None:
        """Seconds one block is expected to take on this machine, when known before any is made."""
        ...

    def keep_up_offer(self, block_s: float) -> dict:
        """What would keep up with real time when a block takes ``block_s`` (smaller size, fewer steps)."""
        ...

    def close(self) -> None: ...


@dataclass
class _Utterance:
    chunks: deque = field(default_factory=deque)  # float32 arrays, oldest first
    queued: int = 0  # samples waiting
    played: int = 0  # samples already on the timeline
    ended: bool = False  # end_of_speech was called: no lookahead wait for the tail

    def take(self, n: int) -> np.ndarray:
        out, got = [], 0
        while got < n and self.chunks:
            head = self.chunks[0]
            part = head[: n - got]
            out.append(part)
            got += len(part)
            if len(part) == len(head):
                self.chunks.popleft()
            else:
                self.chunks[0] = head[len(part) :]
        self.queued -= got
        self.played += got
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def peek(self, n: int) -> np.ndarray:
        out, got = [], 0
        for chunk in self.chunks:
            if got >= n:
                break
            out.append(chunk[: n - got])
            got += len(out[-1])
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 or float mono PCM -> float32 in [-1, 1] (int16 / 32768: exact both ways)."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        pcm = pcm.reshape(-1)
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind != "f":
        raise ValueError(f"audio must be int16 or float mono PCM, got {pcm.dtype}")
    out = pcm.astype(np.float32, copy=True)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(out, -1.0, 1.0, out=out)


class StreamResampler:
    """PyAV's resampler (the one ``media.audio`` decodes with) run chunk by chunk: no seams."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        import av

        self.rate_in = rate_in
        self._av = av
        self._r = av.AudioResampler(format="flt", layout="mono", rate=rate_out)

    def _frames(self, frames) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate_in
        return self._frames(self._r.resample(frame))

    def flush(self) -> np.ndarray:
        return self._frames(self._r.resample(None))


class Session:
    """A live session over one engine's :class:`BlockMaker` (implements ``engines.base.LiveSession``)."""

    def __init__(self, maker: BlockMaker, options: SessionOptions = SessionOptions(), engine: str = "") -> None:
        if options.sample_rate % options.fps:
            raise ValueError(f"the sample rate {options.sample_rate} is not a whole number of samples per frame")
        self.maker = maker
        self.options = options
        self.engine = engine
        self.fps = options.fps
        self.sample_rate = options.sample_rate
        self.width, self.height = maker.width, maker.height
        self.spf = options.sample_rate // options.fps
        self.lookahead_ms = 1000.0 * maker.lookahead_samples / options.sample_rate
        self.frames_made = 0
        self.speech_samples_played = 0
        self.closed = False
        self._lock = threading.Lock()
        self._queue: deque[_Utterance] = deque()
        self._resampler: StreamResampler | None = None
        self._events: deque[dict] = deque(maxlen=options.max_events)
        self._idle_run = 0  # frames made in a row while speech was queued but not ready (a stall)
        self._current: _Utterance | None = None  # the utterance on the timeline (started playing)
        self._block_s: deque[float] = deque(maxlen=options.speed_window)
        self._lagging: bool | None = None
        self._emit(
            "session.started",
            width=self.width,
            height=self.height,
            fps=self.fps,
            sample_rate=self.sample_rate,
            block_frames=maker.block_frames,
            lookahead_ms=self.lookahead_ms,
        )
        expected = maker.expected_block_s()
        if expected is not None:
            self._judge_speed(expected, source="expected")

    # --- the transport's side ---------------------------------------------------------------
    @property
    def block_frames(self) -> int:
        return self.maker.block_frames

    @property
    def seconds_shown(self) -> float:
        return self.frames_made / self.fps

    @property
    def speech_seconds_played(self) -> float:
        return self.speech_samples_played / self.sample_rate

    @property
    def queued_seconds(self) -> float:
        with self._lock:
            return sum(u.queued for u in self._queue) / self.sample_rate

    def push_audio(self, pcm: np.ndarray, sample_rate: int | None = None) -> None:
        """Queue speech (int16 or float mono) at ``sample_rate`` (default: the session's; others resampled)."""
        samples = to_float(pcm)
        rate = sample_rate or self.sample_rate
        if rate != self.sample_rate:
            if self._resampler is None or self._resampler.rate_in != rate:
                tail = self._resampler.flush() if self._resampler is not None else None
                if tail is not None:
                    self._enqueue(tail)
                self._resampler = StreamResampler(rate, self.sample_rate)
            samples = self._resampler.push(samples)
        elif self._resampler is not None:  # back at the session's rate: the resampler's tail goes first
            self._enqueue(self._resampler.flush())
            self._resampler = None
        self._enqueue(samples)

    def _enqueue(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        with self._lock:
            room = int(self.options.max_queued_s * self.sample_rate) - sum(u.queued for u in self._queue)
            if len(samples) > room:
                self._emit(
                    "error",
                    code="speech_queue_full",
                    message=f"more than {self.options.max_queued_s:g} s of speech queued: "
                    f"{(len(samples) - max(room, 0)) / self.sample_rate:.2f} s dropped; push in real time",
                )
                samples = samples[: max(room, 0)]
                if not len(samples):
                    return
            if not self._queue or self._queue[-1].ended:
                self._queue.append(_Utterance())
            u = self._queue[-1]
            u.chunks.append(samples)
            u.queued += len(samples)

    def end_of_speech(self) -> None:
        """The utterance being pushed is complete: its tail plays without waiting for lookahead."""
        if self._resampler is not None:
            tail = self._resampler.flush()
            self._resampler = None
            self._enqueue(tail)
        with self._lock:
            if self._queue and not self._queue[-1].ended:
                self._queue[-1].ended = True  # all of it played already: it finishes at the next block

    def clear(self) -> float:
        """Barge-in: drop queued speech; the next block listens. Returns the seconds of the utterance shown."""
        self._resampler = None
        with self._lock:
            current = self._current
            dropped = bool(self._queue)
            self._queue.clear()
            self._current = None
            self._idle_run = 0
            if current is None:
                if dropped:
                    self._emit("playback.finished", position_s=0.0, interrupted=True)
                return 0.0
            position = current.played / self.sample_rate
            self._emit("playback.finished", position_s=round(position, 4), interrupted=True)
            return position

    def poll_events(self) -> list[dict]:
        """Events since the last poll, oldest first: session.started, speech.started,
        playback.finished {position_s, interrupted}, lagging, error {code, message}."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
            return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self._lock:
                self._queue.clear()
            self.maker.close()

    # --- making blocks ----------------------------------------------------------------------
    def next_block(self) -> LiveBlock:
        """The next ``block_frames`` frames: speech when enough has arrived (or its utterance ended),
        else listening frames. Never waits."""
        if self.closed:
            raise RuntimeError("the live session is closed")
        n = self.maker.block_frames
        audio, speech, speaking = self._take_block(n)
        start = self.frames_made
        t0 = time.perf_counter()
        frames = self.maker.make(audio, speech, start)
        self._judge_speed(time.perf_counter() - t0, source="measured")
        self.frames_made += n
        return LiveBlock(frames=frames, audio=audio[: n * self.spf], start_frame=start, speaking=speaking)

    def _take_block(self, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
        need, ahead = n * self.spf, self.maker.lookahead_samples
        audio = np.zeros(need + ahead, np.float32)
        speech = np.zeros(n, bool)
        with self._lock:
            u = self._queue[0] if self._queue else None
            stalled = self._idle_run >= self.options.stall_flush_s * self.fps
            ready = u is not None and u.queued > 0 and (u.ended or stalled or u.queued >= need + ahead)
            if not ready:
                if u is not None and u.ended and u.queued == 0:  # ended with everything already played
                    self._finish(self._queue.popleft())
                self._idle_run = self._idle_run + n if u is not None and u.queued > 0 else 0
                return audio, speech, False
            self._idle_run = 0
            if u.played == 0:
                self._current = u
                self._emit("speech.started", at_s=round(self.frames_made / self.fps, 4))
            got = u.take(need)
            audio[: len(got)] = got
            look = u.peek(ahead)
            audio[need : need + len(look)] = look
            speech[: -(-len(got) // self.spf)] = True
            self.speech_samples_played += len(got)
            if u.ended and u.queued == 0:
                self._finish(self._queue.popleft())
            return audio, speech, True

    def _finish(self, u: _Utterance) -> None:
        self._emit("playback.finished", position_s=round(u.played / self.sample_rate, 4), interrupted=False)
        if self._current is u:
            self._current = None

    def _judge_speed(self, block_s: float, source: str) -> None:
        """Say when making a block takes longer than the block lasts (and again when that changes)."""
        realtime = self.maker.block_frames / self.fps
        if source == "measured":
            self._block_s.append(block_s)
            if len(self._block_s) < min(3, self.options.speed_window):
                return
            block_s = float(np.median(self._block_s))
        lagging = block_s > realtime
        if lagging == self._lagging:
            return
        first, self._lagging = self._lagging is None, lagging
        if first and not lagging:
            return  # fast enough from the start: nothing to say
        extra = {"offer": self.maker.keep_up_offer(block_s)} if lagging else {"recovered": True}
        with self._lock:
            self._emit(
                "lagging",
                s_per_block=round(block_s, 4),
                realtime_s_per_block=realtime,
                speed=round(realtime / block_s, 4),
                source=source,
                **extra,
            )

    def _emit(self, kind: str, **fields) -> None:
        # callers hold the lock, or run before any other thread knows the session
        self._events.append({"type": kind, **fields})
