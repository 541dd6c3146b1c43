"""Quality measurements of generated talking-head frames (preview tests and benchmark).

Everything is measured on the OUTPUT frames with MediaPipe FaceMesh, independently of how the
engine made them: mouth opening against the audio's loudness, closure in pauses, background
stability and the shape of the face outside the mouth.
"""

from __future__ import annotations

import numpy as np

FPS = 25
# Upper-face points that speech must not move (pose aside): brows, nose, eye corners, forehead, temples.
RIGID = (
    70,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    300,
    1,
    4,
    5,
    6,
    168,
    197,
    195,
    98,
    327,
    33,
    133,
    362,
    263,
    10,
    151,
    9,
    127,
    356,
    234,
    454,
)
MOUTH_PAIRS = ((13, 14), (82, 87), (312, 317))


def landmarks_per_frame(frames) -> list[np.ndarray | None]:
    """478 (x, y) landmarks per frame, None where no face is found."""
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for f in frames:
            r = mesh.process(np.ascontiguousarray(f))
            if not r.multi_face_landmarks:
                out.append(None)
                continue
            h, w = f.shape[:2]
            out.append(np.array([[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark], np.float32))
    return out


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap over the face height (forehead 10 to chin 152)."""
    face_h = np.linalg.norm(lm[152] - lm[10])
    return float(np.mean([np.linalg.norm(lm[b] - lm[a]) for a, b in MOUTH_PAIRS]) / face_h)


def loudness_envelope(audio: np.ndarray, sr: int, num_frames: int, range_db: float = 40.0) -> np.ndarray:
    """Per-frame level in dB (40 ms window centred on the frame time), as 0..1 over the top ``range_db``."""
    half = int(0.02 * sr)
    env = np.empty(num_frames)
    for i in range(num_frames):
        c = int(round(i * sr / FPS))
        seg = audio[max(0, c - half) : c + half]
        env[i] = 20 * np.log10(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-9) if seg.size else -180.0
    peak = np.percentile(env, 98)
    return np.clip((env - (peak - range_db)) / range_db, 0, 1)


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 5) -> tuple[float, int, float]:
    """(r at lag 0, best lag, r at best lag); positive lag: ``a`` follows ``b`` late."""
    best, best_r = 0, -2.0
    r0 = float(np.corrcoef(a, b)[0, 1])
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: len(b) - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        r = float(np.corrcoef(x, y)[0, 1])
        if r > best_r:
            best, best_r = lag, r
    return r0, best, best_r


def pause_frames(
    audio: np.ndarray, sr: int, num_frames: int, min_s: float = 0.5, floor_db: float = -50.0
) -> np.ndarray:
    """Frames inside silent stretches (below ``floor_db`` dBFS) longer than ``min_s``."""
    hop = sr // 100
    n = len(audio) // hop
    level = 20 * np.log10(np.sqrt((audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)) + 1e-9)
    quiet = level < floor_db
    out = np.zeros(num_frames, bool)
    start = None
    for k in range(n + 1):
        q = k < n and quiet[k]
        if q and start is None:
            start = k
        elif not q and start is not None:
            if (k - start) / 100 > min_s:
                a, b = int(np.ceil(start / 100 * FPS)), int((k / 100) * FPS)
                out[a : min(b + 1, num_frames)] = True
            start = None
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def shape_deviation(lm: np.ndarray, ref: np.ndarray) -> float:
    """Largest distance of the RIGID points after a similarity fit to ``ref``, over the face height."""
    p, q = lm[list(RIGID)].astype(np.float64), ref[list(RIGID)].astype(np.float64)
    pc, qc = p - p.mean(0), q - q.mean(0)
    u, s, vt = np.linalg.svd(pc.T @ qc)
    r = u @ vt
    scale = s.sum() / (pc**2).sum()
    fitted = scale * pc @ r + q.mean(0)
    return float(np.linalg.norm(fitted - q, axis=1).max() / np.linalg.norm(ref[152] - ref[10]))


def rest_share(opening: np.ndarray, pauses: np.ndarray, tolerance: float = 0.02, rest: float | None = None) -> float:
    """Share of pause frames whose mouth is back at rest: within ``tolerance`` (of the face height) of
    the rest opening ``rest``.

    Pass ``rest`` as the mesh's reading of the engine's own rest frame (``rest_opening``): a smile that
    rests showing teeth, or a closed mouth that the mesh reads with a small gap, is then its own
    reference. Without it, the video's 5th-percentile opening is used, which a mesh that under-reads
    some speech frames (teeth edges taken for lips) drags below the true rest."""
    if not pauses.any():
        return float("nan")
    ref = float(np.percentile(opening, 5)) if rest is None else rest
    return float((np.abs(opening[pauses] - ref) < tolerance).mean())


def rest_opening(renderer) -> float | None:
    """The mesh's reading of a preview renderer's rest frame (mouth at rest, no blink, head still)."""
    from liveavatar.engines.preview.render import FrameParams

    lm = landmarks_per_frame([renderer.render(FrameParams(0.0, 0.0, 0.0, (0.0, 0.0, 0.0, 0.0, 0.0)))])[0]
    return None if lm is None else mouth_opening(lm)


def mouth_region(lm: np.ndarray, shape: tuple[int, int], margin: float = 0.35) -> tuple[slice, slice]:
    """A box around the lips (outer lip landmarks) grown by ``margin`` mouth widths."""
    lips = lm[[61, 291, 0, 17, 37, 267, 84, 314]]
    mw = float(np.linalg.norm(lm[291] - lm[61]))
    x0, y0 = lips.min(axis=0) - margin * mw
    x1, y1 = lips.max(axis=0) + margin * mw
    h, w = shape
    return slice(max(int(y0), 0), min(int(np.ceil(y1)), h)), slice(max(int(x0), 0), min(int(np.ceil(x1)), w))


def high_frequency(rgb: np.ndarray) -> float:
    """Mean absolute difference between the luma and its Gaussian blur (sigma 1.5): fine detail,
    hard edges and jaggies all raise it."""
    import cv2

    y = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(y - cv2.GaussianBlur(y, (0, 0), 1.5)).mean())


def mouth_artifact_ratio(frames, portrait: np.ndarray, lm: np.ndarray, q: float = 95) -> float:
    """The ``q``-th percentile over frames of the mouth region's high-frequency energy, over the
    portrait's own in the same region: 1 = as detailed as the portrait; painted seams, jagged
    holes and saw-tooth edges push it up, over-smoothed fills pull it down."""
    region = mouth_region(lm, portrait.shape[:2])
    ref = max(high_frequency(portrait[region]), 1e-6)
    return float(np.percentile([high_frequency(f[region]) for f in frames], q) / ref)
