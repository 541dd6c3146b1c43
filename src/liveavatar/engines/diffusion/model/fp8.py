"""Per-tensor FP8 (e4m3) linear layers, as upstream's ``--fp8``.

Weights: one scale per tensor, s_w = min(448 / max|W|, 448), stored as e4m3 with 1/s_w kept.
Activations: one dynamic scale per call, s_x = 448 / max|x|. On CUDA the product runs in
``torch._scaled_mm`` (bf16 out, fast accumulation); elsewhere (CPU tests) the same quantised
values are dequantised and multiplied in fp32, so the rounding is the same.

Modules whose qualified name contains one of `EXCLUDED` stay in their dtype (upstream's list).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8_MAX = 448.0
EXCLUDED = (
    "text_embedding",
    "time_embedding",
    "time_projection",
    "head.head",
    "casual_audio_encoder.encoder.final_linear",
)


def quantize_tensor(x: torch.Tensor, max_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x -> (e4m3 values, fp32 scalar 1/s) with s = 448 / max|x| (capped at `max_scale`)."""
    amax = x.detach().abs().amax().float().clamp(min=1e-12)
    scale = FP8_MAX / amax
    if max_scale is not None:
        scale = scale.clamp(max=max_scale)
    q = (x.float() * scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale.reciprocal()


class FP8Linear(nn.Module):
    """A Linear with e4m3 weight and a per-tensor scale; output in the original weight dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        w8, inv = quantize_tensor(linear.weight, max_scale=FP8_MAX)
        self.register_buffer("weight_fp8", w8)
        self.register_buffer("weight_scale_inv", inv)
        self.bias = linear.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3 per-tensor"

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_fp8.float() * self.weight_scale_inv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        x8, x_inv = quantize_tensor(x2)
        bias = None if self.bias is None else self.bias.to(self.out_dtype)
        if x.is_cuda and hasattr(torch, "_scaled_mm") and self.in_features % 16 == 0 and self.out_features % 16 == 0:
            rows = x8.shape[0]
            pad = (-rows) % 16
            if pad:
                x8 = F.pad(x8.view(torch.uint8), (0, 0, 0, pad)).view(torch.float8_e4m3fn)
            out = torch._scaled_mm(
                x8,
                self.weight_fp8.t(),
                scale_a=x_inv,
                scale_b=self.weight_scale_inv,
                bias=bias,
                out_dtype=self.out_dtype,
                use_fast_accum=True,
            )
            out = out[:rows]
        else:
            out = F.linear(x8.float() * x_inv, self.dequantized_weight(), None if bias is None else bias.float()).to(
                self.out_dtype
            )
        return out.reshape(*lead, self.out_features)


def excluded(name: str) -> bool:
    return any(part in name for part in EXCLUDED)


@torch.no_grad()
def quantize_linears_fp8(model: nn.Module, device: torch.device | str | None = None) -> int:
    """Replace every nn.Linear not on the exclusion list by an FP8Linear, in place, one at a time
    (the full-precision weight is dropped as soon as its module is replaced). Returns the count.

    ``device``: a model held in host memory is quantised one module at a time on that device and
    the rest moved there, so the device never holds the full-precision weights (memory planner)."""
    targets = [name for name, mod in model.named_modules() if type(mod) is nn.Linear and not excluded(name)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        setattr(parent, child, FP8Linear(linear.to(device) if device is not None else linear))
    if device is not None:
        model.to(device)
    return len(targets)
