"""OpenAI Videos API fields through HTTP (model, seconds, input_reference, size "WxH", list paging,
the thumbnail variant), the preset note in the job, and the job's warnings without CLI advice or repeats."""

from __future__ import annotations

import io

import httpx
from serve_helpers import inputs, wait_for


def done(client, video_id):
    return wait_for(
        lambda: (
            (j := client.get(f"/v1/videos/{video_id}").json())["status"] in {"completed", "failed", "cancelled"} and j
        )
    )


def test_openai_create_fields(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        files = {
            "input_reference": ("me.png", portrait_path.read_bytes()),
            "audio": ("s.wav", speech_path.read_bytes()),
        }
        created = client.post(
            "/v1/videos",
            files=files,
            data={"prompt": "x", "model": "preview", "seconds": "2", "size": "256x256", "infer_frames": "12"},
        )
        assert created.status_code == 202, created.text
        job = done(client, created.json()["id"])
        assert job["status"] == "completed" and job["size"] == "256x256"
        assert float(job["seconds"]) <= 2.0 and job["frames_total"] == 48  # 4 whole 12-frame clips fit in 2 s
        for field, value, words in (
            ("model", "sora-2", "this server runs the preview engine"),
            ("seconds", "nan", "seconds:"),
            ("seconds", "0.1", "shorter than one clip"),
            ("size", "256x", "--size"),
        ):
            refused = client.post("/v1/videos", **inputs(portrait_path, speech_path, **{field: value}))
            assert refused.status_code == 422 and words in refused.json()["error"]["message"], refused.text
        assert (
            client.post(
                "/v1/videos", **inputs(portrait_path, speech_path, model="liveavatar-preview", num_clip="1")
            ).status_code
            == 202
        )


def test_list_paging(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        ids = [
            client.post("/v1/videos", **inputs(portrait_path, speech_path, num_clip="1", infer_frames="4")).json()["id"]
            for _ in range(3)
        ]
        newest = client.get("/v1/videos", params={"limit": 2}).json()
        assert [j["id"] for j in newest["data"]] == ids[::-1][:2] and newest["has_more"] is True
        assert newest["first_id"] == ids[2] and newest["last_id"] == ids[1]
        rest = client.get("/v1/videos", params={"limit": 2, "after": newest["last_id"]}).json()
        assert [j["id"] for j in rest["data"]] == [ids[0]] and rest["has_more"] is False
        oldest = client.get("/v1/videos", params={"order": "asc", "limit": 1}).json()
        assert oldest["first_id"] == oldest["last_id"] == ids[0]
        for params in ({"limit": "0"}, {"limit": "nan"}, {"limit": "101"}, {"order": "up"}):
            assert client.get("/v1/videos", params=params).status_code == 422, params
        assert client.get("/v1/videos", params={"after": "video_nope"}).status_code == 404


def test_thumbnail_is_a_jpeg_of_the_first_frame(start_server, portrait_path, speech_path):
    import av
    import numpy as np
    from PIL import Image

    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = done(
            client,
            client.post("/v1/videos", **inputs(portrait_path, speech_path, num_clip="1", infer_frames="8")).json()[
                "id"
            ],
        )
        thumb = client.get(f"/v1/videos/{job['id']}/content", params={"variant": "thumbnail"})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        picture = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("RGB"), dtype=np.float32)
        video = client.get(f"/v1/videos/{job['id']}/content").content
        with av.open(io.BytesIO(video)) as container:
            first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
        assert picture.shape == first.shape and np.abs(picture - first).mean() < 3  # the same frame, JPEG-compressed
        assert client.get(f"/v1/videos/{job['id']}/content", params={"variant": "spritesheet"}).status_code == 422


def test_preset_note_and_seconds_and_warnings_once(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/videos", **inputs(portrait_path, speech_path, preset="quick", num_clip="2")).json()
        job = done(client, job["id"])
        assert job["status"] == "completed" and job["seconds"] == "2.56"
        notes = [w for w in job["warnings"] if "renders 2.6 s of the" in w]
        assert len(notes) == 1, job["warnings"]
        assert len(job["warnings"]) == len(set(job["warnings"]))
        assert not any("--resume" in w for w in job["warnings"])


def test_a_cancelled_job_says_what_it_kept_without_cli_advice(start_server, portrait_path, speech_path):
    from serve_helpers import GatedEngine

    engine = GatedEngine(hold_at=6)  # 12-frame blocks: two 48-frame segments are recorded by then
    server = start_server(engine)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames="12")).json()
        assert engine.held.wait(60)
        client.delete(f"/v1/videos/{job['id']}")
        engine.gate.set()
        job = done(client, job["id"])
        assert job["status"] == "cancelled" and job["partial"]
        stopped = [w for w in job["warnings"] if w.startswith("warning: stopped after")]
        assert len(stopped) == 1 and "--resume" not in stopped[0], job["warnings"]


def test_an_upload_a_killed_server_left_is_removed(start_server, tmp_path, caplog):
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    server.stop()
    left = data / "jobs" / "video_0123456789abcdef01234567"
    left.mkdir()
    (left / "image.png").write_bytes(b"half an upload")
    other = data / "jobs" / "notes"  # not a job folder: not ours to judge
    other.mkdir()
    caplog.set_level("WARNING", logger="liveavatar.serve")
    start_server(data_dir=data)
    assert not left.exists() and other.exists()
    assert "an upload that never became a job" in caplog.text


def test_a_preset_that_stops_before_the_audio_ends_says_so(start_server, portrait_path, tmp_path):
    import numpy as np
    import soundfile

    speech = tmp_path / "long.wav"  # 20 s: the quick preset's 10 clips of 32 frames make 12.8 s
    soundfile.write(
        str(speech), (0.3 * np.sin(2 * np.pi * 220 * np.arange(20 * 16_000) / 16_000)).astype(np.float32), 16_000
    )
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/videos", **inputs(portrait_path, speech, preset="quick", skip_checks="true"))
        assert job.status_code == 202, job.text
        job = job.json()
        assert job["seconds"] == "12.8"
        notes = [w for w in job["warnings"] if "--preset quick renders 12.8 s of the 20.0 s of audio" in w]
        assert len(notes) == 1, job["warnings"]
        client.delete(f"/v1/videos/{job['id']}")
