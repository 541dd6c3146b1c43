"""The WebSocket transport's parts without a server: the fragment muxer and the bounded send queue."""

from __future__ import annotations

import asyncio
import io
import json
from types import SimpleNamespace

import numpy as np

from liveavatar.engines.base import LiveBlock
from liveavatar.live.websocket import SocketViewer, parse_audio, parse_control
from liveavatar.media.fragments import FragmentMuxer

W = H = 64
SR, SPF = 16_000, 640


def block(start: int, n: int = 2, level: int = 100) -> LiveBlock:
    tone = 0.2 * np.sin(2 * np.pi * 300 * np.arange(start * SPF, (start + n) * SPF) / SR).astype(np.float32)
    return LiveBlock(frames=np.full((n, H, W, 3), level, np.uint8), audio=tone, start_frame=start, speaking=True)


def decode(data: bytes):
    import av

    with av.open(io.BytesIO(data)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    with av.open(io.BytesIO(data)) as c:
        audio = np.concatenate([np.zeros(0, np.float32)] + [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return times, audio


def test_fragments_leave_within_a_few_frames_and_a_skip_decodes_as_a_jump():
    muxer = FragmentMuxer(W, H, 25, SR, fragment_frames=2)
    data, waits, made = b"", [], 0
    for k in range(0, 40, 2):
        if k == 20:
            muxer.skip()  # frames 20..29 dropped: the timeline jumps and a fresh segment starts
            continue
        if 20 < k < 30:
            continue
        data += muxer.add(block(k).frames, block(k).audio, 100 + k)  # timeline frames from 100: the file starts at 0
        made += 2
        if data:
            waits.append(made - len(decode(data)[0]))  # frames made but not yet in the bytes
    data += muxer.close()
    times, audio = decode(data)
    assert times[0] == 0 and len(times) == 30
    assert np.allclose(np.diff(times[:20]), 0.04) and times[20] == 1.2  # the jump, then 25 fps again
    assert max(waits[3:]) <= 4  # after the start-up (AAC priming), a frame leaves within 4 frames
    assert len(audio) >= 1.1 * SR


def test_a_slow_client_loses_frames_not_memory():
    loop = asyncio.new_event_loop()
    session = SimpleNamespace(width=W, height=H, fps=25, sample_rate=SR)
    viewer = SocketViewer(loop, SimpleNamespace(session=session), fragment_frames=2, max_queued_s=0.4)
    for k in range(0, 200, 2):  # 8 s of video while nobody reads
        viewer.block(block(k))
    assert viewer._waiting_frames <= 10 and viewer.dropped >= 180
    sent = []

    class Socket:
        async def send_bytes(self, data):
            sent.append(data)

        async def send_text(self, text):
            sent.append(json.loads(text))

    viewer.ended("closed")
    loop.run_until_complete(viewer.pump(Socket()))
    loop.close()
    events = [m for m in sent if isinstance(m, dict)]
    assert events == [] or events[0]["type"] == "frames.dropped"
    times, _ = decode(b"".join(m for m in sent if isinstance(m, bytes)))
    assert 5 <= len(times) <= 12


def test_client_messages_are_parsed_or_named_as_wrong():
    assert parse_audio(b"\x00\x01\x02\x03", SR).tolist() == [256, 770]
    assert "whole number" in parse_audio(b"\x00", SR)
    assert "smaller chunks" in parse_audio(b"\x00" * (SR * 2 * 11), SR)
    assert parse_control('{"type": "clear"}') == "clear"
    assert parse_control("{")[0] == "bad_message"
    assert parse_control('{"type": 3}')[0] == "unknown_control"


class SlowMaker:
    """A block maker slower than real time from the start (as the diffusion engine on a CPU)."""

    width = height = 32
    block_frames, lookahead_samples = 2, 0

    def make(self, audio, speech, start_frame):
        import time

        time.sleep(0.12)  # 80 ms of video per 120 ms
        return np.zeros((len(speech), 32, 32, 3), np.uint8)

    def expected_block_s(self):
        return 0.12

    def keep_up_offer(self, block_s):
        return {"size": "16*16", "message": "a smaller size would keep up"}

    def close(self):
        pass


def test_a_viewer_that_comes_later_still_hears_that_the_session_lags_and_what_would_keep_up():
    from liveavatar.live.runner import LiveRun
    from liveavatar.live.session import Session

    class Viewer:
        def __init__(self):
            self.events, self.blocks = [], 0

        def event(self, event):
            self.events.append(event)

        def block(self, block):
            self.blocks += 1

        def ended(self, reason):
            self.events.append({"type": "ended", "reason": reason})

    run = LiveRun("sess_test", Session(SlowMaker()), {"engine": "slow"}).start()
    try:
        import time

        time.sleep(0.5)
        assert run.view()["lagging"]["offer"]["size"] == "16*16"  # said at the start, before any client
        viewer = Viewer()
        run.attach(viewer)
        kinds = [e["type"] for e in viewer.events]
        assert kinds[:2] == ["session.started", "lagging"] and viewer.events[1]["offer"]["size"] == "16*16"
        assert viewer.events[0]["timeline_s"] >= 0 and viewer.events[0]["id"] == "sess_test"
    finally:
        run.close()
    assert viewer.events[-1] == {"type": "ended", "reason": "closed"}
