"""Displacement fields for the face: built once per portrait, mixed per frame.

A piecewise-affine warp over a fixed triangulation of the face landmarks (plus still anchor
points around the face) turns landmark targets into a dense *backward* field (for each output
pixel, where to sample the portrait). Mouth opening and blinks are sampled at a few amplitudes
and interpolated; lip spread and head motion are small, so one field each, scaled per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview.style import PreviewStyle

_LIPS = set(F.UPPER_INNER + F.LOWER_INNER + F.UPPER_OUTER + F.LOWER_OUTER)


@dataclass(frozen=True)
class Box:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class Field:
    """A backward field ``[h, w, 2]`` living in ``box`` of the head region."""

    box: Box
    data: np.ndarray


@dataclass(frozen=True)
class FaceGeometry:
    points: np.ndarray  # [N, 2] triangulation vertices in head-region coords (landmarks, then anchors)
    triangles: np.ndarray  # [T, 3]
    mouth_center: np.ndarray
    u: np.ndarray  # unit vector, image-left -> image-right mouth corner
    v: np.ndarray  # unit vector, down the face
    face_width: float
    face_height: float
    mouth_width: float
    gap0: float


def geometry(landmarks: np.ndarray, shape: tuple[int, int]) -> FaceGeometry:
    """Triangulate the 468 mesh landmarks (iris points left out) with still anchors."""
    from scipy.spatial import Delaunay

    lm = landmarks[:468].astype(np.float64)
    h, w = shape
    u = lm[F.MOUTH_RIGHT] - lm[F.MOUTH_LEFT]
    u /= np.linalg.norm(u) + 1e-9
    v = np.array([-u[1], u[0]])
    center = lm[list(F.SILHOUETTE)].mean(axis=0)
    rad = np.abs(lm[list(F.SILHOUETTE)] - center).max(axis=0)
    ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = center + np.stack([np.cos(ang), np.sin(ang)], 1) * rad * np.array([1.35, 1.3])
    edge = []
    for t in np.linspace(0, 1, 9):
        edge += [(t * (w - 1), 0), (t * (w - 1), h - 1), (0, t * (h - 1)), (w - 1, t * (h - 1))]
    anchors = np.concatenate([ring, np.array(edge)])
    anchors = anchors[(anchors[:, 0] >= 0) & (anchors[:, 0] <= w - 1) & (anchors[:, 1] >= 0) & (anchors[:, 1] <= h - 1)]
    pts = np.concatenate([lm, anchors])
    tri = Delaunay(pts, qhull_options="QJ").simplices
    mc = (lm[F.INNER_TOP] + lm[F.INNER_BOTTOM]) / 2
    return FaceGeometry(
        points=pts,
        triangles=tri.astype(np.int32),
        mouth_center=mc,
        u=u,
        v=v,
        face_width=float(np.linalg.norm(lm[F.CHEEK_RIGHT] - lm[F.CHEEK_LEFT])),
        face_height=float(np.linalg.norm(lm[F.CHIN] - lm[F.FOREHEAD])),
        mouth_width=float(np.linalg.norm(lm[F.MOUTH_RIGHT] - lm[F.MOUTH_LEFT])),
        gap0=float(max(0.0, (lm[F.INNER_BOTTOM] - lm[F.INNER_TOP]) @ v)),
    )


def jaw_only_offsets(g: FaceGeometry, level: float, style: PreviewStyle) -> np.ndarray:
    """The safe mode: the lower face stretches smoothly downward, the lips are never parted.

    Used when the mesh's mouth is not believable; nothing depends on where exactly the lips are,
    only on the face's size and the rough height of the mouth.
    """
    rel = g.points - g.mouth_center
    du = np.abs(rel @ g.u) / (g.face_width / 2)
    dv = (rel @ g.v) / g.face_height
    t = np.clip((dv + 0.08) / 0.2, 0, 1)
    w = t * t * (3 - 2 * t) * np.clip(1 - np.maximum(0, du - 0.45) / 0.5, 0, 1)
    w[468:] = 0
    return (level * style.jaw_only_drop * g.face_height * w)[:, None] * g.v[None, :]


def spread_offsets(g: FaceGeometry, style: PreviewStyle) -> np.ndarray:
    """Vertex displacements for fully spread lips (negated for rounded lips)."""
    rel = g.points - g.mouth_center
    du = (rel @ g.u) / (g.mouth_width / 2)
    dv = (rel @ g.v) / g.face_height
    amount = np.zeros(len(g.points))
    lips = np.array(sorted(_LIPS))
    amount[lips] = style.spread_lips * g.mouth_width * du[lips]
    near = (np.abs(dv) < 0.2) & (np.abs(du) < 2.2)
    near[list(_LIPS)] = False
    near[468:] = False
    amount[near] = style.spread_skin * g.mouth_width * np.clip(du[near], -1.5, 1.5) * (1 - np.abs(dv[near]) / 0.2)
    return amount[:, None] * g.u[None, :]


def blink_offsets(g: FaceGeometry, level: float, style: PreviewStyle) -> np.ndarray:
    """Vertex displacements that close both eyes by ``level``."""
    out = np.zeros_like(g.points)
    for upper, lower in ((F.EYE_A_UPPER, F.EYE_A_LOWER), (F.EYE_B_UPPER, F.EYE_B_LOWER)):
        for a, b in zip(upper[1:-1], lower[1:-1]):
            d = g.points[b] - g.points[a]
            out[a] = style.upper_lid_share * level * d
            out[b] = -(1 - style.upper_lid_share) * level * d
    return out


def backward_field(g: FaceGeometry, offsets: np.ndarray, shape: tuple[int, int]) -> Field:
    """Rasterize the piecewise-affine warp that moves vertices by ``offsets`` into a backward field."""
    import cv2

    moving = np.abs(offsets).sum(axis=1) > 1e-4
    tris = g.triangles[moving[g.triangles].any(axis=1)]
    h, w = shape
    if len(tris) == 0:
        return Field(Box(0, 1, 0, 1), np.zeros((1, 1, 2), np.float32))
    src = g.points[tris]  # [T, 3, 2]
    dst = (g.points + offsets)[tris]
    m = np.concatenate([dst, np.ones((len(tris), 3, 1))], axis=2)  # [T, 3, 3]
    det = np.linalg.det(m)
    src_det = np.linalg.det(np.concatenate([src, np.ones((len(tris), 3, 1))], axis=2))
    ok = (np.abs(det) > 1e-3) & (np.sign(det) == np.sign(src_det))  # skip collapsed or flipped triangles
    affine = np.zeros((len(tris), 3, 2))
    affine[ok] = np.linalg.solve(m[ok], src[ok])  # dst homogeneous -> src
    lo = np.floor(dst.reshape(-1, 2).min(axis=0)).astype(int) - 1
    hi = np.ceil(dst.reshape(-1, 2).max(axis=0)).astype(int) + 2
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(w, hi[0]), min(h, hi[1])
    label = np.zeros((y1 - y0, x1 - x0), np.int32)
    order = np.argsort(np.abs(det))  # thin triangles first, so real ones overwrite their edges
    for t in order:
        if ok[t]:
            poly = np.round((dst[t] - (x0, y0)) * 16).astype(np.int32)
            cv2.fillConvexPoly(label, poly, int(t) + 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(label)
    a = affine[label[ys, xs] - 1]  # [P, 3, 2]
    px, py = xs + x0, ys + y0
    sx = px * a[:, 0, 0] + py * a[:, 1, 0] + a[:, 2, 0]
    sy = px * a[:, 0, 1] + py * a[:, 1, 1] + a[:, 2, 1]
    data = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
    data[ys, xs, 0] = sx - px
    data[ys, xs, 1] = sy - py
    _fill_folds(data, label, dst[~ok] - (x0, y0))
    return Field(Box(y0, y1, x0, x1), data)


def _fill_folds(data: np.ndarray, label: np.ndarray, folded: np.ndarray) -> None:
    """Where only collapsed or flipped triangles land (a mouth closing far), take the displacement of
    the nearest proper triangle; a zero there would show the portrait's own pixel (its open mouth)."""
    import cv2
    from scipy.ndimage import distance_transform_edt

    if len(folded) == 0 or not (label > 0).any():
        return
    holes = np.zeros(label.shape, np.uint8)
    for tri in folded:
        cv2.fillConvexPoly(holes, np.round(tri * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    holes = (holes > 0) & (label == 0)
    if not holes.any():
        return
    _, (iy, ix) = distance_transform_edt(label == 0, return_indices=True)
    hy, hx = np.nonzero(holes)
    data[hy, hx] = data[iy[hy, hx], ix[hy, hx]]


def union(fields: list[Field]) -> list[Field]:
    """Re-express fields in their common box, so interpolating between them is one operation."""
    y0 = min(f.box.y0 for f in fields)
    y1 = max(f.box.y1 for f in fields)
    x0 = min(f.box.x0 for f in fields)
    x1 = max(f.box.x1 for f in fields)
    box = Box(y0, y1, x0, x1)
    out = []
    for f in fields:
        data = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
        data[f.box.y0 - y0 : f.box.y1 - y0, f.box.x0 - x0 : f.box.x1 - x0] = f.data
        out.append(Field(box, data))
    return out


def head_basis(g: FaceGeometry, shape: tuple[int, int]) -> np.ndarray:
    """Forward displacement fields ``[5, h, w, 2]`` for yaw, pitch, roll, tx, ty at unit amount.

    A smooth mask (1 on the head, 0 on the shoulders and background) carries a small rigid
    motion; yaw shifts the middle of the face more than its outline, so the head seems to turn.
    """
    h, w = shape
    c = g.points[:468].mean(axis=0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - c[0], yy - (c[1] - 0.1 * g.face_height)
    r = np.sqrt((dx / (0.62 * g.face_width)) ** 2 + (dy / (0.78 * g.face_height)) ** 2)
    t = np.clip((r - 1.0) / 0.55, 0, 1)
    mask = 1 - t * t * (3 - 2 * t)
    below = np.clip((yy - (c[1] + 0.45 * g.face_height)) / (0.35 * g.face_height), 0, 1)
    mask *= 1 - below * below * (3 - 2 * below)  # the neck follows less
    pivot = np.array([c[0], c[1] + 0.7 * g.face_height], np.float32)
    bump = np.clip(1 - (dx / (0.55 * g.face_width)) ** 2, 0, 1)
    basis = np.zeros((5, h, w, 2), np.float32)
    basis[0, ..., 0] = mask * bump * g.face_width  # yaw
    basis[1, ..., 1] = mask * g.face_height * (1 - 0.3 * (yy - c[1]) / g.face_height)  # pitch (nod)
    basis[2, ..., 0] = -mask * (yy - pivot[1])  # roll
    basis[2, ..., 1] = mask * (xx - pivot[0])
    basis[3, ..., 0] = mask * g.face_width  # tx
    basis[4, ..., 1] = mask * g.face_height  # ty
    return basis
