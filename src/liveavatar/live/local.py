"""Opening a live session from a portrait file and generate's options: what the server does for
``POST /v1/sessions``, and what an in-process integration (LiveKit, Pipecat) calls."""

from __future__ import annotations

from pathlib import Path

from liveavatar.engines.base import Engine, LiveSession, Notify


def open_for(engine: Engine, engine_name: str, config, notify: Notify) -> LiveSession:
    """A session of ``engine`` for ``config`` (a resolved GenerateConfig: its image, prompt, size, seed...)."""
    from liveavatar.engines.base import SessionInputs
    from liveavatar.live.session import session_plan
    from liveavatar.media.image import read_image

    image = read_image(config.image)
    return engine.open_session(
        SessionInputs(prompt=config.prompt, image=image, image_path=config.image),
        session_plan(config, image, engine_name),
        notify,
    )


def open_local_session(
    image: Path | str, prompt: str = "", engine: str = "preview", notify: Notify = print, **options
) -> LiveSession:
    """Build ``engine`` in this process and open a session on ``image`` (options: generate's, e.g.
    ``size="512*512"``, ``ckpt_dir=...``). Raises UserError for bad inputs."""
    from liveavatar.config import GenerateConfig
    from liveavatar.engines.select import build_engine, require_engine_files

    config = GenerateConfig(image=Path(image), audio=Path(), prompt=prompt, engine=engine, **options).resolve()
    require_engine_files(engine, config)
    return open_for(build_engine(engine, config), engine, config, notify)
