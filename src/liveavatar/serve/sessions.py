"""The HTTP routes of live sessions: ``/v1/sessions`` (create, list, get, delete) and the WebSocket.

A session is opened from a multipart form like ``/v1/videos`` (``image``, ``prompt``, generate's
options by their CLI names, ``skip_checks``) minus the speech, which arrives later over the socket.
The same limits, checks (422 with the findings) and token apply (the guard sits in front of every
route); ``max_sessions`` caps the sessions open at once (429). The portrait is read from a private
temporary folder and deleted once the session holds it in memory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi import Request, WebSocket

from liveavatar.engines.base import Engine
from liveavatar.live.registry import SessionRegistry, SessionsFull
from liveavatar.serve.settings import ServeSettings
from liveavatar.serve.uploads import IMAGE_SUFFIXES, Rejected, check_image_limits, parse_options, save_upload


def add_session_routes(
    app, settings: ServeSettings, registry: SessionRegistry, engine: Callable[[], Engine | None], engine_name: str
) -> None:
    """Add the session routes to the FastAPI ``app``; ``engine()``: the resident engine once loaded."""
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from liveavatar.live.websocket import serve_socket

    def full() -> Rejected:
        return Rejected(
            429,
            "too_many_sessions",
            f"{registry.max_sessions} live sessions are open, the most this server "
            "allows; close one (DELETE /v1/sessions/{id}) or try again later",
        )

    def run_or_404(session_id: str):
        run = registry.get(session_id)
        if run is None:
            raise Rejected(404, "not_found", f"no live session with id {session_id!r}", "session_id")
        return run

    @app.post("/v1/sessions", status_code=201)
    async def create_session(request: Request):
        resident = engine()
        if resident is None:
            raise Rejected(
                503, "engine_loading", "the engine is still loading; try again in a moment (GET /healthz says when)"
            )
        if len(registry) >= registry.max_sessions:
            raise full()
        folder = Path(tempfile.mkdtemp(prefix="liveavatar-session-"))  # private (0700)
        try:
            form = await request.form(max_files=1, max_fields=64)
            try:
                if form.get("audio") is not None:
                    raise Rejected(
                        422,
                        "unexpected_audio",
                        "a live session takes its speech over the WebSocket, not as a file",
                        "audio",
                    )
                options, skip_checks = parse_options(form)
                prompt = form.get("prompt")
                prompt = prompt.strip() if isinstance(prompt, str) else ""
                image = folder / await save_upload(form, "image", folder, IMAGE_SUFFIXES, settings.limits.upload_bytes)
            finally:
                await form.close()

            def opened(run_id):
                return open_run(run_id, resident, engine_name, settings, image, prompt, options, skip_checks)

            run = await run_in_threadpool(registry.open, opened)
        except SessionsFull:
            raise full() from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse(run.view(), status_code=201)

    @app.get("/v1/sessions")
    async def list_sessions():
        return {"object": "list", "data": [run.view() for run in registry.list()], "has_more": False}

    @app.get("/v1/sessions/{session_id}")
    async def get_session(session_id: str):
        return run_or_404(session_id).view()

    @app.delete("/v1/sessions/{session_id}")
    async def delete_session(session_id: str):
        run = run_or_404(session_id)
        await run_in_threadpool(registry.delete, run.id)
        return {"id": run.id, "object": "session", "deleted": True}

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def session_socket(websocket: WebSocket, session_id: str):
        run = registry.get(session_id)
        if run is None:
            await websocket.close(code=4404, reason=f"no live session with id {session_id}")
            return
        await serve_socket(
            websocket,
            run,
            lambda: registry.delete(run.id, reason="closed"),
            settings.live.fragment_frames,
            settings.live.max_queued_s,
        )


def open_run(
    run_id: str,
    engine: Engine,
    engine_name: str,
    settings: ServeSettings,
    image_path: Path,
    prompt: str,
    options: dict,
    skip_checks: bool,
):
    """Check the inputs, plan, and open the engine's session: a :class:`LiveRun` not yet started."""
    import dataclasses

    from liveavatar.errors import UserError
    from liveavatar.live.local import open_for
    from liveavatar.live.runner import LiveRun

    check_image_limits(image_path, settings.limits)
    if not skip_checks:
        refuse_failed_checks(image_path, prompt)
    notes: list[str] = []
    try:
        engine_options = dataclasses.replace(settings.engine_options(), engine=engine_name)
        config = engine_options.config(image=image_path, audio=Path(), prompt=prompt, **options).resolve()
        session = open_for(engine, engine_name, config, notes.append)
    except UserError as exc:
        message = exc.one_line().removeprefix("error: ").replace(str(image_path.parent) + "/", "")
        raise Rejected(422, "invalid_input", message, exc.input.lstrip("-")) from None
    info = {
        "engine": engine_name,
        "width": session.width,
        "height": session.height,
        "fps": session.fps,
        "sample_rate": session.sample_rate,
        "lookahead_ms": round(session.lookahead_ms, 1),
        "block_frames": session.block_frames,
        "prompt": prompt,
        "options": options,
        "idle_timeout_s": settings.live.idle_s,
    }
    return LiveRun(run_id, session, info, notes)


def refuse_failed_checks(image: Path, prompt: str) -> None:
    """422 with the findings when the portrait or the prompt has errors (``check``'s rules)."""
    import json

    from liveavatar.checks import run_checks
    from liveavatar.checks.findings import FLAGS
    from liveavatar.checks.report import to_json

    body = json.loads(to_json(run_checks(image, None, prompt or None)))
    if not body["ok"]:
        first = next(f for f in body["findings"] if f["severity"] == "error")
        raise Rejected(
            422,
            "input_check_failed",
            f"the inputs have errors, first: {FLAGS[first['input']]}: {first['message']}",
            first["input"],
            {"ok": False, "findings": body["findings"]},
        )
