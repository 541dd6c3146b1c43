"""The portrait's mouth as lips only: the base texture the preview's mouth closes on.

Closing a portrait's open mouth squeezes its interior between the lips; any dark interior pixel the
warp still samples shows as a jagged hole. So the interior is first replaced by the lips' own
texture, mirrored inward from each inner lip line (``lip_base``); mouth_paint.py paints the interior
when the mouth opens past its rest.
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.preview import face as F


def inner_points(lm: np.ndarray) -> np.ndarray:
    """The inner-lip polygon: upper lip corner to corner, then the lower lip back (corners once)."""
    return lm[list(F.UPPER_INNER + F.LOWER_INNER[::-1][1:-1])]


def _mouth_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c0 = lm[F.MOUTH_LEFT].astype(np.float64)
    u = lm[F.MOUTH_RIGHT] - c0
    u = u / (np.linalg.norm(u) + 1e-9)
    return c0, u, np.array([-u[1], u[0]])


def _not_lip(crop: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Pixels that are clearly not lip: much darker than the lips (the cavity, its shadow) or
    bright and unsaturated (teeth), judged against the lips' own median colour."""
    import cv2

    lab = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = np.median(lab[lips], axis=0) if lips.sum() >= 8 else lab.reshape(-1, 3).mean(axis=0)
    darker = lab[..., 0] < 0.6 * ref[0]
    teeth = (lab[..., 0] > ref[0] + 15) & (
        np.abs(lab[..., 1] - 128) + np.abs(lab[..., 2] - 128) < 0.6 * (abs(ref[1] - 128) + abs(ref[2] - 128)) + 4
    )
    return darker | teeth


def lip_base(portrait: np.ndarray, lm: np.ndarray, margin: float, reach: float | None = None) -> np.ndarray:
    """The portrait with its mouth interior (and ``margin`` px past the lip lines) filled with lip colour.

    The mesh's inner-lip polygon is often smaller than the dark interior (a shout's deep corners) or
    leaves the teeth's edge outside it; any of that left in place is squeezed into dark or white
    scribbles when the lips close. So the fill also takes, within ``reach`` px of the polygon and
    inside the lips, whatever is clearly not lip and touches the interior; its edge is feathered so
    the lips' texture and the fill blend without a line.
    """
    c0, u, v = _mouth_frame(lm)
    poly = inner_points(lm).astype(np.float64)
    outer = lm[list(F.UPPER_OUTER + F.LOWER_OUTER[::-1][1:-1])].astype(np.float64)
    mw = float(np.linalg.norm(lm[F.MOUTH_RIGHT] - lm[F.MOUTH_LEFT]))
    gap = float(np.linalg.norm(lm[F.INNER_BOTTOM] - lm[F.INNER_TOP]))
    # how far past the mesh's polygon the fill may reach: a wide mouth's dark corners, never more
    # than a fraction of the opening (thin parted lips would otherwise be taken whole)
    reach = min(0.1 * mw, 0.25 * gap) if reach is None else reach
    pad = int(np.ceil(margin + reach)) + 3
    lo = np.floor(outer.min(axis=0)).astype(int) - pad
    hi = np.ceil(outer.max(axis=0)).astype(int) + pad
    h, w = portrait.shape[:2]
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return portrait
    box = (x0, y0, x1, y1)
    inner, lips_all = _fill_poly(poly, box), _fill_poly(outer, box)
    crop = portrait[y0:y1, x0:x1]
    mask, band = _fill_mask(crop, inner, lips_all, margin, reach)
    vals = _column_colours(portrait, lm, crop, mask, band, margin, (c0, u, v), box)
    return _composite(portrait, mask, vals, inner, lips_all, margin, box, int((hi - lo).max()))


