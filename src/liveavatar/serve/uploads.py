"""Receiving a request's inputs: options by generate's CLI names, files within the limits.

Uploaded files are written under fixed names (``image``/``audio`` plus a known suffix) into the
job's private folder: nothing a client sends becomes a path.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liveavatar.argtypes import boolean
from liveavatar.config import PER_REQUEST
from liveavatar.media.image import IMAGE_SUFFIXES  # noqa: F401  (re-exported for the app)
from liveavatar.option_groups import in_group
from liveavatar.options import value_parser
from liveavatar.serve.settings import Limits

AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus", ".webm"}
CHUNK = 1 << 20


def request_options() -> dict[str, Callable[[str], Any]]:
    """generate's options a request may set (config.PER_REQUEST), by their CLI names, each with how
    its text is parsed; the engine's own flags belong to the server, the output name to the job."""
    return {name: value_parser(name) for name in in_group(PER_REQUEST)}


OPTIONS = request_options()
FIELDS = {"image", "audio", "prompt", "skip_checks", *OPTIONS}


class Rejected(Exception):
    """A request we answer with ``status`` and an OpenAI-style error body (plus ``extra``)."""

    def __init__(
        self, status: int, code: str, message: str, param: str | None = None, extra: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.extra = status, code, message, param, extra or {}

    def body(self) -> dict:
        return {
            "error": {"message": self.message, "type": "invalid_request_error", "code": self.code, "param": self.param},
            **self.extra,
        }


def parse_options(form, extra: frozenset[str] = frozenset()) -> tuple[dict, bool]:
    """``(GenerateConfig fields, skip_checks)`` from the form's text fields (``extra``: more accepted names)."""
    accepted = FIELDS | extra
    unknown = sorted(set(form.keys()) - accepted)
    if unknown:
        raise Rejected(
            422,
            "unknown_parameter",
            f"unknown field(s): {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}",
            unknown[0],
        )
    options: dict = {}
    for name, parse in OPTIONS.items():
        value = form.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise Rejected(422, "invalid_parameter", f"{name} must be a text field, not a file", name)
        try:
            options[name] = parse(value.strip())
        except argparse.ArgumentTypeError as exc:
            raise Rejected(422, "invalid_parameter", f"{name}: {exc}", name) from None
    skip = form.get("skip_checks")
    try:
        skip_checks = boolean(skip) if isinstance(skip, str) and skip else False
    except argparse.ArgumentTypeError as exc:
        raise Rejected(422, "invalid_parameter", f"skip_checks: {exc}", "skip_checks") from None
    return options, skip_checks


async def save_upload(form, field: str, folder: Path, suffixes: set[str], limit: int) -> str:
    """Copy the uploaded file ``field`` into ``folder`` as ``<field><suffix>``; its name there."""
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        raise Rejected(422, "missing_file", f"{field} is required: send it as a file part named '{field}'", field)
    suffix = Path(upload.filename or "").suffix.lower()
    name = field + (suffix if suffix in suffixes else "")
    written = 0
    with open(folder / name, "wb") as out:
        while chunk := await upload.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise Rejected(413, "file_too_large", f"{field} is larger than the limit of {limit} bytes", field)
            out.write(chunk)
    if written == 0:
        raise Rejected(422, "empty_file", f"{field} is empty", field)
    return name


def check_media_limits(image: Path, audio: Path, limits: Limits) -> None:
    """413 for a portrait with too many pixels or speech that is too long (headers only)."""
    check_image_limits(image, limits)
    seconds = audio_seconds(audio)
    if seconds is not None and seconds > limits.audio_s:
        raise Rejected(
            413, "audio_too_long", f"audio lasts {seconds:.1f} s; the limit is {limits.audio_s:g} s", "audio"
        )


def check_image_limits(image: Path, limits: Limits) -> None:
    """413 for a portrait with too many pixels (header only)."""
    from PIL import Image

    try:
        with Image.open(image) as img:
            width, height = img.size
    except Exception:  # not an image: the pipeline's reader says so in its own words
        width = height = 0
    if width * height > limits.pixels:
        raise Rejected(
            413,
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels; the limit is {limits.pixels}",
            "image",
        )


def audio_seconds(path: Path) -> float | None:
    """Duration from the container's header, else by decoding; None if PyAV cannot read it."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / (stream.codec_context.sample_rate or 1)
    except Exception:
        return None
