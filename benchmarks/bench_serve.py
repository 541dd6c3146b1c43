"""`liveavatar serve` with the preview engine: time to the first playable frame, status polls per second.

Run: .venv/bin/python benchmarks/bench_serve.py [--repeats 3] [--poll-seconds 3]
Inputs: the bundled samples (512x512 portrait, 12.9 s speech, the prompt). A server runs in this
process on a free port of 127.0.0.1 (uvicorn in a thread), as `liveavatar serve --engine preview`.

First playable frame: from sending POST /v1/videos (upload, checks, plan) to the first frame decoded
by PyAV from GET /v1/videos/{id}/content, the live stream, opened right after the 202.
Status polls: GET /v1/videos/{id} in a loop (1 client, then 4 clients) while a job renders.
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
    files = {"image": ("portrait.png", (samples / "portrait.png").read_bytes()), "audio": ("speech.wav", (samples / "speech.wav").read_bytes())}
    data = {"prompt": (samples / "prompt.txt").read_text(), **fields}
    return client.post("/v1/videos", files=files, data=data)


def first_frame_s(server, client) -> tuple[float, float]:
    """(seconds to the 202, seconds to the first decoded frame), both from the start of the POST."""
    import av

    start = time.perf_counter()
    job = submit(client).json()
    accepted = time.perf_counter() - start
    with av.open(f"{server.url}/v1/videos/{job['id']}/content", timeout=60,
                 options={"analyzeduration": "500000", "probesize": "65536"}) as container:
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


def main() -> None:
    import httpx
    from serve_helpers import ServerThread

    from liveavatar.serve.settings import Limits, ServeSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as data:
        server = ServerThread(ServeSettings(data_dir=Path(data), engine="preview", limits=Limits(queue=64))).start()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                while client.get("/healthz").status_code != 200:
                    time.sleep(0.05)
                cold = first_frame_s(server, client)
                print(f"first job in a fresh server: 202 after {cold[0]:.2f} s, first playable frame after {cold[1]:.2f} s")
                warm = [first_frame_s(server, client) for _ in range(args.repeats)]
                print(f"later jobs (median of {args.repeats}): 202 after {statistics.median(a for a, _ in warm):.2f} s, "
                      f"first playable frame after {statistics.median(f for _, f in warm):.2f} s "
                      f"(all: {', '.join(f'{f:.2f}' for _, f in warm)}); target < 2 s")
            for clients in (1, 4):
                rate, frames = polls_per_second(server, clients, args.poll_seconds)
                print(f"status polls while a 512x512 job renders, {clients} client(s): {rate:.0f} requests/s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
