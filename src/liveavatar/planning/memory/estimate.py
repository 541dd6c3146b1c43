"""A mode's estimate: every component once, and the three phases that peak separately.

* load: the DiT weights and the LoRA merge's transient (one module's fp32 delta); with fp8
  weights the bf16 weights are quantised one module at a time from host memory.
* encode: the DiT weights and whichever encoder visits the GPU (umT5-XXL 11 GB, wav2vec2).
* loop: weights, the step rings and sink (in the mode's form), the text context, the audio
  features, the VAE and the larger of one DiT call's activations and one decode pass.
The run's peak is the largest phase plus the CUDA context.
"""

from __future__ import annotations

from dataclasses import dataclass

from liveavatar.planning.memory import components as parts
from liveavatar.planning.memory.calibration import CUDA_CONTEXT_BYTES, ENCODER_WORKING_BYTES, GIB
from liveavatar.planning.memory.modes import Mode
from liveavatar.planning.memory.workload import Workload


@dataclass(frozen=True)
class Estimate:
    mode: Mode
    components: dict[str, int]  # bytes on the GPU, each term once
    phases: dict[str, int]  # bytes at each phase's peak (CUDA context not included)
    host_bytes: int = 0  # pinned host memory the mode needs (streamed rings)

    @property
    def peak(self) -> int:
        return max(self.phases.values()) + self.components["cuda_context"]

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.get)

    def summary(self) -> dict:
        out = {
            "mode": self.mode.name,
            "peak_gib": round(self.peak / GIB, 2),
            "components": {k: round(v / GIB, 3) for k, v in self.components.items()},
            "peak_phase": self.peak_phase,
        }
        if self.host_bytes:
            out["host_pinned_gib"] = round(self.host_bytes / GIB, 2)
        return out


def estimate(work: Workload, mode: Mode) -> Estimate:
    """Every term in bytes, for one mode."""
    weights, largest_linear = parts.dit_weights(work, mode)
    rings = parts.kv_rings_on_gpu(work, mode)
    sink, text_ctx, audio = (
        parts.sink_bytes(work, mode),
        parts.text_context_bytes(work),
        parts.audio_feature_bytes(work),
    )
    act, vae, decode = (
        parts.dit_activation_bytes(work, mode),
        parts.vae_weight_bytes(work),
        parts.vae_decode_bytes(work, mode),
    )
    t5, w2v = parts.umt5_bytes(work), parts.wav2vec2_bytes(work)
    lora = parts.lora_transient_bytes(work, mode, largest_linear)
    resident_encoders = (t5 + w2v) if work.encoders_resident else 0
    umt5 = t5 if (mode.text_encoder_on_gpu or work.encoders_resident) else 0
    components = {
        "dit_weights": weights,
        "lora_merge_transient": lora,
        "kv_rings": rings,
        "sink": sink,
        "text_context": text_ctx,
        "audio_features": audio,
        "dit_activations": act,
        "vae_weights": vae,
        "vae_decode": decode,
        "umt5": umt5,
        "wav2vec2": w2v,
        "cuda_context": CUDA_CONTEXT_BYTES,
    }
    encoding = ENCODER_WORKING_BYTES if work.encodes else 0
    phases = {
        "load": weights + lora + resident_encoders,
        "encode": weights + max(umt5, w2v) + encoding + resident_encoders,
        "loop": weights + rings + sink + text_ctx + audio + vae + max(act, decode) + resident_encoders,
    }
    streamed = mode.kv.placement == "host"
    return Estimate(mode, components, phases, host_bytes=parts.ring_bytes(work, mode) * work.steps if streamed else 0)
