"""3-axis rotary position embedding with upstream's fp16-rounded tables.

A head of size d holds d/2 complex pairs ordered [temporal | height | width] with
d/2 - 2*(d/2//3), d/2//3 and d/2//3 pairs. The angle of pair j of an axis with n pairs at position p
is p * 10000^(-j/n) (computed in float64). Upstream stores the per-token rotation table as
complex-half, so cos and sin are rounded to float16; we keep those rounded values in float32.
A negative temporal position (FramePack motion tokens) is the complex conjugate, i.e. sin negated.

Positions of a token group follow upstream's ``rope_precompute``: for an axis with start s,
end e and target range t, the positions are ``linspace(s, s + t - 1, e - s)`` truncated to int
(for s < 0: the negated ``linspace(-s, -s - t + 1, e - s)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

THETA = 10000.0


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def _table(num_positions: int, pairs: int, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / torch.pow(
        torch.tensor(THETA, dtype=torch.float64), torch.arange(0, 2 * pairs, 2, dtype=torch.float64) / (2 * pairs)
    )
    angles = torch.outer(torch.arange(first, first + num_positions, dtype=torch.float64), inv)
    return torch.cos(angles).half().float(), torch.sin(angles).half().float()


class RopeTables:
    """Per-axis cos/sin tables on one device (built once; not part of the state dict)."""

    def __init__(self, head_dim: int, max_positions: int, device: torch.device, max_spatial: int = 2048) -> None:
        pt, ph, pw = axis_pairs(head_dim)
        self.device = device
        self.t_cos, self.t_sin = (a.to(device) for a in _table(max_positions, pt))
        self.h_cos, self.h_sin = (a.to(device) for a in _table(max_spatial, ph))
        self.w_cos, self.w_sin = (a.to(device) for a in _table(max_spatial, pw))

    def grid(self, t_start: int, frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [frames*height*width, d/2] for temporal positions t_start.., spatial 0.. (slices only)."""
        if t_start < 0:
            raise ValueError(f"temporal RoPE position {t_start} is negative")
        if t_start + frames > self.t_cos.shape[0]:
            # a live session runs past the table (45000 latent frames = 2 h): the rows it needs,
            # computed as the table's are (same values), so memory stays constant
            tc, ts = (a.to(self.device) for a in _table(frames, self.t_cos.shape[1], t_start))
        else:
            tc, ts = self.t_cos[t_start : t_start + frames], self.t_sin[t_start : t_start + frames]
        return self._combine(tc, ts, self.h_cos[:height], self.h_sin[:height], self.w_cos[:width], self.w_sin[:width])

    def group(self, f_pos: np.ndarray, h_pos: np.ndarray, w_pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin for arbitrary signed temporal positions and spatial positions (index gathers)."""
        sign = torch.tensor(np.where(f_pos < 0, -1.0, 1.0), dtype=torch.float32, device=self.device)
        fi = torch.tensor(np.abs(f_pos), dtype=torch.long, device=self.device)
        hi = torch.tensor(h_pos, dtype=torch.long, device=self.device)
        wi = torch.tensor(w_pos, dtype=torch.long, device=self.device)
        return self._combine(
            self.t_cos[fi],
            self.t_sin[fi] * sign[:, None],
            self.h_cos[hi],
            self.h_sin[hi],
            self.w_cos[wi],
            self.w_sin[wi],
        )

    @staticmethod
    def _combine(tc, ts, hc, hs, wc, ws) -> tuple[torch.Tensor, torch.Tensor]:
        f, h, w = tc.shape[0], hc.shape[0], wc.shape[0]

        def cat(t, hh, ww):
            return torch.cat(
                [
                    t[:, None, None, :].expand(f, h, w, -1),
                    hh[None, :, None, :].expand(f, h, w, -1),
                    ww[None, None, :, :].expand(f, h, w, -1),
                ],
                dim=-1,
            ).reshape(f * h * w, -1)

        return cat(tc, hc, wc), cat(ts, hs, ws)


def axis_positions(start: int, end: int, target: int) -> np.ndarray:
    """Upstream's position sampling for one axis (see module docstring)."""
    count = end - start
    if start >= 0:
        return np.linspace(start, start + target - 1, count).astype(int)
    return -np.linspace(-start, -target - start + 1, count).astype(int)


@dataclass(frozen=True)
class GridGroup:
    """One token group of upstream's grid_sizes: start/end (f, h, w) and target range (f, h, w)."""

    start: tuple[int, int, int]
    end: tuple[int, int, int]
    target: tuple[int, int, int]

    @property
    def num_tokens(self) -> int:
        return int(np.prod([e - s for s, e in zip(self.start, self.end)]))

    def shifted(self, frames: int) -> GridGroup:
        (f0, h0, w0), (f1, h1, w1) = self.start, self.end
        return GridGroup((f0 + frames, h0, w0), (f1 + frames, h1, w1), self.target)

    def freqs(self, tables: RopeTables) -> tuple[torch.Tensor, torch.Tensor]:
        f = axis_positions(self.start[0], self.end[0], self.target[0])
        h = axis_positions(self.start[1], self.end[1], self.target[1])
        w = axis_positions(self.start[2], self.end[2], self.target[2])
        return tables.group(f, h, w)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, L, H, D] by per-token cos/sin [L, D/2]; fp32 inputs rotate in float64 like upstream."""
    work = torch.float64 if x.dtype in (torch.float32, torch.float64) else torch.float32
    b, n, h, d = x.shape
    pairs = x.to(work).reshape(b, n, h, d // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c = cos.to(work)[None, :, None, :]
    s = sin.to(work)[None, :, None, :]
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(b, n, h, d)
    return out.to(x.dtype)
