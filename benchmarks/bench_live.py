"""Live session over the WebSocket: latency, sustained fps, dropped frames, server CPU and memory.

Starts `liveavatar serve` as a child process (its CPU and memory read from /proc), opens one
session and streams samples/speech.wav in 20 ms chunks in real time, in utterances of 4 s with
1 s pauses, for --seconds (default 60; --minutes for long runs). Latency of a chunk: from sending
it to receiving the MP4 fragment holding the frame that shows its first sample (the frame found
from the utterance's speech.started and the fragments' sample counts, read from the moof boxes).

    python benchmarks/bench_live.py [--seconds 60 | --minutes 30] [--size 512*512]
    python benchmarks/bench_live.py --engine diffusion --ckpt_dir TINY/Wan2.2-S2V-14B \
        --lora_path_dmd TINY/LiveAvatar/liveavatar.safetensors --size 384*256 --seconds 20
    python benchmarks/bench_live.py --transport webrtc [--size 384*384]   (benchmarks/bench_webrtc.py:
        mouth-to-ear over WebRTC, utterances of 1.2 s for --seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from liveavatar.live.client import LiveClient, Received, collect, open_session  # noqa: E402

SR, SPF, CHUNK = 16_000, 640, 320


def video_samples_per_fragment(data: bytes) -> list[tuple[int, int]]:
    """(end byte offset of the fragment's mdat, video samples in it) per moof, in order."""
    out, pos, pending = [], 0, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8:
            break
        if kind == b"moof":
            pending = _video_samples(data[pos + 8 : pos + size])
        elif kind == b"mdat":
            out.append((pos + size, pending))
        pos += size
    return out


def _boxes(body: bytes):
    pos = 0
    while pos + 8 <= len(body):
        size, kind = struct.unpack(">I4s", body[pos : pos + 8])
        yield kind, body[pos + 8 : pos + size]
        pos += max(size, 8)


def _video_samples(moof: bytes) -> int:
    for kind, traf in _boxes(moof):
        if kind != b"traf":
            continue
        track, count = None, 0
        for sub, payload in _boxes(traf):
            if sub == b"tfhd":
                track = struct.unpack(">I", payload[4:8])[0]
            elif sub == b"trun":
                count += struct.unpack(">I", payload[4:8])[0]
        if track == 1:  # the video track is added first
            return count
    return 0


def frame_arrivals(received: Received) -> list[float]:
    """Arrival time of each video frame of the file."""
    fragments = video_samples_per_fragment(bytes(received.data))
    times, k = [], 0
    for end, count in fragments:
        while received.arrivals[k][1] < end:
            k += 1
        times += [received.arrivals[k][0]] * count
    return times


class Proc:
    def __init__(self, pid: int) -> None:
        self.pid, self.tick = pid, os.sysconf("SC_CLK_TCK")
        self.samples: list[tuple[float, float, float]] = []  # (time, cpu s, rss MB)

    def sample(self) -> None:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / self.tick
        rss = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        self.samples.append((time.monotonic(), cpu, rss))


def start_server(args) -> tuple[subprocess.Popen, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cmd = [
        sys.executable,
        "-m",
        "liveavatar",
        "serve",
        "--port",
        str(port),
        "--no_token",
        "--engine",
        args.engine,
        "--data_dir",
        tempfile.mkdtemp(prefix="bench-live-"),
    ]
    if args.ckpt_dir:
        cmd += ["--ckpt_dir", args.ckpt_dir]
    if args.lora_path_dmd:
        cmd += ["--lora_path_dmd", args.lora_path_dmd]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


async def run(args, url: str, proc: Proc) -> dict:
    import soundfile as sf

    speech, _ = sf.read(str(REPO / "samples" / "speech.wav"), dtype="int16")
    info = await asyncio.to_thread(
        open_session, url, REPO / "samples" / "portrait.png", "A woman speaks.", None, size=args.size
    )
    received, sends = Received(), []  # sends: (time, utterance index, sample offset)
    async with LiveClient.connect(url, info["id"]) as live:
        reader = asyncio.create_task(collect(live, received))
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        clock, utterance, pos = time.monotonic(), 0, 0
        next_sample = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            part = speech[pos : pos + 4 * SR]
            pos = (pos + 4 * SR) % (len(speech) - 4 * SR)
            for lo in range(0, len(part), CHUNK):
                clock += CHUNK / SR
                await asyncio.sleep(max(0.0, clock - time.monotonic()))
                sends.append((time.monotonic(), utterance, lo))
                await live.send_audio(part[lo : lo + CHUNK])
            await live.end_of_speech()
            utterance += 1
            clock += 1.0
            await asyncio.sleep(max(0.0, clock - time.monotonic()))
            if time.monotonic() >= next_sample:
                proc.sample()
                next_sample = time.monotonic() + 5
        wall = time.monotonic() - t0
        await asyncio.sleep(1.0)
        await live.close_session()
        await asyncio.wait_for(reader, 30)
    return summarize(received, sends, wall, info)


def summarize(received: Received, sends: list, wall: float, info: dict) -> dict:
    arrivals = frame_arrivals(received)
    origin = received.of("session.started")[0]["timeline_s"]
    starts = [round((e["at_s"] - origin) * 25) for e in received.of("speech.started")]
    latency = []
    for sent_at, utterance, offset in sends:
        if utterance < len(starts):
            frame = starts[utterance] + offset // SPF
            if frame < len(arrivals):
                latency.append(arrivals[frame] - sent_at)
    first = [
        arrivals[starts[u]] - next(t for t, uu, o in sends if uu == u and o == 0)
        for u in range(len(starts))
        if starts[u] < len(arrivals)
    ]
    dropped = sum(e.get("frames", 0) for e in received.of("frames.dropped")[-1:])
    return {
        "engine": info["engine"],
        "size": f"{info['width']}x{info['height']}",
        "wall_s": round(wall, 1),
        "frames": len(arrivals),
        "fps": round(len(arrivals) / (arrivals[-1] - arrivals[0]), 2) if len(arrivals) > 1 else 0,
        "utterances": len(starts),
        "latency_median_ms": round(1000 * float(np.median(latency)), 1) if latency else None,
        "latency_p95_ms": round(1000 * float(np.percentile(latency, 95)), 1) if latency else None,
        "first_frame_median_ms": round(1000 * float(np.median(first)), 1) if first else None,
        "first_frame_p95_ms": round(1000 * float(np.percentile(first, 95)), 1) if first else None,
        "dropped_frames": dropped,
        "lagging": received.of("lagging")[:2],
        "errors": received.of("error")[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--size", default="512*512")
    parser.add_argument("--engine", default="preview")
    parser.add_argument("--ckpt_dir", default=None)
    parser.add_argument("--lora_path_dmd", default=None)
    parser.add_argument("--transport", choices=("websocket", "webrtc"), default="websocket")
    args = parser.parse_args()
    if args.minutes:
        args.seconds = args.minutes * 60
    if args.transport == "webrtc":
        import bench_webrtc

        return bench_webrtc.report(utterances=max(1, int((args.seconds - 2.5) / 3.0)), size=args.size)
    server, url = start_server(args)
    proc = Proc(server.pid)
    try:
        proc.sample()
        result = asyncio.run(run(args, url, proc))
        proc.sample()
    finally:
        server.terminate()
        server.wait(30)
    s = proc.samples
    cpu = (s[-1][1] - s[1][1]) / (s[-1][0] - s[1][0]) if len(s) > 2 else None
    result.update(
        server_cpu_cores=round(cpu, 2) if cpu else None,
        server_rss_mb=[round(x[2], 1) for x in s[1 :: max(1, len(s) // 8)]],
        server_rss_growth_mb=round(s[-1][2] - s[1][2], 1) if len(s) > 2 else None,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
