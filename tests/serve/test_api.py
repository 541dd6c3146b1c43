"""The HTTP API end to end with the preview engine: every test runs its own server on 127.0.0.1."""

from __future__ import annotations

import json

import httpx
from serve_helpers import GatedEngine, frames_in, inputs, noface_image, wait_for

from liveavatar.serve.settings import Limits


def status(client, video_id):
    return client.get(f"/v1/videos/{video_id}").json()


def test_submit_poll_events_download(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        wait_for(lambda: client.get("/healthz").status_code == 200)
        assert client.get("/healthz").json()["engine_loaded"] is True
        created = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=24))
        assert created.status_code == 202, created.text
        job = created.json()
        assert (
            job["id"].startswith("video_") and job["object"] == "video" and job["status"] in {"queued", "in_progress"}
        )
        assert job["size"] == "256x256" and job["model"] == "liveavatar-preview"
        assert status(client, job["id"])["frames_total"] == job["frames_total"] > 0

        seen = []
        with client.stream("GET", f"/v1/videos/{job['id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            for line in events.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
        done = [e["frames_done"] for e in seen]
        assert done == sorted(done) and seen[-1]["status"] == "completed" and seen[-1]["progress"] == 100
        assert any(e["status"] == "in_progress" for e in seen)

        video = client.get(f"/v1/videos/{job['id']}/content")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert frames_in(video.content) == job["frames_total"]
        part = client.get(f"/v1/videos/{job['id']}/content", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == video.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(video.content)}"
        listed = client.get("/v1/videos").json()
        assert listed["object"] == "list" and [v["id"] for v in listed["data"]] == [job["id"]]
        assert client.get("/v1/videos/video_nope").status_code == 404


def test_cancel_running_keeps_partial_and_cancel_queued(start_server, portrait_path, speech_path):
    engine = GatedEngine(hold_at=3)
    server = start_server(engine)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        running = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=12)).json()
        queued = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=12)).json()
        assert engine.held.wait(60)
        assert (
            status(client, queued["id"])["status"] == "queued" and status(client, queued["id"])["queue_position"] == 0
        )
        assert client.delete(f"/v1/videos/{queued['id']}").json()["status"] == "cancelled"

        assert client.delete(f"/v1/videos/{running['id']}").json()["status"] == "in_progress"  # stops at the next block
        engine.gate.set()
        final = wait_for(lambda: (s := status(client, running["id"]))["status"] != "in_progress" and s)
        assert final["status"] == "cancelled" and final["partial"] is True
        assert 36 <= final["frames_done"] < final["frames_total"]
        partial = client.get(f"/v1/videos/{running['id']}/content")
        assert partial.status_code == 200 and partial.headers["x-liveavatar-partial"] == "true"
        assert 0 < frames_in(partial.content) <= final["frames_done"]
        assert status(client, queued["id"])["status"] == "cancelled"  # never ran
        assert client.get(f"/v1/videos/{queued['id']}/content").status_code == 404

        deleted = client.delete(f"/v1/videos/{running['id']}").json()
        assert deleted["deleted"] is True and client.get(f"/v1/videos/{running['id']}").status_code == 404
        assert not server.queue.folder(running["id"]).exists()


def test_no_face_is_422_with_the_check_findings(start_server, tmp_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/v1/videos", **inputs(noface_image(tmp_path / "wall.png"), speech_path))
        assert response.status_code == 422
        body = response.json()
        assert body["ok"] is False and body["error"]["code"] == "input_check_failed"
        errors = [f for f in body["findings"] if f["severity"] == "error"]
        assert errors and errors[0]["input"] == "image" and "face" in errors[0]["message"].lower()
        assert client.get("/v1/videos").json()["data"] == []
        assert list((server.queue.jobs_dir).iterdir()) == []  # nothing kept of a refused request
        bad_option = client.post("/v1/videos", **inputs(tmp_path / "wall.png", speech_path, infer_frames=10))
        assert bad_option.status_code == 422 and "multiple of 4" in bad_option.json()["error"]["message"]
        unknown = client.post("/v1/videos", **inputs(tmp_path / "wall.png", speech_path, save_file="/etc/x.mp4"))
        assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "save_file"


def test_limits_are_413(start_server, portrait_path, speech_path):
    server = start_server(limits=Limits(upload_bytes=200_000, pixels=300 * 300, audio_s=2.0))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        big = portrait_path.stat().st_size > 200_000
        response = client.post("/v1/videos", **inputs(portrait_path, speech_path))
        assert response.status_code == 413
        assert response.json()["error"]["code"] in (
            {"file_too_large", "request_too_large"} if big else {"image_too_large"}
        )
    server2 = start_server(limits=Limits(pixels=300 * 300), data_dir=server.queue.settings.data_dir.parent / "d2")
    with httpx.Client(base_url=server2.url, timeout=60) as client:
        response = client.post("/v1/videos", **inputs(portrait_path, speech_path))
        assert response.status_code == 413 and "512x512" in response.json()["error"]["message"]
    server3 = start_server(limits=Limits(audio_s=2.0), data_dir=server.queue.settings.data_dir.parent / "d3")
    with httpx.Client(base_url=server3.url, timeout=60) as client:
        response = client.post("/v1/videos", **inputs(portrait_path, speech_path))
        assert response.status_code == 413 and response.json()["error"]["code"] == "audio_too_long"
        assert "limit is 2 s" in response.json()["error"]["message"]


def test_full_queue_is_429(start_server, portrait_path, speech_path):
    engine = GatedEngine(hold_at=1)
    server = start_server(engine, limits=Limits(queue=1))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/v1/videos", **inputs(portrait_path, speech_path)).status_code == 202
        assert engine.held.wait(60)
        assert client.post("/v1/videos", **inputs(portrait_path, speech_path)).status_code == 202
        refused = client.post("/v1/videos", **inputs(portrait_path, speech_path))
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"
        assert len(client.get("/v1/videos").json()["data"]) == 2


def test_token_is_required_when_set(start_server):
    server = start_server(token="s3cret")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path in ("/v1/videos", "/v1/videos/video_x/content"):
            response = client.get(path)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401
        liveness = wait_for(
            lambda: (r := client.get("/healthz")).status_code == 200 and r
        )  # liveness without the token
        assert liveness.json() == {"status": "ok", "authorized": False}
        assert client.post("/v1/videos", files={"image": ("a.png", b"x")}).status_code == 401
        assert client.get("/healthz", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/v1/videos", headers={"Cookie": "liveavatar_token=s3cret"}).status_code == 200
        page = client.get("/")  # the page itself is public: it asks for the token
        assert page.status_code == 200 and "liveavatar" in page.text
