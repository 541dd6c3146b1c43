"""OpenAI Videos API fields where they fit, so that its SDK can drive the server.

Create: ``model`` (this server's engine, ``preview`` or ``liveavatar-preview``), ``seconds`` (a cap on
the length: whole clips that fit in it), ``input_reference`` (the portrait, as ``image``), ``size``
("WxH", which generate's ``--size`` also reads). List: ``limit``, ``after``, ``order`` and the page's
``first_id``/``last_id``/``has_more``. Content: ``variant=thumbnail`` (a JPEG of the first frame).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from liveavatar.argtypes import number, positive_int
from liveavatar.errors import UserError
from liveavatar.serve.uploads import Rejected

FIELDS = frozenset({"model", "seconds", "input_reference"})
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
VARIANTS = ("video", "thumbnail")


def _text(form, name: str) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Rejected(422, "invalid_parameter", f"{name} must be a text field, not a file", name)
    return value.strip()


def check_model(form, engine: str) -> None:
    """``model`` may only name the engine this server runs (one resident engine serves every job)."""
    model = _text(form, "model")
    if model is not None and model not in (engine, f"liveavatar-{engine}"):
        raise Rejected(
            422,
            "invalid_parameter",
            f"model: this server runs the {engine} engine; give model={engine} "
            f"(or liveavatar-{engine}), or leave it out",
            "model",
        )


def seconds_cap(form, options: dict, engine_options) -> dict:
    """``options`` with ``num_clip`` lowered so the video lasts at most ``seconds`` (whole clips);
    ``engine_options``: the server's EngineOptions."""
    from liveavatar.sizing import FPS

    text = _text(form, "seconds")
    if text is None:
        return options
    try:
        seconds = number(text)
    except argparse.ArgumentTypeError as exc:
        raise Rejected(422, "invalid_parameter", f"seconds: {exc}", "seconds") from None
    try:
        frames_per_clip = engine_options.config(image=Path(), audio=Path(), **options).resolve().infer_frames
    except UserError:  # a bad option: the plan's dry run names it
        return options
    clips = math.floor(seconds * FPS / frames_per_clip + 1e-9)
    if clips < 1:
        raise Rejected(
            422,
            "invalid_parameter",
            f"seconds: {text} is shorter than one clip ({frames_per_clip / FPS:g} s); "
            f"give at least {frames_per_clip / FPS:g}",
            "seconds",
        )
    return {**options, "num_clip": min(clips, options.get("num_clip") or clips)}


def page(views: list[dict], query) -> dict:
    """One page of the list (newest first unless ``order=asc``), after the id ``after``."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise Rejected(422, "invalid_parameter", f"order: '{order}' is not asc or desc", "order")
    try:
        limit = positive_int(query["limit"]) if "limit" in query else DEFAULT_LIMIT
    except argparse.ArgumentTypeError as exc:
        raise Rejected(422, "invalid_parameter", f"limit: {exc}", "limit") from None
    if limit > MAX_LIMIT:
        raise Rejected(422, "invalid_parameter", f"limit: {limit} is more than {MAX_LIMIT}", "limit")
    ordered = views if order == "asc" else views[::-1]
    after = query.get("after")
    if after:
        ids = [v["id"] for v in ordered]
        if after not in ids:
            raise Rejected(404, "not_found", f"after: no video with id {after!r}", "after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


def variant(query) -> str:
    chosen = query.get("variant", "video")
    if chosen not in VARIANTS:
        raise Rejected(422, "invalid_parameter", f"variant: '{chosen}' is not one of: {', '.join(VARIANTS)}", "variant")
    return chosen


def thumbnail(video: Path) -> bytes | None:
    """The first frame as a JPEG; None when the file holds no decodable frame yet."""
    import io

    import av

    try:
        with av.open(str(video)) as container:
            frame = next(container.decode(video=0), None)
    except (OSError, av.error.FFmpegError):
        return None
    if frame is None:
        return None
    out = io.BytesIO()
    frame.to_image().save(out, format="JPEG", quality=90)
    return out.getvalue()