def _fill_poly(pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A uint8 mask of the polygon `pts` over the crop `box` (quarter-pixel vertices)."""
    import cv2

    x0, y0, x1, y1 = box
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [np.round((pts - (x0, y0)) * 4).astype(np.int32)], 255, cv2.LINE_8, shift=2)
    return m


def _fill_mask(
    crop: np.ndarray, inner: np.ndarray, lips_all: np.ndarray, margin: float, reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """(the fill's mask, the lips' band around the interior): the interior dilated by `margin`, grown
    over what touches it, lies inside the lips within `reach`, and is clearly not lip."""
    import cv2

    k = int(np.ceil(margin)) * 2 + 1
    mask = cv2.dilate(inner, np.ones((k, k), np.uint8))
    kr = int(np.ceil(reach)) * 2 + 1
    zone = (cv2.dilate(inner, np.ones((kr, kr), np.uint8)) > 0) & (cv2.dilate(lips_all, np.ones((3, 3), np.uint8)) > 0)
    band = (lips_all > 0) & (inner == 0)
    ref_px = band & ~zone
    if ref_px.sum() < 8:
        ref_px = band & (mask == 0)
    grow = zone & _not_lip(crop, ref_px)
    grown = mask > 0
    for _ in range(int(np.ceil(reach)) + 1):
        nxt = grown | (cv2.dilate(grown.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & grow
        if (nxt == grown).all():
            break
        grown = nxt
    return cv2.morphologyEx(grown.astype(np.uint8) * 255, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), band


def _column_colours(
    portrait: np.ndarray,
    lm: np.ndarray,
    crop: np.ndarray,
    mask: np.ndarray,
    band: np.ndarray,
    margin: float,
    frame: tuple,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """The fill colour of every mask pixel (in ``np.nonzero(mask)`` order).

    Each column takes the mean colour of the middles of its two lips (the lips' inner edges are often
    a dark shadow): the closing warp squeezes slivers of this fill between the lips, so it must be
    one smooth lip colour, the same from above and below. A sample far from the lips' median colour
    (a moustache over the upper lip, a tooth) is replaced by the median.
    """
    import cv2

    c0, u, v = frame
    ys, xs = np.nonzero(mask)
    px, py = xs + box[0], ys + box[1]
    a = (px - c0[0]) * u[0] + (py - c0[1]) * u[1]

    def line(idx: tuple[int, ...]) -> np.ndarray:
        p = lm[list(idx)].astype(np.float64) - c0
        pa, pb = p @ u, p @ v
        order = np.argsort(pa)
        return np.interp(a, pa[order], pb[order])

    ui, li, uo, lo_ = line(F.UPPER_INNER), line(F.LOWER_INNER), line(F.UPPER_OUTER), line(F.LOWER_OUTER)
    lip_px = crop[band & (mask == 0)].astype(np.float32)
    ref = np.median(lip_px, axis=0) if len(lip_px) >= 8 else None
    edge_u, edge_l = ui - margin, li + margin
    vals = 0
    for src_b in (edge_u - 0.5 * np.maximum(edge_u - uo, 1.0), edge_l + 0.5 * np.maximum(lo_ - edge_l, 1.0)):
        sx = (c0[0] + a * u[0] + src_b * v[0]).astype(np.float32)
        sy = (c0[1] + a * u[1] + src_b * v[1]).astype(np.float32)
        got = cv2.remap(portrait, sx[:, None], sy[:, None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[
            :, 0
        ].astype(np.float32)
        if ref is not None:
            far = np.linalg.norm(got - ref, axis=1) > 40
            got[far] = ref
        vals = vals + 0.5 * got
    return vals


def _composite(
    portrait: np.ndarray,
    mask: np.ndarray,
    vals: np.ndarray,
    inner: np.ndarray,
    lips_all: np.ndarray,
    margin: float,
    box: tuple[int, int, int, int],
    extent: int,
) -> np.ndarray:
    """The portrait with the smoothed fill laid over the mask, feathered, never past the lips."""
    import cv2

    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(mask)
    out = portrait.copy()
    # smooth the fill (a blur normalised inside the mask): slivers of it must not show streaks
    fill = np.zeros(mask.shape + (3,), np.float32)
    fill[ys, xs] = vals
    weight = (mask > 0).astype(np.float32)
    kb = 2 * int(max(2.0, 0.5 * extent / 6)) + 1
    fill = cv2.GaussianBlur(fill, (kb, kb), 0) / np.maximum(cv2.GaussianBlur(weight, (kb, kb), 0), 1e-3)[..., None]
    # feathered edge, but opaque over the interior itself
    sigma = max(0.6, 0.6 * margin)
    soft = cv2.GaussianBlur(weight, (0, 0), sigma)
    # never past the lips onto the skin (a dilated corner would leave a lip-coloured smudge there)
    within = cv2.GaussianBlur((cv2.dilate(lips_all, np.ones((3, 3), np.uint8)) > 0).astype(np.float32), (0, 0), 0.7)
    soft = np.minimum(soft, within)
    soft = np.maximum(soft, (cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0).astype(np.float32) * (inner > 0))
    fy, fx = np.nonzero(soft > 0.01)
    a_all = soft[fy, fx, None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    full = fill[fy, fx]
    missing = weight[fy, fx] == 0  # the feather reaches past the fill: extend it by the nearest fill colour
    if missing.any():
        from scipy.ndimage import distance_transform_edt

        _, (iy, ix) = distance_transform_edt(weight == 0, return_indices=True)
        full[missing] = fill[iy[fy[missing], fx[missing]], ix[fy[missing], fx[missing]]]
    region[fy, fx] = full * a_all + region[fy, fx] * (1 - a_all)
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out
