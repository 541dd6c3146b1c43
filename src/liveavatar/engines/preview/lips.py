"""Where the lips and the face around them go for a mouth opening: vertex displacements for the warp.

Every vertex moves by a smooth function of where it lies, not by which landmark list it is in: the
mesh has rings of lip vertices between the inner and outer lines, and a ring left behind while its
neighbours move folded the triangles between them (the saw-tooth edges and dark slashes a closing
mouth used to show). The gap change is set per column from both inner lip lines and falls to zero
at the inner corners, so a closing mouth meets along its whole line, corners included; what still
folds (a shout's steep, deep corners) is relaxed toward its neighbours' motion.
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.preview import face as F
from liveavatar.engines.preview.fields import FaceGeometry
from liveavatar.engines.preview.style import PreviewStyle


def _line(a: np.ndarray, ab: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    q = ab[list(idx)]
    order = np.argsort(q[:, 0])
    return np.interp(a, q[order, 0], q[order, 1])


def mouth_coords(g: FaceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex in the mouth's frame: along the mouth (``a``) and down the face (``b``), pixels."""
    rel = g.points - g.mouth_center
    return rel @ g.u, rel @ g.v


def _change(
    gap: np.ndarray, x: np.ndarray, level: float, mouth_width: float, keep_rest: bool, style: PreviewStyle
) -> np.ndarray:
    """How much the inner-lip gap ``gap`` at ``x`` (-1 .. 1 between the inner corners) changes for an
    opening ``level`` (0 rest .. 1 wide). ``keep_rest``: the portrait's own gap is the rest (a smile
    showing teeth stays one); otherwise the lips meet at rest. The full opening is lens-shaped (closed
    at the corners), the style's widest gap in the middle, and always a little wider than the rest."""
    profile = np.sqrt(np.clip(1 - x * x, 0, 1))
    rest = gap if keep_rest else np.zeros_like(gap)
    full = np.maximum(style.max_gap * mouth_width * profile, rest + style.min_extra_gap * mouth_width * profile)
    return np.where(np.abs(x) < 1, rest + level * (full - rest) - gap, 0.0)


def gap_change(g: FaceGeometry, level: float, style: PreviewStyle, keep_rest: bool) -> tuple[np.ndarray, float]:
    """Per vertex, the change of the inner-lip gap in its own column (0 at and beyond the inner
    corners), and the change at the mouth's centre.

    Columns, not index pairs: the mesh's upper and lower inner-lip points are not above one another,
    so each vertex's target is read from both lip lines at its own position along the mouth; a closing
    mouth then meets on one line instead of a zig-zag."""
    a, b = mouth_coords(g)
    ab = np.stack([a, b], axis=1)
    c0, c1 = a[F.UPPER_INNER[0]], a[F.UPPER_INNER[-1]]
    half = max(0.5 * (c1 - c0), 1e-6)
    gap = np.maximum(_line(a, ab, F.LOWER_INNER) - _line(a, ab, F.UPPER_INNER), 0.0)
    d = _change(gap, (a - 0.5 * (c0 + c1)) / half, level, g.mouth_width, keep_rest, style)
    own = np.array([max(0.0, float((g.points[F.INNER_BOTTOM] - g.points[F.INNER_TOP]) @ g.v))])
    centre = _change(
        own, np.array([-0.5 * (c0 + c1) / half]), level, g.mouth_width, keep_rest, style
    )  # the centre is a = 0
    return d, float(centre[0])


