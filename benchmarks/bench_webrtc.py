"""Live sessions over WebRTC with the preview engine: mouth-to-ear latency, on this machine's CPU.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_webrtc.py [--utterances 20] [--size 384*384]
(or `benchmarks/bench_live.py --transport webrtc --seconds 60`, the live benchmark's WebRTC path)
A server runs as its own process (`python -m liveavatar serve --engine preview`, as a user runs it);
an aiortc client in this process opens a session with the sample portrait (POST /v1/sessions), offers
(POST /v1/sessions/{id}/webrtc) and plays a microphone track made of samples/speech.wav: utterances
of 1.2 s, each cut at a loud point (its onset is its first sample), between 1.8 s silences.

Mouth-to-ear, per utterance: from the moment the client hands the utterance's first sample to its
Opus encoder, to the arrival (out of aiortc's receive jitter buffer, decoded) of the first video
frame whose mouth opening (MediaPipe FaceMesh, tests/support/preview_quality.py) rises above the
listening level. Included: Opus, the loopback network, the server's voice-activity onset and
pre-roll, the session's lookahead and block, the transport's send margin, VP8, the jitter buffer.
Also printed: the server's own part (speech.started's server_latency_ms), the received frame rate,
and the transport's lagging / frames_dropped events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "live"))  # the aiortc client of the WebRTC tests
SR = 16_000
SPEECH_S, PAUSE_S = 1.2, 1.8


def microphone(path: Path, utterances: int) -> np.ndarray:
    """The wav the client plays; returns the onset sample of each utterance."""
    import soundfile as sf

    speech, sr = sf.read(str(REPO / "samples" / "speech.wav"), dtype="float32")
    level = np.array([np.sqrt(np.mean(speech[i : i + 160] ** 2)) for i in range(0, len(speech) - 160, 160)])
    loud = np.flatnonzero(20 * np.log10(level + 1e-9) > -30) * 160  # 10 ms windows well inside speech
    starts = [s for s in loud if s + SPEECH_S * sr < len(speech)]
    pieces, onsets, at = [np.zeros(int(1.5 * sr), np.float32)], [], int(1.5 * sr)
    for k in range(utterances):
        start = starts[(k * 137) % len(starts)]
        cut = speech[start : start + int(SPEECH_S * sr)].copy()
        cut[:40] *= np.linspace(0, 1, 40)  # no click: a 2.5 ms fade-in
        cut[-160:] *= np.linspace(1, 0, 160)
        onsets.append(at)
        pieces += [cut, np.zeros(int(PAUSE_S * sr), np.float32)]
        at += len(cut) + int(PAUSE_S * sr)
    sf.write(str(path), np.concatenate(pieces), sr, subtype="PCM_16")
    return np.array(onsets)


async def session_call(url: str, token: str, wav: Path, seconds: float, size: str) -> dict:
    import httpx
    from aiortc import MediaStreamTrack
    from webrtc_helpers import call

    sent = []

    class Timed(MediaStreamTrack):  # when each microphone frame goes to the encoder
        kind = "audio"

        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        async def recv(self):
            frame = await self.inner.recv()
            sent.append((time.monotonic(), frame.pts / frame.sample_rate))
            return frame

    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=120) as http:
        files = {"image": ("portrait.png", (REPO / "samples" / "portrait.png").read_bytes())}
        r = await http.post("/v1/sessions", files=files, data={"prompt": "a woman talking", "size": size})
        r.raise_for_status()
        session = r.json()
        got, _ = await call(url, session["id"], wav, seconds, headers=auth, wrap_mic=Timed)
        if got.status != 201:
            raise SystemExit(f"the offer was answered {got.status}")
        await http.delete(f"/v1/sessions/{session['id']}")
    video = [(t, f.to_ndarray(format="rgb24")) for t, f in got.video]
    return {"sent": sent, "video": video, "events": [e for _, e in got.events], "session": session}


def analyse(got: dict, onsets: np.ndarray) -> dict:
    from support import preview_quality as Q

    t_sent = np.array([t for t, _ in got["sent"]])
    s_sent = np.array([s for _, s in got["sent"]])
    onset_t = np.interp(onsets / SR, s_sent, t_sent)  # wall time each utterance's first sample left
    arrival = np.array([t for t, _ in got["video"]])
    marks = Q.landmarks_per_frame([f for _, f in got["video"]])
    opening = np.array([Q.mouth_opening(lm) if lm is not None else np.nan for lm in marks])
    quiet = np.ones(len(arrival), bool)
    for t in onset_t:  # listening: before each onset, and 0.8 s after each utterance's end
        quiet &= ~((arrival > t) & (arrival < t + SPEECH_S + 0.8))
    rest = np.nanpercentile(opening[quiet], 90)
    talk = np.nanpercentile(opening[~quiet], 90)
    threshold = rest + 0.25 * (talk - rest)
    latencies = []
    for t in onset_t:
        after = np.flatnonzero((arrival > t) & (arrival < t + 1.5) & (opening > threshold))
        if len(after):
            latencies.append(1000 * (arrival[after[0]] - t))
    server = [
        e["server_latency_ms"] for e in got["events"] if e.get("type") == "speech.started" and "server_latency_ms" in e
    ]
    return {
        "latencies": latencies,
        "server": server,
        "rest": rest,
        "talk": talk,
        "frames": len(arrival),
        "fps": (len(arrival) - 1) / (arrival[-1] - arrival[0]),
        "dropped": sum(e.get("type") == "frames_dropped" for e in got["events"]),
    }


def stats(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no values"
    return f"{name}: median {statistics.median(values):.0f} ms, p95 {np.percentile(values, 95):.0f} ms, n={len(values)}"


def serve(folder: Path, port: int):
    """`liveavatar serve --engine preview` as a child process; returns it once /healthz says loaded."""
    import subprocess

    import httpx

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "liveavatar",
            "serve",
            "--engine",
            "preview",
            "--port",
            str(port),
            "--token",
            "bench",
            "--data_dir",
            str(folder / "data"),
        ],
        env=env,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": "Bearer bench"}).status_code
                == 200
            ):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not load its engine within 180 s")


def report(utterances: int, size: str) -> None:
    """Run the benchmark and print its figures."""
    import socket

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        wav = Path(tmp) / "mic.wav"
        onsets = microphone(wav, utterances)
        server = serve(Path(tmp), port)
        try:
            seconds = 1.5 + utterances * (SPEECH_S + PAUSE_S) + 1.0
            got = asyncio.run(session_call(f"http://127.0.0.1:{port}", "bench", wav, seconds, size))
        finally:
            server.terminate()
            server.wait(30)
    result = analyse(got, onsets)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}; session {got['session'].get('width')}x"
        f"{got['session'].get('height')} preview"
    )
    print(
        stats("mouth-to-ear (first sample sent -> first frame showing it, received)", result["latencies"]),
        f"of {utterances} utterances",
    )
    print(stats("server part (sample in -> frame out)", result["server"]))
    print(
        f"received {result['frames']} frames at {result['fps']:.2f} fps; frames_dropped events {result['dropped']}; "
        f"mouth opening rest {result['rest']:.3f}, talking {result['talk']:.3f}"
    )
    for event in got["events"]:
        if event.get("type") in ("lagging", "error"):
            print("event:", event)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--size", default="384*384")
    args = parser.parse_args()
    report(args.utterances, args.size)
