"""Attention that reads K/V as the caches store them: e4m3 values with one fp32 scale per token and
head (runtime/caches.py's fp8 form), or plain bf16/fp16 rows, in up to two key sets (the ring and
the sink) merged by one online softmax, so neither a de-quantised copy nor a [ring; sink]
concatenation is ever made.

Why our own kernel: FlashInfer's fp8 prefill and Transformer Engine's fp8 attention take one scale
per tensor (or per head), not one per token and head as the ring stores them; re-scaling the ring
to a per-tensor scale would cost the pass over the ring this kernel exists to avoid.

The softmax scale, the per-token K scale and log2(e) fold into the logits' columns, the per-token V
scale into the probabilities' columns (both are per key row), so the stored bytes are used as they
are. ``fp8_qk``: Q is quantised per (query, head) row in the kernel and Q.K^T runs as an fp8 dot
(Hopper's fp8 tensor cores: twice the bf16 rate); otherwise K is widened to Q's dtype in registers.
P.V always runs in Q's dtype.

Numerics budget (tests/diffusion/test_fp8_attention.py): against SDPA on the de-quantised K/V, rel
L2 <= 2e-2 per call; against SDPA on the unquantised K/V, the fp8 storage error itself (~3e-2).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

FP8_MAX = 448.0
LOG2E = 1.4426950408889634


class StoredKV(NamedTuple):
    """One key set as stored: ``k``/``v`` ``[B, N, H, D]``; ``*_scale`` ``[B, N, H, 1]`` fp32 or None
    (None: the rows are in a model dtype)."""

    k: torch.Tensor
    k_scale: torch.Tensor | None
    v: torch.Tensor
    v_scale: torch.Tensor | None


_KERNEL = None


def _built():
    global _KERNEL
    if _KERNEL is None:
        from liveavatar.engines.diffusion.model import fp8_attention_kernel

        _KERNEL = fp8_attention_kernel
    return _KERNEL


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Stored e4m3 rows and their per-row scales -> values in `dtype` (the fp8 form read back)."""
    return (q.float() * scale).to(dtype)


def _strides(t: torch.Tensor | None, like: torch.Tensor) -> tuple[int, int, int]:
    """(batch, token, head) strides of a ``[B, N, H, ...]`` tensor (a dummy's for a missing scale)."""
    t = like if t is None else t
    return t.stride(0), t.stride(1), t.stride(2)


def _set_args(part: StoredKV) -> list:
    if part.k.stride(-1) != 1 or part.v.stride(-1) != 1:
        raise ValueError("K/V rows must be contiguous in the head dimension")
    ks = part.k_scale if part.k_scale is not None else part.k
    vs = part.v_scale if part.v_scale is not None else part.v
    return [
        part.k,
        ks,
        part.v,
        vs,
        *_strides(part.k, part.k),
        *_strides(ks, part.k),
        *_strides(part.v, part.v),
        *_strides(vs, part.v),
        part.k.shape[1],
    ]


def stored_attention(
    q: torch.Tensor,
    first: StoredKV,
    second: StoredKV | None = None,
    fp8_qk: bool = False,
    block_m: int = 128,
    block_n: int = 64,
    num_warps: int = 8,
    num_stages: int = 2,
) -> torch.Tensor:
    """Unmasked attention of q ``[B, Lq, H, D]`` over the union of one or two stored key sets
    -> ``[B, Lq, H*D]`` in q's dtype, scale 1/sqrt(D). Runs on CUDA, or anywhere under
    ``TRITON_INTERPRET=1``."""
    module = _built()
    b, n_q, heads, dim = q.shape
    if q.stride(-1) != 1:
        q = q.contiguous()
    if second is None:  # an empty second set: zero keys, any tensors of the right kind
        second = StoredKV(
            first.k[:, :0],
            None if first.k_scale is None else first.k_scale[:, :0],
            first.v[:, :0],
            None if first.v_scale is None else first.v_scale[:, :0],
        )
    out = torch.empty((b, n_q, heads, dim), dtype=q.dtype, device=q.device)
    grid = (-(-n_q // block_m), b * heads)
    flags = dict(
        K1_SCALED=first.k_scale is not None,
        V1_SCALED=first.v_scale is not None,
        K2_SCALED=second.k_scale is not None,
        V2_SCALED=second.v_scale is not None,
        FP8_QK=fp8_qk,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        D=dim,
        DOT_F32=os.environ.get("TRITON_INTERPRET") == "1",
    )
    module.attention_kernel[grid](
        q,
        out,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        *_set_args(first),
        *_set_args(second),
        n_q,
        heads,
        dim**-0.5 * LOG2E,
        **flags,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out.flatten(2)
