"""What a restart does with a job that was running, when it cannot be continued."""

from __future__ import annotations

from liveavatar.serve.jobs import VIDEO, JobQueue
from liveavatar.serve.settings import ServeSettings


def crashed_job(settings: ServeSettings, partial_bytes: bytes | None) -> str:
    """A job left `in_progress` by a server that died, with its inputs; no resume record."""
    queue = JobQueue(settings)
    job_id, folder = queue.new_folder()
    (folder / "image.png").write_bytes(b"png")
    (folder / "audio.wav").write_bytes(b"wav")
    job = queue.add(job_id, "a prompt", "image.png", "audio.wav", {}, {"num_frames": 100}, [])
    growing = folder / "video.partial.mp4"
    if partial_bytes is not None:
        growing.write_bytes(partial_bytes)
    queue._update(job, status="in_progress", frames_done=24, growing=str(growing))
    queue._store.close()
    return job_id


def test_a_running_job_without_a_resume_record_fails_with_its_partial_and_says_why(tmp_path):
    settings = ServeSettings(data_dir=tmp_path / "data", engine="preview")
    job_id = crashed_job(settings, b"a playable prefix")
    queue = JobQueue(settings)
    queue.recover()
    job = queue.get(job_id)
    assert job.status == "failed" and job.partial and queue.waiting == 0
    assert job.error["code"] == "server_stopped"
    assert job.error["message"].endswith(
        "the frames made so far are the partial video; it could not be continued: it left no resume record"
    )
    assert (queue.folder(job_id) / "video.partial.mp4").is_file()


def test_a_running_job_with_a_resume_record_is_queued_to_continue(tmp_path):
    from liveavatar import resume

    settings = ServeSettings(data_dir=tmp_path / "data", engine="preview")
    job_id = crashed_job(settings, b"a playable prefix")
    record = resume.ResumeRecord(
        settings={}, num_clips=4, num_frames=100, segments=[[2, 48], [4, 100]], clips_done=2, frames_done=48
    )
    resume.write_record(resume.record_path(settings.data_dir / "jobs" / job_id / VIDEO), record)
    queue = JobQueue(settings)
    queue.recover()
    job = queue.get(job_id)
    assert (job.status, job.resume, job.frames_done, job.error) == ("queued", True, 48, None)
    assert queue.position(job) == 0


def test_an_unreadable_resume_record_is_a_failure_that_says_so(tmp_path):
    from liveavatar import resume

    settings = ServeSettings(data_dir=tmp_path / "data", engine="preview")
    job_id = crashed_job(settings, None)
    resume.record_path(settings.data_dir / "jobs" / job_id / VIDEO).write_text("{torn")
    queue = JobQueue(settings)
    queue.recover()
    job = queue.get(job_id)
    assert job.status == "failed" and not job.partial
    assert (
        job.error["message"]
        == "the server stopped while this video was being made; it could not be continued: its resume record cannot be read"
    )
