"""Streaming MP4 writer: frames are encoded as they arrive, the input audio is muxed alongside.

The file is written as fragmented MP4 under a temporary name in the target folder: memory stays
flat whatever the length, a run that is killed still leaves a playable prefix, and only a run that
finishes renames it to the requested name. A fragment is cut at least every half second (not only
at keyframes, every 2 s), so the growing file can be played while it is written (`liveavatar serve`:
its first half second is on disk once about 24 frames went in, 13 and x264's look-ahead) and a killed run
loses at most about half a second. A run that fails part-way keeps what it finished as
``<name>.partial.mp4``, so nothing that looks complete is ever left behind.

Sync: video frame ``i`` is stamped ``i / fps`` and input audio sample ``k`` is stamped
``k / rate``, both from 0. The AAC encoder puts 1024 priming samples before sample 0; they are
stamped before 0 and the muxer writes an edit list that skips them (as for any MP4 ffmpeg makes),
and the video has no B-frames so its first frame needs no decode delay. Players that honour edit
lists (ffmpeg/PyAV, browsers) then show frame 0 with the input's first sample, at every rate.

Video is encoded in segments (:meth:`VideoWriter.end_segment`), each by a fresh H.264 encoder
starting with an IDR frame and without B-frames: a segment's packets depend on its own frames
only, so a resumed run that copies the finished segments' packets and encodes the rest gives the
same decoded frames as an uninterrupted run (see ``media/continuation.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

AAC_FRAME = 1024
KEYFRAME_INTERVAL_S = 2
# longest fragment: what a reader of the growing file waits for at most. Half a second: the first
# frame reaches a live viewer 13 frames sooner than with 1 s, for ~220 bytes of headers per fragment
# (0.4 % of the sample's 512*512 video)
FRAGMENT_US = 500_000


def partial_path(path: Path) -> Path:
    return path.with_name(path.stem + ".partial" + path.suffix)


def temp_path(path: Path, pid: int | None = None) -> Path:
    """The hidden name a run writes to: ``.<stem>.<pid>.tmp.mp4`` (the pid lets a later run see it is stale)."""
    return path.with_name(f".{path.stem}.{os.getpid() if pid is None else pid}.tmp{path.suffix}")


def container_options(fragment_us: int = FRAGMENT_US) -> dict[str, str]:
    """Fragmented MP4 (a killed run leaves a playable prefix) that still carries edit lists.

    ``delay_moov`` writes the header once the first fragment's timestamps are known, which is
    what lets ``use_editlist`` mark the AAC priming to be skipped. A fragment is cut at every
    keyframe and at least every FRAGMENT_US, and ``flush_packets`` writes each to the file when it
    is cut, so a run killed with SIGKILL loses at most about FRAGMENT_US (plus the encoder's look-ahead).
    """
    return {
        "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
        "frag_duration": str(fragment_us),
        "use_editlist": "1",
        "flush_packets": "1",
    }


def video_pts(frame_index: int) -> int:
    """Frame ``i`` presents at ``i / fps`` (stream time base ``1 / fps``)."""
    return frame_index


def audio_pts(sample_index: int) -> int:
    """Input sample ``k`` presents at ``k / rate`` (time base ``1 / rate``); priming comes before 0."""
    return sample_index


def audio_samples_for(frames: int, fps: int, rate: int) -> int:
    """Audio samples that cover ``frames`` video frames exactly."""
    return frames * rate // fps


def h264_encoder(width: int, height: int, fps: int, gop_size: int, options: dict[str, str]):
    """A fresh libx264 encoder for one segment: it opens with an IDR frame (``options``: x264's)."""
    import av

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, fps), Fraction(fps)
    encoder.gop_size = gop_size
    encoder.options = dict(options)
    return encoder


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
        work_path: Path | None = None,
        comment: str | None = None,
    ) -> None:
        import av

        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0
        self._tmp = work_path or temp_path(path)
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options=container_options())
        if comment is not None:  # the MP4's comment tag (the pipeline keeps the run's settings there)
            self._container.metadata["comment"] = comment
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.gop_size = fps * KEYFRAME_INTERVAL_S
        # no B-frames: dts == pts, so a fresh encoder per segment keeps the timestamps monotonic
        self._x264 = {"crf": str(crf), "preset": preset, "x264-params": "bframes=0"}
        # the stream's own encoder is never fed: it only gives the header the segments' SPS/PPS
        self._video.options = dict(self._x264)
        self._encoder = None  # the current segment's encoder
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

        from liveavatar.media.audio import iter_audio

        with av.open(str(audio_path)) as probe:
            in_ctx = probe.streams.audio[0].codec_context
            rate, channels = in_ctx.sample_rate or 16000, in_ctx.channels or 1
        self._layout = "stereo" if channels == 2 else "mono"  # surround speech is averaged to mono
        self._audio = self._container.add_stream("aac", rate=rate)
        self._audio.layout = self._layout
        self._audio.bit_rate = 128_000 if self._layout == "stereo" else 96_000
        self._audio_rate = rate
        self._audio_fifo = av.AudioFifo()
        self._audio_source = iter_audio(audio_path, rate, self._layout)

    def write(self, frames: np.ndarray) -> None:
        """Append ``[n, H, W, 3]`` uint8 RGB frames (or one ``[H, W, 3]`` frame)."""
        import av

        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 frames [n, {self.height}, {self.width}, 3], got {frames.dtype} {frames.shape}"
            )
        encoder = self._encoder or self._start_segment()
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = video_pts(self.frames_written)
            self._mux_video(encoder.encode(video_frame))
            self.frames_written += 1
        self._mux_audio_until(
            audio_samples_for(self.frames_written, self.fps, self._audio_rate) if self._audio_fifo else 0
        )

    def _fill_fifo(self, target: int) -> None:
        import av

        while self._audio_source is not None and self._audio_samples_written + self._audio_fifo.samples < target:
            block = next(self._audio_source, None)
            if block is None:
                self._audio_source = None
                break
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block, dtype=np.float32), format="fltp", layout=self._layout
            )
            frame.sample_rate = self._audio_rate
            self._audio_fifo.write(frame)

    def _start_segment(self):
        """A fresh encoder, set up as the stream's: the segment opens with an IDR frame."""
        self._encoder = h264_encoder(self.width, self.height, self.fps, self._video.codec_context.gop_size, self._x264)
        return self._encoder

    def _mux_video(self, packets) -> None:
        for packet in packets:
            packet.stream = self._video
            self._container.mux(packet)

    def end_segment(self) -> None:
        """Flush the current segment's encoder; the next frame starts a new segment."""
        if self._encoder is not None:
            self._mux_video(self._encoder.encode(None))
            self._encoder = None

    # -- continuing an interrupted run (kept apart from the encoding above) -------------------

    def copy_finished(self, source: Path, segment_ends: list[int]) -> None:
        """Start with the first ``segment_ends[-1]`` frames of ``source`` (an interrupted run's file).

        Their packets are copied unchanged, segment by segment; the input audio is encoded from its
        start alongside, exactly as the interrupted run fed it, so the audio packets are the same too.
        """
        import av

        from liveavatar.media.continuation import annexb_frames_before

        if self.frames_written:
            raise RuntimeError("copy_finished must come before any frame is written")
        ends = iter(segment_ends)
        end = next(ends, None)
        for data, idr in annexb_frames_before(source, segment_ends[-1] if segment_ends else 0):
            packet = av.Packet(data)
            packet.pts = packet.dts = self.frames_written
            packet.time_base = Fraction(1, self.fps)
            packet.is_keyframe = idr
            packet.stream = self._video
            self._container.mux(packet)
            self.frames_written += 1
            if self.frames_written == end:
                self._mux_audio_until(audio_samples_for(end, self.fps, self._audio_rate) if self._audio_fifo else 0)
                end = next(ends, None)
        if end is not None:
            raise RuntimeError(f"{source} holds {self.frames_written} whole frames, {segment_ends[-1]} were expected")

    def discard(self) -> None:
        """Close and delete the file being written (a continuation that did not get far)."""
        try:
            self._close_container()
        except Exception:
            pass
        self._tmp.unlink(missing_ok=True)

    def move_work(self, path: Path) -> None:
        """Give the file being written another name (it stays open; the rename is atomic)."""
        os.replace(self._tmp, path)
        self._tmp = path

    def _mux_audio_until(self, target: int, final: bool = False) -> None:
        """Encode the input audio up to sample ``target``; whole AAC frames only, unless ``final``."""
        if self._audio_fifo is None:
            return
        self._fill_fifo(target)
        while self._audio_fifo.samples > 0:
            take = min(AAC_FRAME, target - self._audio_samples_written, self._audio_fifo.samples)
            if take <= 0 or (take < AAC_FRAME and not final):
                break
            chunk = self._audio_fifo.read(take)
            chunk.pts = audio_pts(self._audio_samples_written)
            chunk.time_base = Fraction(1, self._audio_rate)
            self._container.mux(self._audio.encode(chunk))
            self._audio_samples_written += take

    def _close_container(self) -> None:
        if self._audio_fifo is not None:
            self._mux_audio_until(audio_samples_for(self.frames_written, self.fps, self._audio_rate), final=True)
        self.end_segment()
        if self._audio_fifo is not None:
            self._container.mux(self._audio.encode(None))
            self._audio_source = None
        self._container.close()

    def finish(self) -> Path:
        """Flush, close and move the finished video to its final name."""
        self._close_container()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> Path | None:
        """Close what was written; keep it as ``*.partial.mp4`` (never replacing a file) if it holds any frame."""
        try:
            self._close_container()
        except Exception:  # the container may be unusable after the failure that got us here
            pass
        if self.frames_written == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        if self._tmp == partial_path(self.path):  # written in place (a resumable run): it stays
            return self._tmp
        return keep_as_partial(self._tmp, self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def keep_as_partial(tmp: Path, path: Path) -> Path:
    """Rename ``tmp`` to ``<name>.partial.mp4`` (``.partial-2.mp4``... if taken); ``tmp`` itself if renaming fails."""
    base = partial_path(path)
    for n in range(1, 1000):
        kept = base if n == 1 else base.with_name(f"{path.stem}.partial-{n}{path.suffix}")
        try:
            os.link(tmp, kept)  # fails if the name exists: an earlier partial is never replaced
        except FileExistsError:
            continue
        except OSError:  # no hard links here (or the disk is full): a plain rename to a free name
            if kept.exists():
                continue
            try:
                os.replace(tmp, kept)
            except OSError:
                return tmp
            return kept
        tmp.unlink(missing_ok=True)
        return kept
    return tmp
