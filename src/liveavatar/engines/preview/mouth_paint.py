"""The mouth, per portrait and per frame: a lip-only base texture to close on, and the interior.

Closing a portrait's open mouth squeezes its interior between the lips; any dark interior pixel the
warp still samples shows as a jagged hole. So the mouth's interior is first replaced by the lips'
own texture, mirrored inward from each inner lip line (lip_base.py): the lips close on real lip.
When the mouth opens past its rest, the interior is painted: the portrait's own upper interior
(upper teeth) carried by the upper lip, its lower interior (tongue, lower teeth) by the lower lip,
and its own darkest interior colour between them; a portrait without a visible interior gets a
plausible one (dark cavity, upper teeth).
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview.lip_base import inner_points
from liveavatar.engines.preview.style import PreviewStyle

_N_UP = len(F.UPPER_INNER)
TOP, BOTTOM = 5, _N_UP + 4  # landmarks 13 and 14 in the inner polygon


def _split_rows(rgb: np.ndarray, m: np.ndarray, mid: float, lip_l: float, mouth_width: float) -> np.ndarray:
    """Per column, the row where the portrait's interior splits into what the upper lip carries and
    what the lower lip carries: just below the upper teeth where they show (a smile's teeth stay
    whole on the upper jaw; a split at the middle put half of each tooth on the lower lip, a second
    row of stubs), else the middle. Teeth: brighter than the lips (``lip_l``, Lab L) and unsaturated,
    as ``media.mouth`` counts them; gaps between teeth are closed along the row first."""
    import cv2
    from scipy.ndimage import gaussian_filter1d, median_filter

    from liveavatar.media.mouth import teeth_like

    lab_l = cv2.cvtColor(np.ascontiguousarray(rgb.astype(np.uint8)), cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    sat = cv2.cvtColor(np.ascontiguousarray(rgb.astype(np.uint8)), cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
    inside = m > 0.5
    teeth = (teeth_like(lab_l, sat, lip_l) & inside).astype(np.uint8)
    k = max(3, int(0.06 * mouth_width) | 1)
    teeth = cv2.morphologyEx(teeth, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8)) > 0
    h, w = inside.shape
    split = np.full(w, np.nan, np.float32)
    for x in range(w):
        rows = np.flatnonzero(inside[:, x])
        if len(rows) < 2:
            continue
        top, bottom = rows[0], rows[-1]
        t = np.flatnonzero(teeth[top : bottom + 1, x])
        if len(t) == 0 or t[0] > 0.5 * (bottom - top):  # no upper teeth in this column
            continue
        run = t[0]
        while run + 1 <= bottom - top and teeth[top + run + 1, x]:
            run += 1
        split[x] = top + run + 1.0
    known = np.flatnonzero(~np.isnan(split))
    if len(known) < max(3, 0.2 * inside.any(axis=0).sum()):
        return np.full(w, mid, np.float32)
    split = np.interp(np.arange(w), known, split[known]).astype(np.float32)
    split = median_filter(split, size=5, mode="nearest")
    return gaussian_filter1d(split, 1.5).astype(np.float32)


class MouthPainter:
    """Paints the inner mouth for one portrait (its colours and own interior are read once)."""

    def __init__(
        self,
        portrait: np.ndarray,
        lm: np.ndarray,
        mouth_width: float,
        v: np.ndarray,
        rest_gap: float,
        style: PreviewStyle,
    ) -> None:
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
        self.seam_rgb = (
            np.median(lip_px, axis=0) if lip_px.size else np.array([160, 90, 90], np.float32)
        ) * style.seam_darken
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
            split = _split_rows(
                rgb,
                m,
                float((self.base[TOP, 1] + self.base[BOTTOM, 1]) / 2) - y0,
                self._lip_l(portrait, lm),
                mouth_width,
            )
            rows = np.arange(rgb.shape[0], dtype=np.float32)[:, None]
            ramp = np.clip((split[None, :] - rows) / max(0.15 * gap, 1.0) + 0.5, 0, 1)  # soft split
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

    @staticmethod
    def _lip_l(portrait: np.ndarray, lm: np.ndarray) -> float:
        """The lips' median Lab lightness (between the outer and inner lip lines)."""
        import cv2

        outer = lm[list(F.UPPER_OUTER + F.LOWER_OUTER[::-1][1:-1])].astype(np.float64)
        x0, y0 = np.maximum(np.floor(outer.min(axis=0)).astype(int), 0)
        x1, y1 = np.ceil(outer.max(axis=0)).astype(int) + 1
        crop = np.ascontiguousarray(portrait[y0:y1, x0:x1])
        band = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(band, [np.round((outer - (x0, y0)) * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
        cv2.fillPoly(band, [np.round((inner_points(lm) - (x0, y0)) * 4).astype(np.int32)], 0, cv2.LINE_8, shift=2)
        lab_l = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 0]
        return float(np.median(lab_l[band > 0])) if band.sum() >= 8 else 128.0

    def _cavity(self, mask: np.ndarray, ys: np.ndarray, local: np.ndarray, gap: float) -> np.ndarray:
        """The mouth's inside without teeth: the interior colours from top (shadow under the upper
        lip) to bottom (tongue), darker away from the lips (deeper into the mouth), and a lighter
        tongue rising from the bottom in the middle once the mouth is open enough to show it."""
        import cv2

        s = self.style
        h, w = mask.shape
        colour = self.cavity_top * (1 - ys) + self.cavity_bottom * ys  # [h, 1, 3]
        colour = np.broadcast_to(colour, (h, w, 3))
        depth = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 3)
        depth = np.clip(depth / max(0.35 * gap, 1.0), 0, 1)[..., None]
        colour = colour * (1 - s.cavity_depth_dark * depth)
        cx = 0.5 * (local[0, 0] + local[_N_UP - 1, 0])
        bottom = float(local[BOTTOM, 1])
        xs = (np.arange(w, dtype=np.float32) - cx) / max(0.3 * self.mouth_width, 1.0)
        yt = (np.arange(h, dtype=np.float32) - bottom) / max(0.45 * gap, 1.0)
        tongue = np.exp(-(xs[None, :] ** 2) - (yt[:, None] ** 2)) * np.clip((gap - 4.0) / 6.0, 0, 1) * s.tongue_strength
        tongue_rgb = np.minimum(self.cavity_bottom * 1.35 + np.array([18.0, 0.0, 0.0], np.float32), 255)
        return colour * (1 - tongue[..., None]) + tongue_rgb * tongue[..., None]

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
        colour = self._cavity(mask, ys, pts - (x0, y0), gap)
        if self.sprites:
            for anchor, sx, sy, rgb, sm in self.sprites:
                shift = pts[anchor] - self.base[anchor]
                ox, oy = int(round(sx + shift[0])) - x0, int(round(sy + shift[1])) - y0
                ya, yb, xa, xb = (
                    max(0, oy),
                    min(y1 - y0, oy + rgb.shape[0]),
                    max(0, ox),
                    min(x1 - x0, ox + rgb.shape[1]),
                )
                if yb > ya and xb > xa:
                    a = sm[ya - oy : yb - oy, xa - ox : xb - ox, None]
                    colour[ya:yb, xa:xb] = (
                        colour[ya:yb, xa:xb] * (1 - a) + rgb[ya - oy : yb - oy, xa - ox : xb - ox] * a
                    )
        else:  # painted upper teeth under the upper lip, fading toward the corners
            upper = local[:_N_UP]
            teeth_h = min(0.4 * gap, s.teeth_height * self.mouth_width) * 4
            band = np.concatenate([upper, (upper + np.array([0, teeth_h]))[::-1]]).astype(np.int32)
            teeth = np.zeros_like(mask)
            cv2.fillPoly(teeth, [band], 255, lineType=cv2.LINE_AA, shift=2)
            tm = teeth.astype(np.float32) / 255.0
            xs = (np.arange(x1 - x0, dtype=np.float32) + x0 - (pts[0, 0] + pts[_N_UP - 1, 0]) / 2) / (
                self.mouth_width / 2
            )
            tm *= np.clip(1.0 - xs**4, 0.0, 1.0)[None, :]
            shade = 1.0 - 0.25 * ys  # a little darker toward the tongue
            colour = colour * (1 - tm[..., None]) + self.teeth_rgb * shade * tm[..., None]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - m[..., None]) + colour * m[..., None]).astype(np.uint8)
