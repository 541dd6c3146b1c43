"""A live timeline (frames + the audio they show) as the bytes of one fragmented MP4, as they are cut.

The file writer's container (``writer.container_options``: fragmented, edit lists for the AAC
priming) and its H.264 segments (``writer.h264_encoder``: each opens with an IDR frame, no
B-frames), written to memory instead of a file, with fragments of a few frames and x264 tuned for
zero latency, so a fragment leaves as soon as its frames exist. A viewer that cannot keep up gets
frames dropped (:meth:`FragmentMuxer.skip`): the next frame starts a fresh segment, so what follows
decodes without the frames it never got.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from liveavatar.media.writer import AAC_FRAME, KEYFRAME_INTERVAL_S, container_options, h264_encoder

# x264 for live: no look-ahead and no frame threads, so each frame's packet comes out as it goes in
LIVE_X264 = {"crf": "23", "preset": "veryfast", "tune": "zerolatency", "x264-params": "bframes=0"}


class _Collect:
    """A write-only file for the muxer (no seek: libavformat then writes strictly forwards)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class FragmentMuxer:
    """Feed blocks of one timeline with :meth:`add`; each call returns the MP4 bytes cut so far.

    The first bytes are the init segment (``ftyp`` + ``moov``), then ``moof`` + ``mdat`` fragments of
    about ``fragment_frames`` frames. Timestamps count from the first frame given (the muxer's time
    zero), so a viewer that joins a running session starts its own file at 0.
    """

    def __init__(self, width: int, height: int, fps: int, sample_rate: int, fragment_frames: int = 2) -> None:
        import av

        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._out = _Collect()
        options = container_options(fragment_us=fragment_frames * 1_000_000 // fps)
        # libavformat holds packets back to interleave the tracks unless told not to wait
        options["max_interleave_delta"] = "1"
        self._container = av.open(self._out, mode="w", format="mp4", options=options)
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._video.codec_context.gop_size = fps * KEYFRAME_INTERVAL_S
        self._video.options = dict(LIVE_X264)
        self._audio = self._container.add_stream("aac", rate=sample_rate)
        self._audio.layout = "mono"
        self._audio.bit_rate = 64_000
        self._fifo = av.AudioFifo()
        self._encoder = None
        self._origin: int | None = None  # timeline frame shown at the file's time 0
        self._next_frame = 0  # file frame index of the next frame
        self._audio_next = 0  # file sample index of the next sample fed to the AAC encoder
        self.frames_written = 0

    def add(self, frames: np.ndarray, audio: np.ndarray, start_frame: int) -> bytes:
        """Append ``frames`` (uint8 RGB ``[n, H, W, 3]``) shown from timeline frame ``start_frame``
        with ``audio`` (float32 mono, n / fps seconds); the bytes of the fragments finished so far."""
        import av

        if self._origin is None:
            self._origin = start_frame
        first = start_frame - self._origin
        if first != self._next_frame:  # frames were skipped: the timeline jumps, both tracks with it
            self._jump(first)
        encoder = self._encoder or self._new_segment()
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = first + i
            self._mux(encoder.encode(picture), self._video)
        self._next_frame = first + len(frames)
        self.frames_written += len(frames)
        self._feed_audio(audio)
        return self._out.take()

    def skip(self) -> None:
        """The caller dropped frames: the next frame begins a fresh segment (an IDR frame)."""
        self._end_segment()

    def close(self) -> bytes:
        """Flush both encoders and the last fragment; the remaining bytes."""
        try:
            self._end_segment()
            self._encode_audio(final=True)
            self._mux(self._audio.encode(None), self._audio)
        finally:
            self._container.close()
        return self._out.take()

    def _new_segment(self):
        self._encoder = h264_encoder(self.width, self.height, self.fps, self._video.codec_context.gop_size, LIVE_X264)
        return self._encoder

    def _end_segment(self) -> None:
        if self._encoder is not None:
            self._mux(self._encoder.encode(None), self._video)
            self._encoder = None

    def _jump(self, first: int) -> None:
        self._end_segment()
        self._fifo = type(self._fifo)()  # the skipped frames' audio is not played either
        self._audio_next = first * self.sample_rate // self.fps

    def _feed_audio(self, audio: np.ndarray) -> None:
        import av

        samples = np.ascontiguousarray(np.asarray(audio, np.float32).reshape(1, -1))
        if samples.shape[1]:
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = self.sample_rate
            self._fifo.write(frame)
        self._encode_audio(final=False)

    def _encode_audio(self, final: bool) -> None:
        while self._fifo.samples >= AAC_FRAME or (final and self._fifo.samples):
            chunk = self._fifo.read(min(AAC_FRAME, self._fifo.samples))
            chunk.pts = self._audio_next
            chunk.time_base = Fraction(1, self.sample_rate)
            self._audio_next += chunk.samples
            self._mux(self._audio.encode(chunk), self._audio)

    def _mux(self, packets, stream) -> None:
        for packet in packets:
            packet.stream = stream
            self._container.mux(packet)
