"""The diffusion engine: loads the checkpoint folder, builds the conditions, runs the block loop
and stream-decodes every block to frames as soon as it is denoised."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from liveavatar.config import GenerateConfig, Plan
from liveavatar.engines.base import Inputs, Notify
from liveavatar.engines.diffusion.layout import CheckpointLayout
from liveavatar.media.image import fit_to_size

# the decoder is primed with this many still-reference latents so the first generated block
# continues a still portrait (4 frames per latent from the start; nothing is dropped)
DECODER_WARMUP_LATENTS = 7


@dataclass
class Models:
    dit: object
    vae: object
    text: object  # TextEncoder
    audio: object  # AudioFeatureEncoder


def compile_enabled(device) -> bool:
    """torch.compile on CUDA unless ENABLE_COMPILE=false (upstream's switch)."""
    return device.type == "cuda" and os.environ.get("ENABLE_COMPILE", "true").lower() != "false"


def build_dit(config: GenerateConfig, layout: CheckpointLayout, device, dtype):
    """The DiT with the LoRA merged (fp8 and compiled as configured): ``(dit, merge report)``."""
    from liveavatar.engines.diffusion.checkpoint import load_dit
    from liveavatar.engines.diffusion.lora import merge_lora

    # weights go straight from the memory-mapped shards to their device and dtype (no second
    # host copy); the LoRA is merged there, each W + (alpha/r) B A formed in fp32, then cast
    dit = load_dit(layout.root, device=device, dtype=dtype)
    merged = merge_lora(dit, layout.lora)
    if config.fp8 and device.type == "cuda":
        from liveavatar.engines.diffusion.fp8 import quantize_linears_fp8

        quantize_linears_fp8(dit)
    if compile_enabled(device):
        dit.accelerate(compile=True)  # one graph per layer half: ~20 s once, then 1.6x faster blocks
    return dit, merged


class DiffusionEngine:
    name = "diffusion"
    team = None  # runtime.workers.Team when the DiT runs on K > 1 workers

    def __init__(self, models: Models, device, dtype, offload: bool, compile_decoder: bool = False,
                 notify_load: str = "") -> None:
        self.compile_decoder = compile_decoder
        self.models = models
        self.device = device
        self.dtype = dtype
        self.offload = offload
        self.load_message = notify_load
        # fingerprints (runtime/resume.clip_fingerprint) at the last clip ends, keyed by clips done
        self.resume_states: dict[int, dict] = {}

    @classmethod
    def from_config(cls, config: GenerateConfig, layout: CheckpointLayout) -> "DiffusionEngine":
        """Load every model of the release; torch.compile on CUDA unless ENABLE_COMPILE=false (upstream's switch)."""
        # large caches are allocated once and live long: expandable segments avoid fragmentation
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        import torch

        from liveavatar.engines.diffusion.audio_features import AudioFeatureEncoder
        from liveavatar.engines.diffusion.runtime.workers import Team
        from liveavatar.engines.diffusion.text_encoder import TextEncoder
        from liveavatar.engines.diffusion.vae import load_vae

        # K > 1 DiT workers: the others start loading now, in parallel with this process
        team = Team.launch(config, layout)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        # as upstream on one GPU, offload defaults to on: the 11 GB umT5-XXL and wav2vec2 visit the
        # GPU only to encode, leaving the room to the DiT's step caches
        offload = (config.offload_model is not False) and device.type == "cuda"
        compile_ = compile_enabled(device)
        # with a decode worker this process only encodes and decodes: no DiT here
        dit, merged = (None, None) if team is not None and team.decode_worker else build_dit(config, layout, device, dtype)
        encoder_device = "cpu" if offload else device
        models = Models(
            dit=dit,
            vae=load_vae(layout.vae, device=device, dtype=dtype),
            text=TextEncoder.from_checkpoint(layout.root, device=encoder_device, dtype=dtype),
            audio=AudioFeatureEncoder.from_folder(layout.wav2vec, device=encoder_device, dtype=dtype),
        )
        loaded = f"note: Live Avatar LoRA merged into {merged.num_merged} modules" if merged else ""
        engine = cls(models, device, dtype, offload, compile_decoder=compile_,
                     notify_load="\n".join(filter(None, [layout.lora_note, loaded])))
        engine.team = team
        return engine

    @contextmanager
    def _on_device(self, module):
        """With offload, an encoder visits the GPU only while it works."""
        if not self.offload:
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to("cpu")

    def _require_cache_room(self, plan: Plan, loop_plan) -> None:
        import torch

        from liveavatar.engines.diffusion.runtime.loop import SINK_TOKENS_PER_FRAME
        from liveavatar.engines.diffusion.memory import cache_budget, require_room

        c = self.models.dit.config
        budget = cache_budget(c.num_layers, c.dim, loop_plan.latent_hw, loop_plan.latents_per_clip, plan.sample_steps,
                              SINK_TOKENS_PER_FRAME, torch.finfo(self.dtype).bits // 8)
        free, _ = torch.cuda.mem_get_info(self.device)
        require_room(budget, free, (plan.height, plan.width), plan.frames_per_clip)

    def generate(self, inputs: Inputs, plan: Plan, notify: Notify, start_clip: int = 0) -> Iterator[np.ndarray]:
        """Yield the frames of clips ``start_clip`` on; earlier clips are replayed, not yielded
        (the caches and the decoder's state come out exactly as in an uninterrupted run)."""
        import torch

        from liveavatar.engines.diffusion.conditioning import frames_to_uint8, motion_from_frames, reference_latents
        from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, denoise_blocks
        from liveavatar.engines.diffusion.runtime.resume import clip_fingerprint
        from liveavatar.resume import remember_state
        from liveavatar.engines.diffusion.vae import StreamingDecoder

        for line in self.load_message.splitlines():
            notify(line)
        m = self.models
        with self._on_device(m.text.model):
            text = m.text.encode(plan.prompt)
        with self._on_device(m.audio.model):
            audio = m.audio.encode(inputs.audio, plan.num_clips * plan.frames_per_clip).to(self.device)
        portrait = fit_to_size(inputs.image, plan.height, plan.width)
        ref, motion = reference_latents(m.vae, portrait)
        loop_plan = LoopPlan(
            frames_per_clip=plan.frames_per_clip,
            num_clips=plan.num_clips,
            latent_hw=(plan.height // 8, plan.width // 8),
            sample_steps=plan.sample_steps,
            sample_shift=plan.sample_shift,
            seed=plan.seed,
            last_clip_frames=plan.clip_frame_counts()[-1],
            # upstream: the online-decode path rolls the sink at clip 1, the default script does not
            rolling_sink=plan.enable_online_decode,
        )
        if self.device.type == "cuda" and self.team is None:  # workers check their own steps' room
            self._require_cache_room(plan, loop_plan)
        # one latent per decoder pass on the GPU: the same frames, ~7 % slower, but the decode's
        # activations shrink enough for bf16 14B + four step caches to fit on one 80 GB card
        decoder = StreamingDecoder(m.vae, latents_per_pass=1 if self.device.type == "cuda" else 0, compile=self.compile_decoder)
        decoder.decode_next(motion[:, :, :DECODER_WARMUP_LATENTS])
        remaining = plan.clip_frame_counts()
        pending: list = []
        first_clip: list = []  # clip 0's decoded frames: the motion context of the clip-1 sink
        # online decode turns each block into frames at once and rolls the sink at clip 1 with
        # motion re-encoded from clip 0's frames; otherwise a clip is decoded when it is complete
        # and the sink stays as prefilled (upstream's single-GPU default)
        def next_motion():
            return motion_from_frames(m.vae, torch.cat(first_clip, dim=2), portrait)

        self.resume_states = {}  # a resident engine (the server) runs many videos
        state: LoopState | None = None  # with K workers the loop's state lives in the workers
        if self.team is not None:  # K workers: the same loop, one step group each (runtime/workers.py)
            blocks = self.team.run(m.dit, text, audio, ref, motion, loop_plan, next_motion, notify)
        else:
            state = LoopState.start(plan.seed)
            blocks = denoise_blocks(m.dit, m.dit.encode_text(text.to(self.device)), audio, ref, motion, loop_plan,
                                    next_motion=next_motion, state=state)
        for block in blocks:
            clip = block.clip
            pending.append(block.latents)
            if block.last_in_clip:
                remember_state(self.resume_states, clip + 1,
                               clip_fingerprint(clip + 1, block.task.index + 1, state, block.latents))
            if not (plan.enable_online_decode or block.last_in_clip):
                continue
            decoded = decoder.decode_next(torch.cat(pending, dim=2))
            if clip == 0 and plan.num_clips > 1:
                first_clip.append(decoded)
            pending.clear()
            if clip < start_clip:
                continue  # replayed for the caches and the decoder's state only
            frames = frames_to_uint8(decoded)
            keep = frames[: remaining[clip]]
            remaining[clip] -= len(keep)
            if len(keep):
                yield keep
