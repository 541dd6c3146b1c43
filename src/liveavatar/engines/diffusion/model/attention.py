"""Attention through torch SDPA. The streaming caches it reads (per-step KV ring + shared sink) are
called through model/caches.py's interface; their forms live in runtime/caches.py."""

from __future__ import annotations

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


def sdpa_two(q: torch.Tensor, k1: torch.Tensor, v1: torch.Tensor, k2: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Attention of q over the union of two key sets, without concatenating them: each part is
    attended on its own and the two results are merged by their log-sum-exp. -> ``[B, Lq, H*D]``."""
    o1, l1 = sdpa_lse(q, k1, v1)
    o2, l2 = sdpa_lse(q, k2, v2)
    m = torch.maximum(l1, l2)
    w1, w2 = torch.exp(l1 - m), torch.exp(l2 - m)
    out = (o1.float() * w1[..., None] + o2.float() * w2[..., None]) / (w1 + w2)[..., None]
    return out.to(q.dtype).transpose(1, 2).flatten(2)
