"""The HTTP API, shaped like OpenAI's Videos API where it fits; see README "liveavatar serve".

Imported only by `liveavatar serve` (fastapi is the `serve` extra). Who may call which route
(token, Host, Origin, body size) is decided in one place for every route, HTTP and WebSocket:
serve/guard.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import tempfile
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from liveavatar.checks.findings import FLAGS
from liveavatar.engines.base import Engine
from liveavatar.errors import UserError
from liveavatar.live.registry import SessionRegistry
from liveavatar.live.webrtc import WebRTCConfig
from liveavatar.serve.guard import AUTHORIZED, Guard, Policy
from liveavatar.serve.jobs import TERMINAL, JobQueue, QueueFull
from liveavatar.serve.sessions import add_session_routes
from liveavatar.serve.settings import ServeSettings
from liveavatar.serve.uploads import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    Rejected,
    check_media_limits,
    parse_options,
    save_upload,
)
from liveavatar.serve.webrtc_routes import add_routes as add_webrtc_routes

SSE_HEARTBEAT_S = 1.0


def create_app(settings: ServeSettings, engine: Engine | None = None):
    """The ASGI app. ``engine``: already built (tests); otherwise built in the background at start."""
    from liveavatar.serve import ui, videos_api
    from liveavatar.serve.stream import finished_file, live_body

    engine_name = resolve_engine_name(settings)
    engine_options = dataclasses.replace(settings.engine_options(), engine=engine_name)  # every job's
    queue = JobQueue(settings)
    sessions = SessionRegistry(settings.live.max_sessions, settings.live.idle_s)  # live sessions (serve/sessions.py)
    state = {"engine": engine, "error": None}
    inspect_lock = threading.Lock()  # one submission inspected at a time: acceptance order is queue order

    def load_engine() -> None:
        try:
            if state["engine"] is None:
                from liveavatar.engines.select import build_engine

                memory = None
                if engine_name == "diffusion":  # the planner imports torch: only for the engine that needs it
                    from liveavatar.planning.fit import unplanned

                    # built before any job: no shapes to plan for yet; each job brings the planner's
                    # choice for its own config (pipeline.prepare), which the engine takes per run
                    memory = unplanned(bool(engine_options.fp8))
                state["engine"] = build_engine(engine_name, engine_options, memory)
            from liveavatar.serve.warmup import warm_up

            warm_up()  # a job's lazy imports, now: the first job is as quick as the later ones
            if state["engine"].name == "preview":
                from liveavatar.engines.preview import phonemes

                phonemes.isolate(settings.workers)  # its decoder holds the GIL for seconds: not in the API's process
            queue.start(state["engine"])
        except Exception as exc:  # healthz reports it; jobs stay queued
            state["error"] = f"{type(exc).__name__}: {exc}"

    @asynccontextmanager
    async def lifespan(app):
        queue.recover()
        threading.Thread(target=load_engine, name="liveavatar-engine-load", daemon=True).start()
        sessions.start()
        yield
        await webrtc.close()
        sessions.stop()
        queue.stop()

    app = FastAPI(title="liveavatar", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.queue = queue
    app.state.sessions = sessions
    add_session_routes(app, settings, sessions, lambda: queue.engine, engine_name)
    webrtc = add_webrtc_routes(app, sessions, WebRTCConfig(ice_servers=settings.ice_servers))

    @app.exception_handler(Rejected)
    async def rejected(request, exc: Rejected):
        return JSONResponse(exc.body(), status_code=exc.status)

    def job_or_404(video_id: str):
        job = queue.get(video_id)
        if job is None:
            raise Rejected(404, "not_found", f"no video with id {video_id!r}", "video_id")
        return job

    @app.get("/healthz")
    async def healthz(request: Request):
        loaded = queue.started
        status = "ok" if loaded else ("error" if state["error"] else "loading")
        if not request.scope.get(AUTHORIZED):  # liveness for monitors; the details only with the token
            return JSONResponse({"status": status, "authorized": False}, status_code=200 if loaded else 503)
        body = {
            "status": status,
            "authorized": True,
            "engine": engine_name,
            "engine_loaded": loaded,
            "error": state["error"],
            "queued": queue.waiting,
            "workers": settings.workers,
            "limits": {
                "upload_bytes": settings.limits.upload_bytes,
                "pixels": settings.limits.pixels,
                "audio_s": settings.limits.audio_s,
                "queue": settings.limits.queue,
            },
        }
        return JSONResponse(body, status_code=200 if loaded else 503)

    async def receive(request: Request, folder: Path, require: bool):
        form = await request.form(max_files=2, max_fields=64)
        async with form_closing(form):
            options, skip_checks = parse_options(form, videos_api.FIELDS)
            videos_api.check_model(form, engine_name)
            options = videos_api.seconds_cap(form, options, engine_options)
            prompt = form.get("prompt")
            prompt = prompt.strip() if isinstance(prompt, str) else ""
            names = {}
            # OpenAI's input_reference is the portrait when no image part is sent
            image = (
                "input_reference" if form.get("image") is None and form.get("input_reference") is not None else "image"
            )
            for key, field, suffixes in (("image", image, IMAGE_SUFFIXES), ("audio", "audio", AUDIO_SUFFIXES)):
                if require or form.get(field) is not None:
                    names[key] = await save_upload(form, field, folder, suffixes, settings.limits.upload_bytes)
        return names, prompt, options, skip_checks

    def inspect(
        folder: Path, names: dict, prompt: str, request: dict, skip_checks: bool
    ) -> tuple[dict | None, list, list[str]]:
        """Limits, the plan (a dry run of the same pipeline) and the input checks."""
        from liveavatar import pipeline
        from liveavatar.checks import run_checks

        image = folder / names["image"] if "image" in names else None
        audio = folder / names["audio"] if "audio" in names else None
        if image is not None and audio is not None:
            check_media_limits(image, audio, settings.limits)
        plan, notes = None, []
        if image is not None and audio is not None:
            config = engine_options.config(image=image, audio=audio, prompt=prompt, **request)
            try:  # what the dry run prints: the same prepare as the real run, findings shown below instead of gating
                plan = pipeline.prepare(config, notes.append, checks=False).summary()
            except UserError as exc:
                raise Rejected(
                    422,
                    "invalid_input",
                    exc.one_line().removeprefix("error: ").replace(str(folder) + "/", ""),
                    exc.input.lstrip("-"),
                ) from None
        findings = (
            []
            if skip_checks
            else run_checks(image, audio, prompt if (prompt or image is None and audio is None) else None)
        )
        return plan, findings, notes

    @app.post("/v1/checks")
    async def check(request: Request):
        """The `check` findings (and the plan, when both files are given) before spending GPU time."""
        folder = Path(tempfile.mkdtemp(prefix="liveavatar-check-"))  # private (0700)
        try:
            names, prompt, options, _ = await receive(request, folder, require=False)
            plan, findings, notes = await run_in_threadpool(locked, inspect, folder, names, prompt, options, False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return findings_body(findings, plan, notes)

    def locked(fn, *args):
        with inspect_lock:
            return fn(*args)

    def findings_body(findings: list, plan: dict | None, notes: list[str]) -> dict:
        from liveavatar.checks.report import to_json

        return {**json.loads(to_json(findings)), "plan": plan, "notes": notes}  # `check --json`'s object, plus

    @app.post("/v1/videos", status_code=202)
    async def create(request: Request):
        if queue.full():
            raise Rejected(
                429, "queue_full", f"the queue is full ({settings.limits.queue} videos waiting); try again later"
            )
        job_id, folder = queue.new_folder()
        try:
            names, prompt, options, skip_checks = await receive(request, folder, require=True)
            plan, findings, notes = await run_in_threadpool(
                locked, inspect, folder, names, prompt, options, skip_checks
            )
            body = findings_body(findings, plan, notes)
            if not body["ok"] and not skip_checks:
                first = next(f for f in body["findings"] if f["severity"] == "error")
                raise Rejected(
                    422,
                    "input_check_failed",
                    f"the inputs have errors, first: {FLAGS[first['input']]}: {first['message']}",
                    first["input"],
                    {"ok": False, "findings": body["findings"]},
                )
            warnings = [
                f"warning: {FLAGS[f['input']]}: {f['message']} [{f['code']}]; {f['fix']}"
                for f in body["findings"]
                if f["severity"] == "warning"
            ]
            job = queue.add(job_id, prompt, names["image"], names["audio"], options, plan, notes + warnings)
        except QueueFull:
            shutil.rmtree(folder, ignore_errors=True)
            raise Rejected(
                429, "queue_full", f"the queue is full ({settings.limits.queue} videos waiting); try again later"
            ) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(queue.view(job), status_code=202)

    @app.get("/v1/videos")
    async def list_videos(request: Request):
        return videos_api.page(queue.views(), request.query_params)

    @app.get("/v1/videos/{video_id}")
    async def retrieve(video_id: str):
        return queue.view(job_or_404(video_id))

    @app.delete("/v1/videos/{video_id}")
    async def delete(video_id: str):
        """Queued or running: cancel (a running job stops after its block, keeping a partial). Finished: delete."""
        job = job_or_404(video_id)
        if job.status in TERMINAL:
            await run_in_threadpool(queue.delete, job)  # deleting its files is disk work: not on the event loop
            return {"id": job.id, "object": "video", "deleted": True}
        queue.cancel(job)
        return queue.view(job)

    @app.get("/v1/videos/{video_id}/events")
    async def events(video_id: str):
        job = job_or_404(video_id)

        async def stream():
            seen, last_sent = -1, 0.0
            loop = asyncio.get_running_loop()
            while True:
                now = queue.get(job.id)
                if now is None:
                    return
                if now.version != seen or loop.time() - last_sent >= SSE_HEARTBEAT_S:
                    seen, last_sent = now.version, loop.time()
                    yield f"event: video\ndata: {json.dumps(queue.view(now))}\n\n"
                    if now.status in TERMINAL:
                        return
                await asyncio.sleep(0.1)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @app.get("/v1/videos/{video_id}/content")
    async def content(video_id: str, request: Request):
        """The MP4: the finished file with Range; while queued or running, the live fragmented MP4."""
        job = job_or_404(video_id)
        folder = queue.folder(job.id)
        if videos_api.variant(request.query_params) == "thumbnail":
            return await thumbnail(job, folder)
        download = request.query_params.get("download") in {"1", "true"}
        if job.status in TERMINAL:
            path = finished_file(job, folder)
            if path is None:
                raise Rejected(
                    404, "no_content", f"video {job.id} is {job.status} and has no video to send", "video_id"
                )
            name = f"{job.id}{'.partial' if job.status != 'completed' else ''}.mp4"
            return FileResponse(
                path,
                media_type="video/mp4",
                filename=name if download else None,
                content_disposition_type="attachment" if download else "inline",
                headers={"X-Liveavatar-Partial": str(job.status != "completed").lower()},
            )
        return StreamingResponse(
            live_body(job, folder, lambda: queue.get(job.id)),
            media_type="video/mp4",
            headers={"Cache-Control": "no-store", "X-Liveavatar-Live": "true"},
        )

    async def thumbnail(job, folder: Path):
        path = finished_file(job, folder) if job.status in TERMINAL else (Path(job.growing) if job.growing else None)
        jpeg = await run_in_threadpool(videos_api.thumbnail, path) if path is not None else None
        if jpeg is None:
            raise Rejected(404, "no_content", f"video {job.id} has no frame yet", "video_id")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    ui.add_routes(app)
    app.add_middleware(Guard, policy=policy(settings))
    return app


def policy(settings: ServeSettings) -> Policy:
    """The guard's rules for this server (every route, present and future, goes through them)."""
    return Policy(
        token=settings.token,
        bound_host=settings.host,
        allowed_hosts=settings.allowed_hosts,
        cors_origins=settings.cors_origins,
        max_body=settings.limits.request_bytes,
    )


@asynccontextmanager
async def form_closing(form):
    try:
        yield form
    finally:
        await form.close()


def resolve_engine_name(settings: ServeSettings) -> str:
    """The engine every job of this server uses; refuses (UserError) when its files are missing."""
    from liveavatar.engines.select import choose_engine, require_engine_files

    options = settings.engine_options()
    name, _ = choose_engine(options)
    require_engine_files(name, options)
    return name
