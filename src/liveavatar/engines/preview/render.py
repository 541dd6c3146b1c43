"""Per-frame rendering: mix the precomputed fields, warp the head region, paint the mouth interior.

Only a box around the head is warped; the rest of the frame is the fitted portrait, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview import fields as FL


@dataclass(frozen=True)
class FrameParams:
    open: float  # 0..1
    spread: float  # -1..1
    blink: float  # 0..1
    head: tuple[float, float, float, float, float]  # yaw, pitch, roll, tx, ty


def _head_box(face: F.FaceModel) -> FL.Box:
    lm = face.landmarks
    c = lm[list(F.SILHOUETTE)].mean(axis=0)
    fw, fh = face.face_width, face.face_height
    x0, x1 = int(c[0] - 1.15 * fw), int(np.ceil(c[0] + 1.15 * fw))
    y0, y1 = int(c[1] - 1.45 * fh), int(np.ceil(c[1] + 1.25 * fh))
    return FL.Box(max(0, y0), min(face.height, y1), max(0, x0), min(face.width, x1))


class Renderer:
    """Everything that depends only on the portrait, built once; ``render`` makes one frame."""

    def __init__(self, portrait: np.ndarray, face: F.FaceModel) -> None:
        self.portrait = np.ascontiguousarray(portrait)
        self.box = _head_box(face)
        h, w = self.box.y1 - self.box.y0, self.box.x1 - self.box.x0
        self.offset = np.array([self.box.x0, self.box.y0], np.float32)
        g = FL.geometry(face.landmarks - self.offset, (h, w))
        self.g = g
        jaw = FL.union([FL.backward_field(g, FL.jaw_offsets(g, a), (h, w)) for a in FL.JAW_LEVELS])
        self.jaw_box, self.jaw = jaw[0].box, np.stack([f.data for f in jaw])
        blink = FL.union([FL.backward_field(g, FL.blink_offsets(g, a), (h, w)) for a in FL.BLINK_LEVELS])
        self.blink_box, self.blinks = blink[0].box, np.stack([f.data for f in blink])
        spread = FL.backward_field(g, FL.spread_offsets(g), (h, w))
        self.spread_box, self.spread = spread.box, spread.data
        basis = FL.head_basis(g, (h, w))
        self.hx = np.ascontiguousarray(basis[[0, 2, 3], ..., 0])  # yaw, roll, tx
        self.hy = np.ascontiguousarray(basis[[1, 2, 4], ..., 1])  # pitch, roll, ty
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.gx, self.gy = xx, yy
        self.field = np.zeros((h, w, 2), np.float32)
        self.jaw_unit = FL.jaw_offsets(g, 1.0) - FL.jaw_offsets(g, 0.0)
        self.jaw_zero = FL.jaw_offsets(g, 0.0)
        self.spread_unit = FL.spread_offsets(g)
        self.inner = np.array(F.UPPER_INNER + F.LOWER_INNER[::-1][1:-1])
        self.landmarks_base = self.g.points[self.inner] + self.offset
        self._colours(face)

    def _colours(self, face: F.FaceModel) -> None:
        import cv2

        lm = face.landmarks
        cheek = (lm[F.CHEEK_LEFT] + lm[F.MOUTH_LEFT]) / 2
        x, y = int(cheek[0]), int(cheek[1])
        skin = self.portrait[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3).astype(np.float32)
        light = float(np.clip(skin.mean() / 170.0, 0.45, 1.1)) if skin.size else 1.0
        self.cavity_top = np.array([58, 22, 26], np.float32) * light
        self.cavity_bottom = np.array([128, 58, 62], np.float32) * light
        self.teeth_rgb = np.array([238, 232, 220], np.float32) * min(1.0, light)
        self.seam_rgb = np.array([120, 60, 60], np.float32) * light
        # The portrait's own mouth interior (teeth of a smiling portrait), kept as a sprite that
        # moves with the upper lip when the mouth opens wider than in the portrait.
        self.sprite = None
        if self.g.gap0 > 2.0:
            inner = lm[list(F.UPPER_INNER + F.LOWER_INNER[::-1][1:-1])]
            x0, y0 = np.floor(inner.min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(inner.max(axis=0)).astype(int) + 2
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [np.round((inner - (x0, y0)) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
            self.sprite = (x0, y0, self.portrait[y0:y1, x0:x1].astype(np.float32), mask.astype(np.float32) / 255.0)

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
        k = float(np.clip(p.open, 0, 1)) * (len(FL.JAW_LEVELS) - 1)
        i = min(int(k), len(FL.JAW_LEVELS) - 2)
        t = np.float32(k - i)
        f[self.jaw_box.slices] += self.jaw[i] * (1 - t) + self.jaw[i + 1] * t
        if p.spread:
            f[self.spread_box.slices] += self.spread * np.float32(p.spread)
        if p.blink > 0:
            k = float(np.clip(p.blink, 0, 1)) * 2
            i = min(int(k), 1)
            t = np.float32(k - i)
            f[self.blink_box.slices] += self.blinks[i] * (1 - t) + self.blinks[i + 1] * t
        yaw, pitch, roll, tx, ty = (np.float32(v) for v in p.head)
        qx = self.gx - (yaw * self.hx[0] + roll * self.hx[1] + tx * self.hx[2])
        qy = self.gy - (pitch * self.hy[0] + roll * self.hy[1] + ty * self.hy[2])
        sampled = cv2.remap(f, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mx = qx + sampled[..., 0] + self.offset[0]
        my = qy + sampled[..., 1] + self.offset[1]
        frame = self.portrait.copy()
        frame[self.box.slices] = cv2.remap(self.portrait, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._mouth(frame, p)
        return frame

    def _mouth(self, frame: np.ndarray, p: FrameParams) -> None:
        """Paint a dark cavity and a hint of teeth where the lips open beyond the portrait's own gap."""
        import cv2

        pts = self.landmarks_at(p)[self.inner] + self.offset
        top, bottom = pts[5], pts[len(F.UPPER_INNER) + 4]  # landmarks 13 and 14
        gap = float((bottom - top) @ self.g.v)
        if gap < 2.5:
            self._seam(frame, pts, 0.75 * (1 - gap / 2.5))
        alpha = float(np.clip((gap - self.g.gap0 - 1.0) / 3.0, 0.0, 1.0)) if self.sprite is None else float(np.clip((gap - 1.0) / 2.0, 0, 1))
        if alpha <= 0 or gap < 1.5:
            return
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        local = np.round((pts - (x0, y0)) * 4).astype(np.int32)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [local], 255, lineType=cv2.LINE_AA, shift=2)
        upper = local[: len(F.UPPER_INNER)]
        teeth_h = min(0.4 * gap, 0.12 * self.g.mouth_width) * 4
        band = np.concatenate([upper, (upper + np.array([0, teeth_h]))[::-1]]).astype(np.int32)
        teeth = np.zeros_like(mask)
        cv2.fillPoly(teeth, [band], 255, lineType=cv2.LINE_AA, shift=2)
        m = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0 * alpha
        ys = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
        colour = self.cavity_top * (1 - ys) + self.cavity_bottom * ys
        colour = np.broadcast_to(colour, (y1 - y0, x1 - x0, 3)).copy()
        if self.sprite is not None:  # the portrait's own teeth, carried by the upper lip
            sx, sy, rgb, sm = self.sprite
            shift = pts[5] - self.landmarks_base[5]
            ox, oy = int(round(sx + shift[0])) - x0, int(round(sy + shift[1])) - y0
            ya, yb, xa, xb = max(0, oy), min(y1 - y0, oy + rgb.shape[0]), max(0, ox), min(x1 - x0, ox + rgb.shape[1])
            if yb > ya and xb > xa:
                a = sm[ya - oy : yb - oy, xa - ox : xb - ox, None]
                colour[ya:yb, xa:xb] = colour[ya:yb, xa:xb] * (1 - a) + rgb[ya - oy : yb - oy, xa - ox : xb - ox] * a
        else:
            tm = teeth.astype(np.float32) / 255.0
            xs = (np.arange(x1 - x0, dtype=np.float32) + x0 - (pts[0, 0] + pts[len(F.UPPER_INNER) - 1, 0]) / 2) / (self.g.mouth_width / 2)
            tm *= np.clip(1.0 - xs**4, 0.0, 1.0)[None, :]
            shade = 1.0 - 0.25 * ys  # a little darker toward the tongue
            colour = colour * (1 - tm[..., None]) + self.teeth_rgb * shade * tm[..., None]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - m[..., None]) + colour * m[..., None]).astype(np.uint8)

    def _seam(self, frame: np.ndarray, pts: np.ndarray, strength: float) -> None:
        """Where the lips meet, draw the soft lip line (hides the squeezed portrait interior)."""
        import cv2

        n = len(F.UPPER_INNER)
        upper, lower = pts[:n], np.concatenate([pts[:1], pts[n:][::-1], pts[n - 1 : n]])
        line = (upper + lower) / 2
        x0, y0 = np.floor(line.min(axis=0)).astype(int) - 3
        x1, y1 = np.ceil(line.max(axis=0)).astype(int) + 4
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame.shape[1]), min(y1, frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.polylines(mask, [np.round((line - (x0, y0)) * 4).astype(np.int32)], False, 255, 2, cv2.LINE_AA, shift=2)
        m = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * strength
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - m) + self.seam_rgb * m).astype(np.uint8)
