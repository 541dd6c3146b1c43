"""The data folder: its rights are left alone, the private parts are folders of the server's own, and
one server at a time may use it; a port in use is one line."""

from __future__ import annotations

import socket
import stat

import httpx
import pytest
from serve_helpers import GatedEngine, inputs, wait_for

from liveavatar.cli import main
from liveavatar.errors import UserError
from liveavatar.serve.jobs import JobQueue
from liveavatar.serve.settings import ServeSettings


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_shared_folder_keeps_its_rights(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    queue = JobQueue(ServeSettings(data_dir=shared, engine="preview"))
    try:
        assert mode(shared) == 0o1777
        assert mode(shared / "jobs") == 0o700 and mode(shared / "state") == 0o700
        assert (shared / "state" / "jobs.sqlite3").is_file()
    finally:
        queue.stop(0)


def test_a_folder_it_creates_is_private(tmp_path):
    queue = JobQueue(ServeSettings(data_dir=tmp_path / "new" / "data", engine="preview"))
    queue.stop(0)
    assert mode(tmp_path / "new" / "data") == 0o700


def test_the_older_layout_moves_its_database(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobs").mkdir()
    import sqlite3

    db = sqlite3.connect(str(data / "jobs.sqlite3"))
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL)")
    db.commit()
    db.close()
    JobQueue(ServeSettings(data_dir=data, engine="preview")).stop(0)
    assert not (data / "jobs.sqlite3").exists() and (data / "state" / "jobs.sqlite3").is_file()


def test_a_second_server_on_the_same_folder_refuses_and_the_first_job_runs_on(
    start_server, tmp_path, portrait_path, speech_path, capsys
):
    engine = GatedEngine(hold_at=1)
    server = start_server(engine, data_dir=tmp_path / "data")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        wait_for(lambda: client.get("/healthz").json().get("engine_loaded"))
        job = client.post("/v1/videos", **inputs(portrait_path, speech_path, infer_frames=8)).json()
        assert engine.held.wait(60)
        with pytest.raises(UserError, match="another liveavatar serve"):
            JobQueue(server.queue.settings)
        code = main(["serve", "--engine", "preview", "--data_dir", str(tmp_path / "data"), "--port", "1", "--no_token"])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert (
            code == 2 and len(lines) == 1 and lines[0].startswith("error: --data_dir: another liveavatar serve (pid ")
        )
        assert "open http" not in captured.out
        assert client.get(f"/v1/videos/{job['id']}").json()["status"] == "in_progress"
        engine.gate.set()
        done = wait_for(
            lambda: (j := client.get(f"/v1/videos/{job['id']}").json())["status"] in {"completed", "failed"} and j
        )
        assert done["status"] == "completed", done


def test_a_port_in_use_is_one_line(tmp_path, capsys):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        code = main(
            ["serve", "--engine", "preview", "--data_dir", str(tmp_path / "d"), "--port", str(port), "--no_token"]
        )
    finally:
        busy.close()
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert (
        code == 2
        and len(lines) == 1
        and lines[0].startswith(f"error: --port: port {port} on 127.0.0.1 is already in use")
    ), lines
    assert "open http" not in captured.out
    JobQueue(ServeSettings(data_dir=tmp_path / "d", engine="preview")).stop(0)  # the folder was let go