def jaw_offsets(g: FaceGeometry, level: float, style: PreviewStyle, keep_rest: bool = False) -> np.ndarray:
    """Vertex displacements (down the face) that set the inner-lip gap for an opening ``level``.

    One continuous motion per side of the opening, read at each vertex's position (so vertices that
    lie close together move alike, whatever ring of the mesh they belong to): in each column the
    lower lip makes ``lower_share`` of the gap change and the upper lip the rest; the corners move by
    ``corner_follow`` of the lower lip's centre motion, fading along the lips toward the centre and
    away from the corners on the cheeks. Below the lower lip the skin blends, over ``chin_blend`` of
    the face height, from the lip's motion to the chin's (``chin_follow`` of the lower lip's centre,
    fading to the sides); above the upper lip to no motion over half that.
    """
    lo, hi = style.lower_share, 1.0 - style.lower_share
    d, centre = gap_change(g, level, style, keep_rest)
    a, b = mouth_coords(g)
    ab = np.stack([a, b], axis=1)
    uo, ui = _line(a, ab, F.UPPER_OUTER), _line(a, ab, F.UPPER_INNER)
    li, lo_line = _line(a, ab, F.LOWER_INNER), _line(a, ab, F.LOWER_OUTER)
    half = max(0.5 * (a[F.MOUTH_RIGHT] - a[F.MOUTH_LEFT]), 1e-6)
    mid_a = 0.5 * (a[F.MOUTH_RIGHT] + a[F.MOUTH_LEFT])
    x = np.abs(a - mid_a) / half
    # the corners' share: along the lips 0 at the centre to 1 at the corners, fading beyond them
    corner = style.corner_follow * lo * centre * np.minimum(x, 1.0) ** 2 * np.exp(-((np.maximum(x - 1, 0) / 0.5) ** 2))

    def smooth(t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0, 1)
        return t * t * (3 - 2 * t)

    du = np.abs(a) / (g.face_width / 2)
    chin = lo * centre * style.chin_follow * np.clip(1 - np.maximum(0, du - 0.35) / 0.6, 0, 1)
    t_low = smooth((b - lo_line) / (style.chin_blend * g.face_height))
    t_up = smooth((uo - b) / (0.5 * style.chin_blend * g.face_height))
    lower = b > 0.5 * (ui + li)
    amount = np.where(lower, (lo * d + corner) * (1 - t_low) + chin * t_low, (corner - hi * d) * (1 - t_up))
    amount[468:] = 0.0
    side = np.where(lower, 2, 1)
    side[np.where(lower, b > lo_line + 0.5, b < uo - 0.5) | (x > 1)] = 0
    return _unfold(g, amount, side)[:, None] * g.v[None, :]


_INNER = np.array(sorted(set(F.UPPER_INNER + F.LOWER_INNER)))


def _signed_areas(pts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    t = pts[tris]
    return 0.5 * (
        (t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1])
    )


def _opening(g: FaceGeometry) -> np.ndarray:
    """Triangles of the mouth's opening (all three corners on the inner lip lines): they collapse
    when the lips meet, which is no fold."""
    return np.isin(g.triangles, _INNER).all(axis=1)


def flipped(g: FaceGeometry, amount: np.ndarray) -> np.ndarray:
    """Triangles (outside the opening) that a displacement ``amount`` along ``v`` turns inside out."""
    a0 = _signed_areas(g.points, g.triangles)
    a1 = _signed_areas(g.points + amount[:, None] * g.v[None, :], g.triangles)
    return (np.sign(a0) != np.sign(a1)) & (np.abs(a1) > 0.05) & ~_opening(g)


def _unfold(g: FaceGeometry, amount: np.ndarray, side: np.ndarray, rounds: int = 80) -> np.ndarray:
    """Relax the displacements of the vertices of flipped triangles toward their neighbours' until
    nothing folds (the inner lip lines are held, so the lips still meet where they should). A steep
    portrait mouth (a shout's deep corners) otherwise asks neighbouring vertices for very different
    motions and the warp turns triangles inside out: jagged, dark slashes at the corners.
    ``side``: 0 skin, 1 upper lip, 2 lower lip; a lip never averages with the other lip."""
    tris = g.triangles[~_opening(g)]
    n = len(g.points)
    held = np.zeros(n, bool)
    held[_INNER] = True
    held[468:] = True
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    edges = edges[side[edges[:, 0]] + side[edges[:, 1]] != 3]
    degree = np.bincount(edges[:, 0], minlength=n).astype(np.float64)
    out = amount.copy()
    for _ in range(rounds):
        bad = flipped(g, out)
        if not bad.any():
            break
        move = np.zeros(n, bool)
        move[g.triangles[bad].ravel()] = True
        move &= ~held
        if not move.any():
            break
        mean = np.bincount(edges[:, 0], weights=out[edges[:, 1]], minlength=n) / np.maximum(degree, 1)
        out[move] = 0.5 * out[move] + 0.5 * mean[move]
    return out


def folded_share(g: FaceGeometry, offsets: np.ndarray) -> float:
    """Area of the triangles outside the mouth's opening that ``offsets`` turn inside out, over the
    mouth's area (a 0.3 x 1 mouth-width box): 0 for a clean warp."""
    amount = offsets @ g.v
    bad = flipped(g, amount)
    a1 = _signed_areas(g.points + offsets, g.triangles)
    return float(np.abs(a1[bad]).sum() / max(0.3 * g.mouth_width**2, 1e-6))
