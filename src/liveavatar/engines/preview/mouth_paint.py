"""The mouth, per portrait and per frame: a lip-only base texture to close on, and the interior.

Closing a portrait's open mouth squeezes its interior between the lips; any dark interior pixel the
warp still samples shows as a jagged hole. So the mouth's interior is first replaced by the lips'
own texture, mirrored inward from each inner lip line (``lip_base``): the lips close on real lip.
When the mouth opens past its rest, the interior is painted: the portrait's own upper interior
(upper teeth) carried by the upper lip, its lower interior (tongue, lower teeth) by the lower lip,
and its own darkest interior colour between them; a portrait without a visible interior gets a
plausible one (dark cavity, upper teeth).
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview.style import PreviewStyle

_N_UP = len(F.UPPER_INNER)
TOP, BOTTOM = 5, _N_UP + 4  # landmarks 13 and 14 in the inner polygon


def inner_points(lm: np.ndarray) -> np.ndarray:
    """The inner-lip polygon: upper lip corner to corner, then the lower lip back (corners once)."""
    return lm[list(F.UPPER_INNER + F.LOWER_INNER[::-1][1:-1])]


def _mouth_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c0 = lm[F.MOUTH_LEFT].astype(np.float64)
    u = lm[F.MOUTH_RIGHT] - c0
    u = u / (np.linalg.norm(u) + 1e-9)
    return c0, u, np.array([-u[1], u[0]])


def lip_base(portrait: np.ndarray, lm: np.ndarray, margin: float) -> np.ndarray:
    """The portrait with its mouth interior (and ``margin`` px past the lip lines) filled with lip colour."""
    import cv2

    c0, u, v = _mouth_frame(lm)
    poly = inner_points(lm).astype(np.float64)
    lo = np.floor(poly.min(axis=0) - margin - 2).astype(int)
    hi = np.ceil(poly.max(axis=0) + margin + 3).astype(int)
    h, w = portrait.shape[:2]
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return portrait
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 4).astype(np.int32)], 255, cv2.LINE_8, shift=2)
    k = int(np.ceil(margin)) * 2 + 1
    mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
    ys, xs = np.nonzero(mask)
    px, py = xs + x0, ys + y0
    a = (px - c0[0]) * u[0] + (py - c0[1]) * u[1]
    b = (px - c0[0]) * v[0] + (py - c0[1]) * v[1]

    def line(idx: tuple[int, ...]) -> np.ndarray:
        p = lm[list(idx)].astype(np.float64) - c0
        pa, pb = p @ u, p @ v
        order = np.argsort(pa)
        return np.interp(a, pa[order], pb[order])

    ui, li, uo, lo_ = line(F.UPPER_INNER), line(F.LOWER_INNER), line(F.UPPER_OUTER), line(F.LOWER_OUTER)
    # Each column takes the mean colour of the middles of its two lips (the lips' inner edges are often
    # a dark shadow): the closing warp squeezes slivers of this fill between the lips, so it must be
    # one smooth lip colour, the same from above and below.
    edge_u, edge_l = ui - margin, li + margin
    vals = 0
    for src_b in (edge_u - 0.5 * np.maximum(edge_u - uo, 1.0), edge_l + 0.5 * np.maximum(lo_ - edge_l, 1.0)):
        sx = (c0[0] + a * u[0] + src_b * v[0]).astype(np.float32)
        sy = (c0[1] + a * u[1] + src_b * v[1]).astype(np.float32)
        vals = vals + 0.5 * cv2.remap(portrait, sx[:, None], sy[:, None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0].astype(np.float32)
    out = portrait.copy()
    # smooth the fill (a blur normalised inside the mask): slivers of it must not show streaks
    fill = np.zeros(mask.shape + (3,), np.float32)
    fill[ys, xs] = vals
    weight = (mask > 0).astype(np.float32)
    k = 2 * int(max(2.0, 0.5 * (hi - lo).max() / 6)) + 1
    fill = cv2.GaussianBlur(fill, (k, k), 0) / np.maximum(cv2.GaussianBlur(weight, (k, k), 0), 1e-3)[..., None]
    soft = cv2.GaussianBlur(mask, (3, 3), 0)[ys, xs, None].astype(np.float32) / 255.0
    out[py, px] = (fill[ys, xs] * soft + portrait[py, px] * (1 - soft)).astype(np.uint8)
    return out


class MouthPainter:
    """Paints the inner mouth for one portrait (its colours and own interior are read once)."""

    def __init__(self, portrait: np.ndarray, lm: np.ndarray, mouth_width: float, v: np.ndarray,
                 rest_gap: float, style: PreviewStyle) -> None:
        import cv2

        self.style, self.mouth_width, self.v, self.rest_gap = style, mouth_width, v, rest_gap
        self.base = inner_points(lm).astype(np.float32)
        cheek = (lm[F.CHEEK_LEFT] + lm[F.MOUTH_LEFT]) / 2
        x, y = int(cheek[0]), int(cheek[1])
        skin = portrait[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3).astype(np.float32)
        light = float(np.clip(skin.mean() / 170.0, 0.45, 1.1)) if skin.size else 1.0
        self.cavity_top = np.array(style.cavity_top, np.float32) * light
        self.cavity_bottom = np.array(style.cavity_bottom, np.float32) * light
        self.teeth_rgb = np.array(style.teeth_rgb, np.float32) * min(1.0, light)
        lips = lm[list(F.UPPER_OUTER)]
        lx0, ly0 = np.floor(lips.min(axis=0)).astype(int)
        lx1, ly1 = np.ceil(lm[list(F.LOWER_OUTER)].max(axis=0)).astype(int)
        lip_px = portrait[max(ly0, 0) : ly1, max(lx0, 0) : lx1].reshape(-1, 3).astype(np.float32)
        self.seam_rgb = (np.median(lip_px, axis=0) if lip_px.size else np.array([160, 90, 90], np.float32)) * style.seam_darken
        # The portrait's own interior, split at its middle: the upper part rides on the upper lip,
        # the lower part on the lower lip; its darkest colour fills what neither covers.
        self.sprites: list[tuple[int, int, int, np.ndarray, np.ndarray]] = []
        gap = float((lm[F.INNER_BOTTOM] - lm[F.INNER_TOP]) @ v)
        if gap > style.own_interior_px:
            x0, y0 = np.floor(self.base.min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(self.base.max(axis=0)).astype(int) + 2
            x0, y0 = max(x0, 0), max(y0, 0)
            rgb = portrait[y0:y1, x0:x1].astype(np.float32)
            mask = np.zeros(rgb.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round((self.base - (x0, y0)) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
            m = mask.astype(np.float32) / 255.0
            inside = rgb[m > 0.5]
            if len(inside) >= 6:
                luma = inside @ np.array([0.299, 0.587, 0.114], np.float32)
                dark = inside[luma <= np.percentile(luma, 30)]
                self.cavity_top = dark.mean(axis=0)
                self.cavity_bottom = self.cavity_top * 0.7 + inside.mean(axis=0) * 0.3
            mid = float((self.base[TOP, 1] + self.base[BOTTOM, 1]) / 2) - y0
            rows = np.arange(rgb.shape[0], dtype=np.float32)[:, None]
            ramp = np.clip((mid - rows) / max(0.15 * gap, 1.0) + 0.5, 0, 1)  # soft split at the middle
            self.sprites = [(TOP, x0, y0, rgb, m * ramp), (BOTTOM, x0, y0, rgb, m * (1 - ramp))]

    def seam(self, frame: np.ndarray, pts: np.ndarray, gap: float) -> None:
        """Where the lips meet, a soft line in the lips' own darker colour."""
        import cv2

        s = self.style
        if gap >= s.seam_gap_px:
            return
        strength = s.seam_strength * (1 - gap / s.seam_gap_px)
        upper, lower = pts[:_N_UP], np.concatenate([pts[:1], pts[_N_UP:][::-1], pts[_N_UP - 1 : _N_UP]])
        line = (upper + lower) / 2
        x0, y0 = np.floor(line.min(axis=0)).astype(int) - 3
        x1, y1 = np.ceil(line.max(axis=0)).astype(int) + 4
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame.shape[1]), min(y1, frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.polylines(mask, [np.round((line - (x0, y0)) * 4).astype(np.int32)], False, 255, 1, cv2.LINE_AA, shift=2)
        xs = np.arange(x1 - x0, dtype=np.float32) + x0
        cx = (line[0, 0] + line[-1, 0]) / 2
        fade = np.clip(1.0 - ((xs - cx) / (0.5 * self.mouth_width + 1e-6)) ** 4, 0.0, 1.0)  # fainter to the corners
        m = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * strength * fade[None, :, None]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - m) + self.seam_rgb * m).astype(np.uint8)

    def interior(self, frame: np.ndarray, pts: np.ndarray, gap: float) -> None:
        """Paint the opening between the inner lips ``pts`` (frame pixels) when wider than at rest."""
        import cv2

        s = self.style
        alpha = float(np.clip((gap - self.rest_gap - 0.5) / s.interior_fade_px, 0.0, 1.0))
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
        m = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0 * alpha
        ys = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
        colour = np.broadcast_to(self.cavity_top * (1 - ys) + self.cavity_bottom * ys, (y1 - y0, x1 - x0, 3)).copy()
        if self.sprites:
            for anchor, sx, sy, rgb, sm in self.sprites:
                shift = pts[anchor] - self.base[anchor]
                ox, oy = int(round(sx + shift[0])) - x0, int(round(sy + shift[1])) - y0
                ya, yb, xa, xb = max(0, oy), min(y1 - y0, oy + rgb.shape[0]), max(0, ox), min(x1 - x0, ox + rgb.shape[1])
                if yb > ya and xb > xa:
                    a = sm[ya - oy : yb - oy, xa - ox : xb - ox, None]
                    colour[ya:yb, xa:xb] = colour[ya:yb, xa:xb] * (1 - a) + rgb[ya - oy : yb - oy, xa - ox : xb - ox] * a
        else:  # painted upper teeth under the upper lip, fading toward the corners
            upper = local[:_N_UP]
            teeth_h = min(0.4 * gap, s.teeth_height * self.mouth_width) * 4
            band = np.concatenate([upper, (upper + np.array([0, teeth_h]))[::-1]]).astype(np.int32)
            teeth = np.zeros_like(mask)
            cv2.fillPoly(teeth, [band], 255, lineType=cv2.LINE_AA, shift=2)
            tm = teeth.astype(np.float32) / 255.0
            xs = (np.arange(x1 - x0, dtype=np.float32) + x0 - (pts[0, 0] + pts[_N_UP - 1, 0]) / 2) / (self.mouth_width / 2)
            tm *= np.clip(1.0 - xs**4, 0.0, 1.0)[None, :]
            shade = 1.0 - 0.25 * ys  # a little darker toward the tongue
            colour = colour * (1 - tm[..., None]) + self.teeth_rgb * shade * tm[..., None]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - m[..., None]) + colour * m[..., None]).astype(np.uint8)
