"""Hyper-parameters of the causal S2V DiT (Wan2.2-S2V-14B + Live Avatar), read from upstream's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from liveavatar.engines.diffusion.latents import LATENT_CHANNELS

# config.json keys whose names differ from ours (none so far, kept for clarity)
_RENAMES: dict[str, str] = {}
# upstream constructor arguments that do not change the inference network, or that the released
# model sets one way and we implement only that way, with the values we support (None: any value)
_UPSTREAM_FIXED: dict[str, Any] = {
    # the reference and motion tokens are always modulated at timestep 0 (the t=0 row of denoise_block)
    "zero_timestep": True,
    "model_type": "s2v",
    "enable_motioner": False,
    "enable_tsm": False,
    "trainable_token_pos_emb": False,
    "window_size": (-1, -1),
    "local_attn_size": -1,
    "slide_motion_frames": False,
    "zero_init": None,
    "cross_attn_type": None,
    "motion_token_num": None,
}


@dataclass(frozen=True)
class DiTConfig:
    """Constructor arguments of upstream's ``CausalWanModel_S2V`` that change the network.

    Defaults are upstream's constructor defaults where the 14B config.json does not set a value
    (text_len 512, in/out 16, text_dim 4096); `wan_s2v_14b()` gives the released model.
    """

    dim: int = 5120
    ffn_dim: int = 13824
    freq_dim: int = 256
    num_heads: int = 40
    num_layers: int = 40
    patch_size: tuple[int, int, int] = (1, 2, 2)
    in_dim: int = LATENT_CHANNELS
    out_dim: int = LATENT_CHANNELS
    text_len: int = 512
    text_dim: int = 4096
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    cond_dim: int = LATENT_CHANNELS
    audio_dim: int = 1024
    num_audio_token: int = 4
    audio_layers: int = 25
    enable_adain: bool = True
    adain_mode: str = "attn_norm"
    audio_inject_layers: tuple[int, ...] = (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)
    add_last_motion: bool = True
    enable_framepack: bool = True
    framepack_drop_mode: str = "padd"
    zip_frame_buckets: tuple[int, int, int] = (1, 2, 16)
    # pixel motion frames prepended to the audio per block, and their latent count (upstream [73, 19])
    motion_frames: tuple[int, int] = (73, 19)
    rope_max_positions: int = 45000
    unknown_keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @classmethod
    def wan_s2v_14b(cls) -> DiTConfig:
        return cls()

    @classmethod
    def tiny(cls) -> DiTConfig:
        """The small config of the upstream-tiny parity reference (every path of the 14B model)."""
        return cls(
            dim=64,
            ffn_dim=128,
            freq_dim=32,
            num_heads=2,
            num_layers=2,
            text_len=16,
            text_dim=32,
            audio_dim=32,
            audio_inject_layers=(0, 1),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiTConfig:
        """Build from upstream's config.json dict (diffusers ConfigMixin style); unknown keys are kept aside."""
        names = {f.name for f in dataclasses.fields(cls)} - {
            "unknown_keys",
            "audio_layers",
            "zip_frame_buckets",
            "motion_frames",
            "rope_max_positions",
        }
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            key = _RENAMES.get(key, key)
            if key.startswith("_"):
                continue
            if isinstance(value, list):
                value = tuple(value)
            if key in names:
                kwargs[key] = value
            elif key in _UPSTREAM_FIXED:
                want = _UPSTREAM_FIXED[key]
                if want is not None and value != want:
                    raise ValueError(f"config {key}={value!r} is not supported (only {want!r}, as in Wan2.2-S2V-14B)")
            else:
                unknown.append(key)
        return cls(**kwargs, unknown_keys=tuple(sorted(unknown)))

    def validate(self) -> None:
        if self.dim % self.num_heads or self.head_dim % 2:
            raise ValueError(f"dim {self.dim} must split into {self.num_heads} heads of even size")
        if self.in_dim != LATENT_CHANNELS and self.enable_framepack:
            raise ValueError("FramePack motion tokens need in_dim 16 (upstream hard-codes 16 channels)")
        for layer in self.audio_inject_layers:
            if not 0 <= layer < self.num_layers:
                raise ValueError(f"audio inject layer {layer} is outside 0..{self.num_layers - 1}")
