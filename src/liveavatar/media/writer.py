"""Streaming MP4 writer: frames are encoded as they arrive, the input audio is muxed alongside.

The file is written as fragmented MP4 under a temporary name in the target folder: memory stays
flat whatever the length, a run that is killed still leaves a playable prefix, and only a run that
finishes renames it to the requested name. A fragment is cut at least every second (not only at
keyframes, every 2 s), so the growing file can be played while it is written (`liveavatar serve`). A run that fails part-way keeps what it finished as
``<name>.partial.mp4``, so nothing that looks complete is ever left behind.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

AAC_FRAME = 1024
KEYFRAME_INTERVAL_S = 2
FRAGMENT_US = 1_000_000  # longest fragment: what a reader of the growing file waits for at most


def partial_path(path: Path) -> Path:
    return path.with_name(path.stem + ".partial" + path.suffix)


class VideoWriter:
    """Encode uint8 RGB frames to H.264 yuv420p at ``fps`` with the audio of ``audio_path`` as AAC.

    The audio is trimmed to the video's length. Use as a context manager, or call
    :meth:`finish` on success and :meth:`abort` on failure.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: int,
        audio_path: Path | None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        import av

        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0
        self._tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        self._container = av.open(
            str(self._tmp),
            mode="w",
            format="mp4",
            # flush_packets: each fragment reaches the file when it is cut, not when an I/O buffer fills
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": str(FRAGMENT_US), "flush_packets": "1"},
        )
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.gop_size = fps * KEYFRAME_INTERVAL_S
        self._video.options = {"crf": str(crf), "preset": preset}
        self._audio_source: Iterator | None = None
        self._audio_fifo = None
        self._audio_samples_written = 0
        if audio_path is not None:
            self._open_audio(audio_path)

    @property
    def growing_path(self) -> Path:
        """The file being written: a playable fragmented MP4 prefix until finish() renames it."""
        return self._tmp

    def _open_audio(self, audio_path: Path) -> None:
        import av

        self._audio_in = av.open(str(audio_path))
        in_stream = self._audio_in.streams.audio[0]
        rate = in_stream.codec_context.sample_rate or 16000
        layout = "mono" if (in_stream.codec_context.channels or 1) == 1 else "stereo"
        self._audio = self._container.add_stream("aac", rate=rate)
        self._audio.layout = layout
        self._audio.bit_rate = 128_000 if layout == "stereo" else 96_000
        self._audio_rate = rate
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._audio_fifo = av.AudioFifo()
        self._audio_source = self._audio_in.decode(in_stream)

    def write(self, frames: np.ndarray) -> None:
        """Append ``[n, H, W, 3]`` uint8 RGB frames (or one ``[H, W, 3]`` frame)."""
        import av

        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [n, {self.height}, {self.width}, 3], got {frames.dtype} {frames.shape}")
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = self.frames_written
            self._container.mux(self._video.encode(video_frame))
            self.frames_written += 1
        self._mux_audio_until(self.frames_written / self.fps)

    def _mux_audio_until(self, seconds: float, final: bool = False) -> None:
        """Encode the input audio up to ``seconds``; whole AAC frames only, unless ``final``."""
        if self._audio_fifo is None:
            return
        target = int(round(seconds * self._audio_rate))
        while self._audio_source is not None and self._audio_samples_written + self._audio_fifo.samples < target:
            decoded = next(self._audio_source, None)
            for out in self._resampler.resample(decoded):
                out.pts = None
                self._audio_fifo.write(out)
            if decoded is None:
                self._audio_source = None
        while self._audio_fifo.samples > 0:
            take = min(AAC_FRAME, target - self._audio_samples_written, self._audio_fifo.samples)
            if take <= 0 or (take < AAC_FRAME and not final):
                break
            chunk = self._audio_fifo.read(take)
            chunk.pts = self._audio_samples_written
            chunk.time_base = Fraction(1, self._audio_rate)
            self._container.mux(self._audio.encode(chunk))
            self._audio_samples_written += take

    def _close_container(self) -> None:
        self._mux_audio_until(self.frames_written / self.fps, final=True)
        self._container.mux(self._video.encode(None))
        if self._audio_fifo is not None:
            self._container.mux(self._audio.encode(None))
            self._audio_in.close()
        self._container.close()

    def finish(self) -> Path:
        """Flush, close and move the finished video to its final name."""
        self._close_container()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> Path | None:
        """Close what was written; keep it as ``*.partial.mp4`` if it holds any frame."""
        try:
            self._close_container()
        except Exception:  # the container may be unusable after the failure that got us here
            pass
        if self.frames_written == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        kept = partial_path(self.path)
        os.replace(self._tmp, kept)
        return kept

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
