"""Reading back what an interrupted run left in its fragmented MP4, to continue it exactly.

A run killed at any instant leaves whole fragments followed by at most one torn one. The
packets of the whole fragments are copied into the continued file unchanged; nothing is
re-encoded, so the finished frames decode exactly as they did (each writer segment is encoded
by its own encoder, see ``media/writer.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def _video_packets(path: Path) -> Iterator:
    """The video packets of ``path`` in order, stopping at the first torn or unreadable one."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError):
        return
    with container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:  # the flush packet at the end
                    continue
                if packet.is_corrupt:
                    return
                yield packet
        except av.FFmpegError:  # a fragment cut short by the crash
            return


def finished_frames(path: Path, fps: int) -> int:
    """How many frames from the start of ``path`` are whole (0 if it is missing or unreadable)."""
    count = 0
    for packet in _video_packets(path):
        if round(float(packet.pts * packet.time_base) * fps) != count:
            break  # a gap: nothing after it can be trusted
        count += 1
    return count


def annexb_frames_before(path: Path, frames: int) -> Iterator[tuple[bytes, bool]]:
    """``(H.264 access unit in Annex B form, is an IDR frame)`` for the first ``frames`` frames.

    MP4 stores NAL units length-prefixed; the writer's stream is fed Annex B (what x264 emits,
    which the muxer converts back), so the copied units go through the same path as new ones.
    """
    for i, packet in enumerate(_video_packets(path)):
        if i >= frames:
            return
        yield avcc_to_annexb(bytes(packet))


def avcc_to_annexb(data: bytes) -> tuple[bytes, bool]:
    """4-byte length prefixes -> start codes; also whether the unit holds an IDR slice (type 5)."""
    out, i, idr = bytearray(), 0, False
    while i + 4 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        nal = data[i + 4 : i + 4 + size]
        if len(nal) != size or not nal:
            raise ValueError("a truncated H.264 unit")
        idr |= (nal[0] & 0x1F) == 5
        out += b"\x00\x00\x00\x01" + nal
        i += 4 + size
    return bytes(out), idr
