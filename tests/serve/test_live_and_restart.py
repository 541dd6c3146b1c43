"""Live video while a job runs, restart survival, and a burst of 20 submissions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from serve_helpers import GatedEngine, frames_in, inputs, wait_for

from liveavatar.serve.jobs import TERMINAL
from liveavatar.serve.settings import Limits

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def test_live_stream_plays_in_pyav_while_the_job_runs(start_server, portrait_path, speech_path):
    import av

    engine = GatedEngine(hold_at=5)  # 5 blocks of 12 frames = 2.4 s made, then it waits for the test
    server = start_server(engine)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=12)).json()
        url = f"{server.url}/v1/videos/{job['id']}/content"
        decoded, reader_done = [], threading.Event()

        def read():
            try:
                # a live player's probing: a stream's first half second, not ffmpeg's default 5 s
                with av.open(url, timeout=60, options={"analyzeduration": "500000", "probesize": "65536"}) as container:
                    for frame in container.decode(video=0):
                        decoded.append(frame.to_ndarray(format="rgb24").mean())
            finally:
                reader_done.set()

        threading.Thread(target=read, daemon=True).start()
        assert engine.held.wait(60)
        wait_for(
            lambda: len(decoded) >= 20, timeout=60
        )  # the first fragment (1 s, less the decoder's reorder delay) played ...
        assert client.get(f"/v1/videos/{job['id']}").json()["status"] == "in_progress"  # ... while the job runs
        assert len(decoded) <= 60 and not reader_done.is_set()
        engine.gate.set()
        assert reader_done.wait(60)
        final = client.get(f"/v1/videos/{job['id']}").json()
        assert final["status"] == "completed"
        assert len(decoded) == final["frames_total"]  # the live stream ends as the complete video
        assert min(decoded) > 20  # real picture, not black frames


CHILD = """
import sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
from serve_helpers import GatedEngine, ServerThread
from liveavatar.serve.settings import ServeSettings
server = ServerThread(ServeSettings(data_dir=Path({data!r}), engine="preview"), GatedEngine(hold_at=7)).start()
print(server.url, flush=True)
time.sleep(600)
"""


def decoded_hashes(data: bytes) -> list[str]:
    import hashlib
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        return [hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest() for f in container.decode(video=0)]


def test_restart_continues_the_running_job_and_requeues_the_queued_one(
    start_server, tmp_path, portrait_path, speech_path
):
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE), data=str(data))], stdout=subprocess.PIPE, text=True, env=env
    )
    form = inputs(
        portrait_path, speech_path, infer_frames=12
    )  # 4 s: 10 clips of 12 frames, a writer segment every 4 clips
    try:
        url = child.stdout.readline().strip()
        with httpx.Client(base_url=url, timeout=60) as client:
            running = client.post("/v1/videos", **form).json()
            queued = client.post("/v1/videos", **inputs(portrait_path, speech_path, num_clip=2, infer_frames=12)).json()
            # held before its 8th clip: clips 0-3 are a whole segment on disk, clips 4-6 are not
            wait_for(lambda: client.get(f"/v1/videos/{running['id']}").json()["frames_done"] == 84)
            assert client.get(f"/v1/videos/{queued['id']}").json()["status"] == "queued"
    finally:
        child.send_signal(signal.SIGKILL)  # a crash: no shutdown code runs
        child.wait(30)

    server = start_server(data_dir=data)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        resumed = wait_for(lambda: (s := client.get(f"/v1/videos/{running['id']}").json())["status"] in TERMINAL and s)
        assert resumed["status"] == "completed" and resumed["error"] is None and not resumed["partial"]
        assert any("continues from its last complete clip" in w for w in resumed["warnings"])
        assert any(
            "resuming video.mp4 from clip 4 of 10 (48 frames kept)" in w for w in resumed["warnings"]
        )  # not from 0
        continued = decoded_hashes(client.get(f"/v1/videos/{running['id']}/content").content)
        done = wait_for(lambda: (s := client.get(f"/v1/videos/{queued['id']}").json())["status"] == "completed" and s)
        assert frames_in(client.get(f"/v1/videos/{queued['id']}/content").content) == done["frames_total"] == 24
        again = client.post("/v1/videos", **form).json()  # the same job, uninterrupted
        wait_for(lambda: client.get(f"/v1/videos/{again['id']}").json()["status"] == "completed")
        assert continued == decoded_hashes(client.get(f"/v1/videos/{again['id']}/content").content)
        assert len(continued) == resumed["frames_total"]


def test_a_graceful_stop_leaves_the_running_job_to_be_continued_at_the_next_start(
    start_server, tmp_path, portrait_path, speech_path
):
    data = tmp_path / "data"
    engine = GatedEngine(hold_at=7)
    server = start_server(engine, data_dir=data)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=12)).json()
        wait_for(lambda: client.get(f"/v1/videos/{job['id']}").json()["frames_done"] == 84)
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    wait_for(lambda: server.queue._stopping)
    engine.gate.set()  # the job sees the stop after its next block
    stopping.join(60)
    assert server.queue.get(job["id"]).status == "in_progress"  # recorded as running: the next start continues it

    with httpx.Client(base_url=start_server(data_dir=data).url, timeout=60) as client:
        done = wait_for(lambda: (s := client.get(f"/v1/videos/{job['id']}").json())["status"] in TERMINAL and s)
        assert done["status"] == "completed" and any(
            "resuming video.mp4 from clip 8 of 10" in w for w in done["warnings"]
        )  # its 8th clip ended a segment
        assert frames_in(client.get(f"/v1/videos/{job['id']}/content").content) == done["frames_total"]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow  # 21 preview jobs, about 25 s on two cores
def test_twenty_concurrent_submissions_run_in_order_with_bounded_memory(
    start_server, tmp_path, portrait_path, speech_path
):
    import soundfile as sf

    server = start_server(limits=Limits(queue=20))
    # half a second of the speech and no checks: this test is about the queue, not the picture
    audio, rate = sf.read(str(speech_path))
    sf.write(str(tmp_path / "short.wav"), audio[: rate // 2], rate)
    form = inputs(portrait_path, tmp_path / "short.wav", num_clip=1, infer_frames=8, skip_checks="true")
    with httpx.Client(base_url=server.url, timeout=120) as client:
        warm = client.post("/v1/videos", **form).json()  # loads what the first job loads
        wait_for(lambda: client.get(f"/v1/videos/{warm['id']}").json()["status"] == "completed")
        before = peak_rss_mb()
        answers: list = []
        threads = [
            threading.Thread(target=lambda: answers.append(client.post("/v1/videos", **form))) for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(a.status_code for a in answers) == [202] * 20
        wait_for(
            lambda: all(v["status"] == "completed" for v in client.get("/v1/videos").json()["data"]),
            timeout=300,
            every=0.2,
        )
        jobs = sorted(server.queue.list(), key=lambda j: j.seq)[1:]
        assert {j.id for j in jobs} == {a.json()["id"] for a in answers}
        for earlier, later in zip(jobs, jobs[1:]):  # one worker: each starts after the one accepted before it ends
            assert earlier.created_at <= later.created_at and earlier.finished_at <= later.started_at
        assert peak_rss_mb() - before < 200  # uploads go to disk; jobs hold no frames
