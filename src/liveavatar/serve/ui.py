"""The web page (ui.html: plain HTML + JS over the same API, no build step, nothing external)
and the bundled sample inputs it offers as a one-click example."""

from __future__ import annotations

from importlib.resources import files

SAMPLE_FILES = {"portrait.png": "image/png", "speech.wav": "audio/wav", "prompt.txt": "text/plain; charset=utf-8"}


def page() -> str:
    """ui.html with the Live tab's script (live.js) inlined: one document, so the token check that
    guards every other path never stands between the page and its own script."""
    here = files("liveavatar.serve")
    live = here.joinpath("live.js").read_text(encoding="utf-8")
    return (
        here.joinpath("ui.html").read_text(encoding="utf-8").replace("<!-- live.js -->", f"<script>\n{live}</script>")
    )


def add_routes(app) -> None:
    from fastapi.responses import FileResponse, HTMLResponse

    from liveavatar.media.samples import SAMPLES
    from liveavatar.serve.uploads import Rejected

    html = page()

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": "default-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; img-src 'self' blob: data:"
            },
        )

    @app.get("/v1/samples/{name}")
    async def sample(name: str):
        """The repository's sample inputs (a source checkout has them; an installed wheel may not)."""
        if name not in SAMPLE_FILES or not (SAMPLES / name).is_file():
            raise Rejected(404, "not_found", f"no sample named {name!r} here", "name")
        return FileResponse(SAMPLES / name, media_type=SAMPLE_FILES[name])
