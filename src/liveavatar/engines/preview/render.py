"""Per-frame rendering: mix the precomputed fields, warp the head region, paint the mouth interior.

Only a box around the head is warped; the rest of the frame is the fitted portrait, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview import fields as FL
from liveavatar.engines.preview import lips as LP
from liveavatar.engines.preview import mouth_paint as MP
from liveavatar.engines.preview.lip_base import lip_base
from liveavatar.engines.preview.style import DEFAULT_STYLE, PreviewStyle


@dataclass(frozen=True)
class FrameParams:
    open: float  # 0..1
    spread: float  # -1..1
    blink: float  # 0..1
    head: tuple[float, float, float, float, float]  # yaw, pitch, roll, tx, ty


def _head_box(face: F.FaceModel, style: PreviewStyle) -> FL.Box:
    lm = face.landmarks
    c = lm[list(F.SILHOUETTE)].mean(axis=0)
    fw, fh = face.face_width, face.face_height
    x0, x1 = int(c[0] - style.box_side * fw), int(np.ceil(c[0] + style.box_side * fw))
    y0, y1 = int(c[1] - style.box_up * fh), int(np.ceil(c[1] + style.box_down * fh))
    return FL.Box(max(0, y0), min(face.height, y1), max(0, x0), min(face.width, x1))


def mouth_mode(face: F.FaceModel) -> str:
    """lips (the mouth model) or jaw (the safe mode: the mesh's mouth is not believable)."""
    return "jaw" if face.mouth is not None and not face.mouth.plausible else "lips"


def keeps_rest(face: F.FaceModel) -> bool:
    """Does the mouth rest as in the portrait? Yes for closed lips and for smiles showing teeth."""
    return face.mouth is not None and face.mouth.kind in ("closed", "teeth")


class Renderer:
    """Everything that depends only on the portrait, built once; ``render`` makes one frame."""

    def __init__(self, portrait: np.ndarray, face: F.FaceModel, style: PreviewStyle = DEFAULT_STYLE) -> None:
        self.portrait = np.ascontiguousarray(portrait)
        self.style = style
        self.mode = mouth_mode(face)
        keep = keeps_rest(face)
        self.box = _head_box(face, style)
        h, w = self.box.y1 - self.box.y0, self.box.x1 - self.box.x0
        self.offset = np.array([self.box.x0, self.box.y0], np.float32)
        g = FL.geometry(face.landmarks - self.offset, (h, w))
        self.g = g
        if self.mode == "jaw":
            jaw_at = lambda a: FL.jaw_only_offsets(g, a, style)  # noqa: E731
        else:
            jaw_at = lambda a: LP.jaw_offsets(g, a, style, keep)  # noqa: E731
        self.levels = np.linspace(0.0, 1.0, style.jaw_levels)
        jaw = FL.union([FL.backward_field(g, jaw_at(a), (h, w)) for a in self.levels])
        self.jaw_box, self.jaw = jaw[0].box, np.stack([f.data for f in jaw])
        self.blink_levels = np.array(style.blink_levels)
        blink = FL.union([FL.backward_field(g, FL.blink_offsets(g, a, style), (h, w)) for a in self.blink_levels])
        self.blink_box, self.blinks = blink[0].box, np.stack([f.data for f in blink])
        spread = FL.backward_field(g, FL.spread_offsets(g, style), (h, w))
        self.spread_box, self.spread = spread.box, spread.data
        basis = FL.head_basis(g, (h, w))
        self.hx = np.ascontiguousarray(basis[[0, 2, 3], ..., 0])  # yaw, roll, tx
        self.hy = np.ascontiguousarray(basis[[1, 2, 4], ..., 1])  # pitch, roll, ty
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.gx, self.gy = xx, yy
        self.field = np.zeros((h, w, 2), np.float32)
        self.jaw_zero = jaw_at(0.0)
        self.jaw_unit = jaw_at(1.0) - self.jaw_zero
        self.spread_unit = FL.spread_offsets(g, style)
        self.inner = np.array(F.UPPER_INNER + F.LOWER_INNER[::-1][1:-1])
        # What the warp samples: the portrait, with an open mouth's interior replaced by lip texture
        # when the lips are to meet at rest (so they close on lip, not on a squeezed dark hole).
        self.source = self.portrait
        if self.mode == "lips" and not keep and g.gap0 > 1.0:
            self.source = lip_base(self.portrait, face.landmarks, margin=max(1.0, 0.03 * g.mouth_width))
        rest_gap = g.gap0 if keep else 0.0
        self.painter = MP.MouthPainter(self.portrait, face.landmarks, g.mouth_width, g.v, rest_gap, style)

    def landmarks_at(self, p: FrameParams) -> np.ndarray:
        """Where the face's vertices land in this frame (head-box coordinates)."""
        pts = self.g.points + self.jaw_zero + p.open * self.jaw_unit + p.spread * self.spread_unit
        ix = np.clip(pts[:, 0].astype(int), 0, self.gx.shape[1] - 1)
        iy = np.clip(pts[:, 1].astype(int), 0, self.gx.shape[0] - 1)
        yaw, pitch, roll, tx, ty = p.head
        hx = yaw * self.hx[0, iy, ix] + roll * self.hx[1, iy, ix] + tx * self.hx[2, iy, ix]
        hy = pitch * self.hy[0, iy, ix] + roll * self.hy[1, iy, ix] + ty * self.hy[2, iy, ix]
        return pts + np.stack([hx, hy], axis=1)

    def render(self, p: FrameParams) -> np.ndarray:
        import cv2

        f = self.field
        f.fill(0.0)
        k = float(np.clip(p.open, 0, 1)) * (len(self.levels) - 1)
        i = min(int(k), len(self.levels) - 2)
        t = np.float32(k - i)
        f[self.jaw_box.slices] += self.jaw[i] * (1 - t) + self.jaw[i + 1] * t
        if p.spread:
            f[self.spread_box.slices] += self.spread * np.float32(p.spread)
        if p.blink > 0:
            k = float(np.clip(p.blink, 0, 1)) * (len(self.blink_levels) - 1)
            i = min(int(k), len(self.blink_levels) - 2)
            t = np.float32(k - i)
            f[self.blink_box.slices] += self.blinks[i] * (1 - t) + self.blinks[i + 1] * t
        yaw, pitch, roll, tx, ty = (np.float32(v) for v in p.head)
        qx = self.gx - (yaw * self.hx[0] + roll * self.hx[1] + tx * self.hx[2])
        qy = self.gy - (pitch * self.hy[0] + roll * self.hy[1] + ty * self.hy[2])
        sampled = cv2.remap(f, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mx = qx + sampled[..., 0] + self.offset[0]
        my = qy + sampled[..., 1] + self.offset[1]
        frame = self.portrait.copy()
        frame[self.box.slices] = cv2.remap(self.source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._mouth(frame, p)
        return frame

    def _mouth(self, frame: np.ndarray, p: FrameParams) -> None:
        if self.mode == "jaw":  # the safe mode paints nothing: the lips were never parted
            return
        pts = self.landmarks_at(p)[self.inner] + self.offset
        gap = float((pts[MP.BOTTOM] - pts[MP.TOP]) @ self.g.v)
        self.painter.seam(frame, pts, gap)
        self.painter.interior(frame, pts, gap)
