"""`liveavatar serve` with the preview engine: time to the first playable frame, status polls per second.

Run: .venv/bin/python benchmarks/bench_serve.py [--repeats 3] [--poll-seconds 3]
Inputs: the bundled samples (512x512 portrait, 12.9 s speech, the prompt). A server runs in this
process on a free port of 127.0.0.1 (uvicorn in a thread), as `liveavatar serve --engine preview`.

First playable frame: from sending POST /v1/videos (upload, checks, plan) to the first frame decoded
by PyAV from GET /v1/videos/{id}/content, the live stream, opened right after the 202.
Status polls: GET /v1/videos/{id} in a loop (1 client, then 4 clients) while a job renders.

Under load (`--under-load 600`): `liveavatar serve` in its own process; status-request latency
(median, p95) from the submission of a job with 600 s of speech until its first frame, then 10
short submissions at once while it renders.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "serve"))


def submit(client, **fields):
    samples = REPO / "samples"
    files = {
        "image": ("portrait.png", (samples / "portrait.png").read_bytes()),
        "audio": ("speech.wav", (samples / "speech.wav").read_bytes()),
    }
    data = {"prompt": (samples / "prompt.txt").read_text(), **fields}
    return client.post("/v1/videos", files=files, data=data)


def first_frame_s(server, client) -> tuple[float, float]:
    """(seconds to the 202, seconds to the first decoded frame), both from the start of the POST."""
    import av

    start = time.perf_counter()
    job = submit(client).json()
    accepted = time.perf_counter() - start
    with av.open(
        f"{server.url}/v1/videos/{job['id']}/content",
        timeout=60,
        options={"analyzeduration": "500000", "probesize": "65536"},
    ) as container:
        next(container.decode(video=0))
        first = time.perf_counter() - start
    wait_done(client, job["id"])
    return accepted, first


def wait_done(client, video_id: str) -> dict:
    while (job := client.get(f"/v1/videos/{video_id}").json())["status"] not in {"completed", "failed", "cancelled"}:
        time.sleep(0.05)
    return job


def polls_per_second(server, clients: int, seconds: float) -> tuple[float, int]:
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = submit(client).json()
        while client.get(f"/v1/videos/{job['id']}").json()["frames_done"] == 0:
            time.sleep(0.01)
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def poll(i):
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while time.perf_counter() < stop:
                assert c.get(f"/v1/videos/{job['id']}").status_code == 200
                counts[i] += 1

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        final = client.get(f"/v1/videos/{job['id']}").json()
        rendering = final["status"] == "in_progress"
        wait_done(client, job["id"])
    if not rendering:
        print(f"  note: the job finished inside the {seconds} s window")
    return sum(counts) / seconds, final["frames_done"]


def long_speech(folder: Path, seconds: float) -> Path:
    """The bundled speech repeated to ``seconds`` (16 kHz WAV)."""
    import numpy as np
    import soundfile

    speech, rate = soundfile.read(str(REPO / "samples" / "speech.wav"), dtype="int16")
    reps = int(np.ceil(seconds * rate / len(speech)))
    path = folder / f"speech_{seconds:g}s.wav"
    soundfile.write(str(path), np.tile(speech, reps)[: int(seconds * rate)], rate)
    return path


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"


def under_load(audio_s: float, submissions: int) -> None:
    """`liveavatar serve` as its own process (as users run it); this process only sends requests.

    1. Status requests (GET /v1/videos/{id} of a finished job, and GET /v1/videos) every 20 ms
       from the moment a job with ``audio_s`` of speech is submitted until its first frame is made.
    2. ``submissions`` short jobs sent at once while that long job runs: seconds to each 202.
    """
    import os
    import socket
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speech = long_speech(folder, audio_s)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "liveavatar",
                "serve",
                "--engine",
                "preview",
                "--no_token",
                "--port",
                str(port),
                "--data_dir",
                str(folder / "data"),
                "--max_audio_s",
                str(audio_s + 10),
                "--max_queue",
                "64",
            ],
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                    time.sleep(0.1)
                short = submit(client, num_clip="1").json()
                wait_done(client, short["id"])
                idle = []
                for _ in range(100):  # the same requests with nothing running: what the box gives now
                    for path in (f"/v1/videos/{short['id']}", "/v1/videos"):
                        t0 = time.perf_counter()
                        assert client.get(path).status_code == 200
                        idle.append(time.perf_counter() - t0)
                    time.sleep(0.02)
                print(f"status requests, idle server: {percentiles(idle)}")
                samples = REPO / "samples"
                files = {
                    "image": ("portrait.png", (samples / "portrait.png").read_bytes()),
                    "audio": ("speech.wav", speech.read_bytes()),
                }
                times: list[float] = []
                started = time.perf_counter()
                with ThreadPoolExecutor(1) as pool:
                    posted = pool.submit(client.post, "/v1/videos", files=files, data={"prompt": "a person speaking"})
                    with httpx.Client(base_url=url, timeout=120) as poller:
                        long_id = None
                        while True:
                            for path in (f"/v1/videos/{short['id']}", "/v1/videos"):
                                t0 = time.perf_counter()
                                assert poller.get(path).status_code == 200
                                times.append(time.perf_counter() - t0)
                            if long_id is None and posted.done():
                                long_id = posted.result().json()["id"]
                            if long_id is not None and poller.get(f"/v1/videos/{long_id}").json()["frames_done"] > 0:
                                break
                            time.sleep(0.02)
                print(
                    f"status requests from the {audio_s:g} s job's submission to its first frame "
                    f"({time.perf_counter() - started:.1f} s): {percentiles(times)}; target p95 < 50 ms"
                )

                def one(_):
                    t0 = time.perf_counter()
                    with httpx.Client(base_url=url, timeout=300) as c:
                        code = submit(c, num_clip="1").status_code
                    return time.perf_counter() - t0, code

                t0 = time.perf_counter()
                with ThreadPoolExecutor(submissions) as pool:
                    results = list(pool.map(one, range(submissions)))
                assert all(code == 202 for _, code in results), results
                print(
                    f"{submissions} submissions at once while it renders: {time.perf_counter() - t0:.1f} s in all, "
                    f"each {min(t for t, _ in results):.1f}-{max(t for t, _ in results):.1f} s"
                )
                client.delete(f"/v1/videos/{long_id}")
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    import httpx
    from serve_helpers import ServerThread

    from liveavatar.serve.settings import Limits, ServeSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=3.0)
    parser.add_argument(
        "--under-load",
        type=float,
        default=None,
        metavar="AUDIO_S",
        help="instead: status-request latency while a job with this much speech starts (a server process)",
    )
    parser.add_argument("--submissions", type=int, default=10, help="with --under-load: short jobs sent at once")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}"
    )
    if args.under_load is not None:
        under_load(args.under_load, args.submissions)
        return
    with tempfile.TemporaryDirectory() as data:
        server = ServerThread(ServeSettings(data_dir=Path(data), engine="preview", limits=Limits(queue=64))).start()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                while client.get("/healthz").status_code != 200:
                    time.sleep(0.05)
                cold = first_frame_s(server, client)
                print(
                    f"first job in a fresh server: 202 after {cold[0]:.2f} s, first playable frame after {cold[1]:.2f} s"
                )
                warm = [first_frame_s(server, client) for _ in range(args.repeats)]
                print(
                    f"later jobs (median of {args.repeats}): 202 after {statistics.median(a for a, _ in warm):.2f} s, "
                    f"first playable frame after {statistics.median(f for _, f in warm):.2f} s "
                    f"(all: {', '.join(f'{f:.2f}' for _, f in warm)}); target < 2 s"
                )
            for clients in (1, 4):
                rate, frames = polls_per_second(server, clients, args.poll_seconds)
                print(f"status polls while a 512x512 job renders, {clients} client(s): {rate:.0f} requests/s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
