"""Attention through torch SDPA, and the streaming caches (per-step KV ring + shared sink).

Cache layout (all preallocated once, never resized):

* `SinkCache`: the condition ("sink") keys/values of the reference + FramePack motion tokens,
  shared by every denoising step (they are prefilled with t=0 and do not depend on the step).
  ``k``/``v``: ``[num_layers, B, capacity, H, D]``; rows ``[0, length)`` are valid. K is stored
  **un-roped** (after norm_k) because its RoPE is re-anchored on every call.
* `KVCache`: one per denoising step ("timestep forcing"): a ring of the last N blocks' roped K and
  raw V, ``k``/``v``: ``[num_layers, B, ring_tokens, H, D]``, plus a reference to the shared sink.
  A block at global token offset ``current_start`` is written at ``current_start % ring_tokens``.
  Until the ring has wrapped, attention sees rows ``[0, current_start + n)``; afterwards all rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full (unmasked) attention, q/k/v ``[B, L, H, D]`` -> ``[B, Lq, H*D]``, scale 1/sqrt(D)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


def sdpa_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with its log-sum-exp: q/k/v ``[B, L, H, D]`` -> out ``[B, H, Lq, D]``, lse ``[B, H, Lq]`` fp32.

    CUDA: cuDNN's fused kernel (flash as fallback). Elsewhere: the plain math (tests, CPU).
    """
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    b, h, n, _ = qt.shape
    if q.is_cuda:
        try:
            out, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(qt, kt, vt, None, True)[:2]
        except RuntimeError:
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention(qt, kt, vt)[:2]
        return out, lse.reshape(b, h, n).float()
    scores = (qt.float() @ kt.float().transpose(-1, -2)) * qt.shape[-1] ** -0.5
    lse = torch.logsumexp(scores, dim=-1)
    return (torch.softmax(scores, dim=-1) @ vt.float()).to(q.dtype), lse


def sdpa_two(q: torch.Tensor, k1: torch.Tensor, v1: torch.Tensor, k2: torch.Tensor, v2: torch.Tensor
             ) -> torch.Tensor:
    """Attention of q over the union of two key sets, without concatenating them: each part is
    attended on its own and the two results are merged by their log-sum-exp. -> ``[B, Lq, H*D]``."""
    o1, l1 = sdpa_lse(q, k1, v1)
    o2, l2 = sdpa_lse(q, k2, v2)
    m = torch.maximum(l1, l2)
    w1, w2 = torch.exp(l1 - m), torch.exp(l2 - m)
    out = (o1.float() * w1[..., None] + o2.float() * w2[..., None]) / (w1 + w2)[..., None]
    return out.to(q.dtype).transpose(1, 2).flatten(2)


@dataclass
class SinkCache:
    """Condition K/V shared by all step caches; filled by `CausalS2VDiT.prefill_sink`."""

    k: torch.Tensor
    v: torch.Tensor
    length: int = 0
    # RoPE of the sink tokens, kept from the prefill: reference-token grid (height, width) and the
    # cos/sin of the motion tokens (fixed positions); the reference part is re-anchored per call.
    ref_hw: tuple[int, int] = (0, 0)
    ref_tokens: int = 0
    motion_cos: torch.Tensor | None = None
    motion_sin: torch.Tensor | None = None

    @classmethod
    def allocate(cls, num_layers: int, batch: int, capacity: int, num_heads: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> SinkCache:
        shape = (num_layers, batch, capacity, num_heads, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def capacity(self) -> int:
        return self.k.shape[2]


@dataclass
class KVCache:
    """The per-denoising-step ring of roped block K / raw V, plus the shared sink."""

    k: torch.Tensor
    v: torch.Tensor
    sink: SinkCache
    extra: dict = field(default_factory=dict)

    @classmethod
    def allocate(cls, sink: SinkCache, ring_tokens: int) -> KVCache:
        layers, batch, _, heads, dim = sink.k.shape
        shape = (layers, batch, ring_tokens, heads, dim)
        dev, dt = sink.k.device, sink.k.dtype
        return cls(torch.zeros(shape, dtype=dt, device=dev), torch.zeros(shape, dtype=dt, device=dev), sink)

    @property
    def ring_tokens(self) -> int:
        return self.k.shape[2]

    def window(self, current_start: int, num_tokens: int) -> tuple[int, int]:
        """(write offset, number of valid ring rows) for a block of `num_tokens` at `current_start`."""
        size = self.ring_tokens
        if current_start >= size:
            write, valid = current_start % size, size
        else:
            write, valid = current_start, current_start + num_tokens
        if write + num_tokens > size:
            raise ValueError(f"block [{current_start}, +{num_tokens}) does not fit the KV ring of {size} "
                             "tokens; the ring must hold a whole number of blocks")
        return write, valid
