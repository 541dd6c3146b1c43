"""Non-finite numbers sent to the API, and stored records that are damaged: nothing may make the
list or a job view fail for everyone."""

from __future__ import annotations

import json

import httpx
import pytest
from serve_helpers import inputs, wait_for

from liveavatar import argtypes
from liveavatar.serve.store import JobStore
from liveavatar.serve.uploads import OPTIONS

NUMERIC = sorted(
    name
    for name, parse in OPTIONS.items()
    if parse in {argtypes.number, argtypes.positive_int, argtypes.any_int, argtypes.gib_list}
)
NON_FINITE = ["nan", "-nan", "NaN", "inf", "-Infinity", "1e309"]


def test_numeric_fields_are_found():
    assert {"sample_shift", "sample_guide_scale", "num_clip", "infer_frames", "sample_steps", "base_seed"} <= set(
        NUMERIC
    )


def test_every_numeric_field_refuses_non_finite_values(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for name in NUMERIC:
            for text in NON_FINITE:
                for path in ("/v1/videos", "/v1/checks"):
                    response = client.post(path, **inputs(portrait_path, speech_path, **{name: text}))
                    assert response.status_code == 422, (path, name, text, response.text)
                    error = response.json()["error"]
                    assert error["param"] == name and name in error["message"], error
        listed = client.get("/v1/videos")
        assert listed.status_code == 200 and listed.json()["data"] == []
        assert list(server.queue.jobs_dir.iterdir()) == []


def test_damaged_rows_are_left_out_with_a_warning(start_server, tmp_path, portrait_path, speech_path, caplog):
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        wait_for(lambda: client.get("/healthz").status_code == 200)
        good = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=8)).json()
        wait_for(lambda: client.get(f"/v1/videos/{good['id']}").json()["status"] == "completed")
    server.stop()
    store = JobStore(data / "state" / "jobs.sqlite3")
    record = json.loads(store._db.execute("SELECT record FROM jobs").fetchone()[0])
    rows = {
        "video_nan": json.dumps({**record, "id": "video_nan", "plan": {**record["plan"], "duration_s": float("nan")}}),
        "video_list": "[1, 2]",
        "video_torn": '{"id": "video_torn", ',
        "video_types": json.dumps({**record, "id": "video_types", "plan": "x"}),
    }
    for seq, (job_id, text) in enumerate(rows.items(), start=100):
        store._db.execute("INSERT INTO jobs (id, seq, record) VALUES (?, ?, ?)", (job_id, seq, text))
    store.close()
    with pytest.raises(ValueError):  # and the store never writes one itself
        JobStore(tmp_path / "other.sqlite3").save("video_x", 1, {"plan": {"duration_s": float("inf")}})
    caplog.set_level("WARNING", logger="liveavatar.serve")
    server = start_server(data_dir=data)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        listed = client.get("/v1/videos")
        assert listed.status_code == 200 and [j["id"] for j in listed.json()["data"]] == [good["id"]]
        assert client.get(f"/v1/videos/{good['id']}").status_code == 200
        for job_id in rows:
            assert client.get(f"/v1/videos/{job_id}").status_code == 404
    warned = " ".join(r.getMessage() for r in caplog.records)
    for job_id in rows:
        assert job_id in warned
