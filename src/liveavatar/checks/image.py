"""Portrait checks: format, resolution, one frontal well-lit face with a calm expression.

Thresholds (the guide's where it gives one; the others are documented in docs/checks.md):
short side >= 512; face detector score >= 0.5; |yaw| <= 0.4; face >= 12% of the short side and
>= 64 px; face luminance 60..210 with < 30% clipped pixels; the two sides of any straight edge
across the face within 1.0 stops (1.25 across a horizontal one); inner-lip gap <= 0.35 of the mouth width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveavatar.checks.face import Face, FaceShape, detect_faces, face_shape
from liveavatar.checks.findings import Finding
from liveavatar.errors import UserError
from liveavatar.media.mouth import WIDE_GAP

MIN_SIDE = 512
MAX_YAW = 0.4
MIN_FACE_FRACTION = 0.12
MIN_FACE_PIXELS = 64
DARK_LUMA = 60.0
BRIGHT_LUMA = 210.0
CLIPPED_FRACTION = 0.30
MAX_SHADOW_STOPS = 1.0
MAX_MOUTH_OPEN = WIDE_GAP  # the same line the preview engine uses to close the mouth at rest
MIN_EYES_OPEN = 0.12
SECOND_FACE_AREA = 0.10  # a second face counts when it is at least this share of the main face's area


@dataclass(frozen=True)
class ImageFacts:
    """What the image checks measured (for prepare and the consistency checks)."""

    width: int
    height: int
    faces: tuple[Face, ...]
    shape: FaceShape | None


def _f(severity: str, code: str, message: str, measured: object, expected: object, fix: str) -> Finding:
    return Finding("image", severity, code, message, measured, expected, fix)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


# A shadow edge is looked for at these orientations and at these shares of the face on one side, so
# an edge anywhere across the face is found, not only at the midline. Orientation (degrees, 0 = a
# vertical edge) -> stops allowed beyond MAX_SHADOW_STOPS: across a horizontal edge the lower face is
# darker without any shadow (a beard, a moustache, an open mouth).
_EDGE_ALLOWANCE = {0: 0.0, 45: 0.0, 90: 0.25, 135: 0.0}
_EDGE_SHARES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
_EDGE_MAX_SIDE = 96  # the face region is measured at most this many pixels across (enough for percentiles)
# each side's brightness is its 75th percentile: the lit skin, so dark eyes, brows and beards count
# less than they would in a mean or median, and a side in shadow still shows it
_SIDE_PERCENTILE = 75


def shadow_stops(region: np.ndarray) -> float:
    """The largest brightness step, in stops, between the two sides of a straight edge across ``region``
    (luminance) over every orientation and position tried, less that orientation's allowance."""
    step = max(1, int(np.ceil(max(region.shape) / _EDGE_MAX_SIDE)))
    small = region[::step, ::step]
    ys, xs = np.mgrid[: small.shape[0], : small.shape[1]]
    ys, xs = ys / small.shape[0] - 0.5, xs / small.shape[1] - 0.5
    values = small.ravel()
    best = 0.0
    for degrees, allowance in _EDGE_ALLOWANCE.items():
        angle = np.deg2rad(degrees)
        order = values[np.argsort((xs * np.cos(angle) + ys * np.sin(angle)).ravel(), kind="stable")]
        for share in _EDGE_SHARES:
            cut = int(share * len(order))
            a, b = np.percentile(order[:cut], _SIDE_PERCENTILE), np.percentile(order[cut:], _SIDE_PERCENTILE)
            best = max(best, abs(float(np.log2((a + 1.0) / (b + 1.0)))) - allowance)
    return best


def _lighting(rgb: np.ndarray, face: Face | None) -> list[Finding]:
    y = luma(rgb.astype(np.float32))
    if face is not None:
        x0, x1 = int(face.x + 0.1 * face.w), int(face.x + 0.9 * face.w)
        y0, y1 = int(face.y + 0.05 * face.h), int(face.y + 0.95 * face.h)
        region, where = y[y0:y1, x0:x1], "the face"
    else:
        region, where = y, "the image"
    if region.size == 0:
        return []
    out: list[Finding] = []
    mean = float(region.mean())
    clipped = float((region >= 250).mean())
    if mean < DARK_LUMA:
        out.append(
            _f(
                "warning",
                "image.dark",
                f"{where} is too dark (mean luminance {mean:.0f}/255): detail is lost",
                round(mean, 1),
                f">= {DARK_LUMA:.0f}",
                "use a brighter photo, or raise exposure/levels in an editor",
            )
        )
    if mean > BRIGHT_LUMA or clipped > CLIPPED_FRACTION:
        out.append(
            _f(
                "warning",
                "image.overexposed",
                f"{where} is over-exposed (mean luminance {mean:.0f}/255, {clipped:.0%} of pixels blown out)",
                {"mean_luma": round(mean, 1), "clipped_fraction": round(clipped, 3)},
                f"mean <= {BRIGHT_LUMA:.0f}, clipped < {CLIPPED_FRACTION:.0%}",
                "use a photo with less exposure; blown-out skin cannot be recovered",
            )
        )
    if face is not None and min(region.shape) >= 8:
        stops = shadow_stops(region)
        if stops > MAX_SHADOW_STOPS and mean >= DARK_LUMA / 2:
            out.append(
                _f(
                    "warning",
                    "image.uneven_lighting",
                    f"a hard shadow falls across the face: one side of it is {stops:.1f} stops darker than the other",
                    round(stops, 2),
                    f"<= {MAX_SHADOW_STOPS} stops",
                    "use a photo with even, diffuse light on both sides of the face",
                )
            )
    return out


