"""Calibration: the one place where measured figures enter the memory planner.

Measured with `PYTHONPATH=src python3 benchmarks/bench_engine_gpu.py loop bf16 fp8 --clips 2`
(one H100 80GB, torch 2.11.0+cu130, 2026-11-24, benchmarks/RESULTS.md): torch.cuda.max_memory_allocated
of the real loop at 14B / 704*384 / 48 frames / 4 steps / text 120 tokens, decode 1 latent per
pass (compiled): bf16 76.0 GiB, fp8 61.2 GiB. Both leave the same 4.3 GiB above the persistent
terms (71.68 / 56.84 GiB), whatever the weights' dtype, so the transient is the decode pass, not
the DiT call (whose activations the formula puts near 1 GiB); DECODE_BYTES_PER_PIXEL_FRAME is that
transient divided by the pixels of one pass (384 x 704 x 4 frames). Re-measure with
benchmarks/bench_memory_gpu.py.

The block times (SECONDS_PER_BLOCK) project multi-GPU speeds (they agree with the modes' order):
one H200, 2026-12-04, ../shared/reference/gpu-baseline.md (liveavatar 20f5ee8, 14B random weights,
fp8 weights, 704*384, 4 steps on one GPU, the loop + compiled streaming decode, median of blocks 3-8).
"""

from __future__ import annotations

GIB = 2**30
MARGIN = 0.02  # share of the budget kept free for allocator slack (expandable segments: little)

CALIBRATION = {
    "command": "PYTHONPATH=src python3 benchmarks/bench_engine_gpu.py loop bf16 fp8 --clips 2",
    "device": "NVIDIA H100 80GB HBM3",
    "measured_peak_gib": {"bf16": 76.0, "fp8": 61.2},
    "settings": {"size": "704*384", "frames_per_clip": 48, "steps": 4, "decode_latents_per_pass": 1},
}
DECODE_BYTES_PER_PIXEL_FRAME = 4310.0  # Wan2.1 VAE (dim 96), bf16, causal decode incl. its carried state
# one DiT call, per block token: the residual stream, norms, q/k/v and their roped copies, attention
# and cross-attention outputs, the fp32 modulation temporaries (~12 x dim values), and the FFN
# hidden state twice (before and after the GELU); per window token: the [ring; sink] K and V
# concatenations and the roped sink K (structural: below the decode term at 14B, so not calibrated)
ACT_VALUES_PER_BLOCK_TOKEN_DIM = 12
ACT_VALUES_PER_WINDOW_TOKEN_DIM = 5
CUDA_CONTEXT_BYTES = int(0.5 * GIB)  # torch + cuBLAS/cuDNN handles, outside torch's allocator
ENCODER_WORKING_BYTES = int(1.0 * GIB)  # umT5 over 512 tokens / wav2vec2 over a chunk of audio
WAV2VEC2_LARGE_PARAMS = 317_000_000  # wav2vec2-large-xlsr-53 (release constant, ~1 %)

# seconds per 12-frame block (4 steps + the decode) by memory mode, H200, 2026-12-04; "bf16 resident"
# (bf16 weights) was not run there: the fp8-weights DiT time times the H100's compiled bf16/fp8 DiT
# ratio (0.911 / 0.739 s, benchmarks/RESULTS.md)
SECONDS_PER_BLOCK = {
    "bf16 resident": 0.115 + (0.834 - 0.115) * 0.911 / 0.739,
    "fp8 weights": 0.834,
    "fp8 KV": 1.068,
    "KV streamed from pinned host memory": 1.133,
    "text encoder on the CPU": 1.081,
    "smaller decode passes": 1.095,
}
# the compiled streaming decode of one block (H100, benchmarks/RESULTS.md, issue 6): taken out of
# the block times above to get a step's time
DECODE_SECONDS_PER_BLOCK = 0.115
SPEED_SOURCE = (
    "one-GPU block times of 2026-12-04 (H200, ../shared/reference/gpu-baseline.md) less the "
    "0.115 s compiled decode (H100, benchmarks/RESULTS.md)"
)
