"""The video of a job as an HTTP body: the finished file (with Range) or the growing one, live.

While a job runs, the writer appends fragments (at least two per second) to a fragmented MP4;
the live body sends what exists and then follows the file until the job ends, so a browser's
<video> or PyAV plays it as it is made. The writer's final rename does not disturb a reader that
has the file open, and the job only turns terminal after the writer has closed the file, so
reading to the end after seeing a terminal status gets every byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from liveavatar.serve.job import TERMINAL, VIDEO, Job

POLL_S = 0.05
CHUNK = 256 * 1024


def finished_file(job: Job, folder: Path) -> Path | None:
    """The complete video, else the partial one kept when the job stopped part-way."""
    from liveavatar.media.writer import partial_path

    video = folder / VIDEO
    if job.status == "completed" and video.is_file():
        return video
    partial = partial_path(video)
    return partial if job.partial and partial.is_file() else None


async def live_body(job: Job, folder: Path, current: Callable[[], Job | None]) -> AsyncIterator[bytes]:
    """Bytes of the video as they are written; ends when the job does."""
    handle = None
    try:
        while handle is None:
            now = current()
            if now is None:
                return
            if now.status in TERMINAL:  # ended before we could follow it: send what it left
                path = finished_file(now, folder)
                if path is not None:
                    handle = open(path, "rb")
                    while chunk := handle.read(CHUNK):
                        yield chunk
                return
            if now.growing:
                try:
                    handle = open(now.growing, "rb")
                except FileNotFoundError:  # renamed just now: the status will say why
                    pass
            if handle is None:
                await asyncio.sleep(POLL_S)
        while True:
            ended = (now := current()) is None or now.status in TERMINAL  # read the status first, then the bytes
            while chunk := handle.read(CHUNK):
                yield chunk
            if ended:
                return
            await asyncio.sleep(POLL_S)
    finally:
        if handle is not None:
            handle.close()