def _face_findings(rgb: np.ndarray, faces: list[Face], shape: FaceShape | None) -> list[Finding]:
    h, w = rgb.shape[:2]
    out: list[Finding] = []
    if not faces:
        out.append(
            _f(
                "error",
                "image.no_face",
                "no face was found in the portrait",
                0,
                1,
                "give a photo with one clearly visible, frontal human face (stylised or cartoon faces may not be detected)",
            )
        )
        return out
    main = faces[0]
    others = [f for f in faces[1:] if f.w * f.h >= SECOND_FACE_AREA * main.w * main.h]
    if others:
        out.append(
            _f(
                "warning",
                "image.multiple_faces",
                f"{1 + len(others)} faces found: the model may animate the wrong person",
                1 + len(others),
                1,
                "crop the photo to the one person who should speak (liveavatar prepare crops around the largest face)",
            )
        )
    side = min(main.w, main.h)
    if side < MIN_FACE_FRACTION * min(h, w) or side < MIN_FACE_PIXELS:
        out.append(
            _f(
                "warning",
                "image.face_small",
                f"the face is small ({side:.0f} px, {side / min(h, w):.0%} of the short side): lips and eyes lose detail",
                {"face_px": round(side), "fraction": round(side / min(h, w), 3)},
                f">= {MIN_FACE_PIXELS} px and >= {MIN_FACE_FRACTION:.0%} of the short side",
                "crop closer to the face and upscale: liveavatar prepare --upscale",
            )
        )
    if shape is None:
        return out
    if abs(shape.yaw) > MAX_YAW:
        out.append(
            _f(
                "warning",
                "image.profile",
                f"the head is turned too far from the camera (yaw index {shape.yaw:+.2f}); profile views reconstruct badly",
                round(shape.yaw, 3),
                f"|yaw| <= {MAX_YAW}",
                "use a frontal or slightly turned portrait",
            )
        )
    if shape.mouth is not None and not shape.mouth.plausible:
        out.append(
            _f(
                "warning",
                "image.mouth",
                f"the mouth cannot be located reliably: {'; '.join(shape.mouth.problems)}; the preview engine will move only the jaw",
                {
                    "lip_contrast": round(shape.mouth.redness, 1),
                    "axis_offset": round(shape.mouth.axis_offset, 3),
                    "detector_miss": None if shape.mouth.keypoint_miss is None else round(shape.mouth.keypoint_miss, 3),
                },
                "visible lips on the face's axis",
                "use a photo where the lips are clearly visible (not covered by a moustache or beard), of a photographic face",
            )
        )
    if shape.mouth_open > MAX_MOUTH_OPEN:
        out.append(
            _f(
                "warning",
                "image.expression",
                f"the mouth is wide open (lip gap {shape.mouth_open:.2f} of the mouth width): an exaggerated expression hurts lip-sync"
                " (the preview engine closes it with a lip-coloured fill)",
                round(shape.mouth_open, 3),
                f"<= {MAX_MOUTH_OPEN}",
                "use a photo with the mouth closed or slightly open",
            )
        )
    elif shape.eyes_open < MIN_EYES_OPEN:
        out.append(
            _f(
                "warning",
                "image.expression",
                f"the eyes look shut (eye aspect ratio {shape.eyes_open:.2f})",
                round(shape.eyes_open, 3),
                f">= {MIN_EYES_OPEN}",
                "use a portrait with open eyes and a neutral face",
            )
        )
    return out


def measure_image(rgb: np.ndarray) -> tuple[list[Finding], ImageFacts]:
    """Face and lighting findings for a decoded RGB portrait."""
    faces = detect_faces(rgb)
    shape = face_shape(rgb, faces[0]) if faces else None
    findings = _face_findings(rgb, faces, shape) + _lighting(rgb, faces[0] if faces else None)
    return findings, ImageFacts(rgb.shape[1], rgb.shape[0], tuple(faces), shape)


def check_image(path: Path) -> tuple[list[Finding], ImageFacts | None]:
    """All image findings for the file at ``path``."""
    from liveavatar.media.image import read_image

    try:
        rgb = read_image(Path(path))
    except UserError as exc:
        code = "image.resolution" if " is only " in exc.message else "image.unreadable"
        return [_f("error", code, exc.message, str(path), "a JPG or PNG file", exc.fix)], None
    return image_findings(rgb, Path(path))


def image_findings(rgb: np.ndarray, path: Path) -> tuple[list[Finding], ImageFacts]:
    """Findings for a decoded portrait, plus its format read from ``path``'s header."""
    findings, facts = measure_image(rgb)
    return _format_and_size(rgb, path) + findings, facts


def _format_and_size(rgb: np.ndarray, path: Path) -> list[Finding]:
    """Container format (from the header) and resolution as displayed (after EXIF rotation)."""
    from PIL import Image, UnidentifiedImageError

    out: list[Finding] = []
    try:
        with Image.open(path) as img:
            fmt = img.format
    except (OSError, UnidentifiedImageError):
        fmt = None
    if fmt not in ("JPEG", "PNG"):
        out.append(
            _f(
                "warning",
                "image.format",
                f"the portrait is {fmt}, not JPG or PNG",
                fmt,
                "JPEG or PNG",
                "convert it to PNG (liveavatar prepare writes a PNG)",
            )
        )
    h, w = rgb.shape[:2]
    if min(w, h) < MIN_SIDE:
        out.append(
            _f(
                "warning",
                "image.resolution",
                f"the portrait is {w}x{h}: below {MIN_SIDE} px on the short side",
                [w, h],
                f">= {MIN_SIDE}x{MIN_SIDE}",
                "upscale it: liveavatar prepare --upscale (Real-ESRGAN with the [enhance] extra)",
            )
        )
    return out
