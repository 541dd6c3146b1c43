"""The diffusion engine: loads the checkpoint folder, builds the conditions, runs the block loop
and stream-decodes every block to frames as soon as it is denoised."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from liveavatar.config import GenerateConfig, Plan
from liveavatar.engines.base import Inputs, Notify
from liveavatar.engines.diffusion.loading.build import build_dit, compile_enabled
from liveavatar.engines.diffusion.loading.layout import CheckpointLayout
from liveavatar.engines.diffusion.loading.precision import model_dtype
from liveavatar.media.image import fit_to_size


@dataclass
class Models:
    dit: object
    vae: object
    text: object  # TextEncoder
    audio: object  # AudioFeatureEncoder


class DiffusionEngine:
    """Builds the parts from the checkpoint once; each `generate` is one `runtime.run.DiffusionRun`.

    ``memory``: the planner's MemoryFit (planning/fit.py) the engine was built for: the mode it
    starts in, the out-of-memory ladder's rungs, the command named when none is left. A run may
    bring its own (the server's resident engine runs many configs); the engine never asks the planner.
    """

    name = "diffusion"
    team = None  # runtime.workers.Team when the DiT runs on K > 1 workers
    text_on_cpu = False
    overlap_decode: bool | None = None  # decode block n while block n+1 denoises; None: on CUDA

    def __init__(
        self, models: Models, device, dtype, offload: bool, memory, compile_decoder: bool = False, notify_load: str = ""
    ) -> None:
        self.compile_decoder = compile_decoder
        self.models = models
        self.device = device
        self.dtype = dtype
        self.offload = offload
        self.load_message = notify_load
        # fingerprints (runtime/run.clip_fingerprint) at the last clip ends, keyed by clips done
        self.resume_states: dict[int, dict] = {}
        self.use_memory(memory)

    def use_memory(self, memory) -> None:
        """Take the planner's mode and the shape-keeping modes after it (the out-of-memory ladder)."""
        self.memory = memory
        self.mode, self.later = memory.mode, list(memory.later)

    @classmethod
    def from_config(cls, config: GenerateConfig, layout: CheckpointLayout, memory) -> DiffusionEngine:
        """Load every model of the release; torch.compile on CUDA unless ENABLE_COMPILE=false (upstream's switch).

        `memory`: the planner's MemoryFit; its mode decides fp8 weights and where the text encoder runs
        (explicit flags were already folded in by the planner)."""
        # large caches are allocated once and live long: expandable segments avoid fragmentation
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        import torch

        from liveavatar.engines.diffusion.encoders.audio_features import AudioFeatureEncoder
        from liveavatar.engines.diffusion.encoders.text_encoder import TextEncoder
        from liveavatar.engines.diffusion.runtime.workers import Team
        from liveavatar.engines.diffusion.vae.vae import load_vae

        # K > 1 DiT workers: the others start loading now, in parallel with this process
        team = Team.launch(config, layout, memory.choice)  # the workers follow the planner's per-rank plans
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = model_dtype(device)
        # as upstream on one GPU, offload defaults to on: the 11 GB umT5-XXL and wav2vec2 visit the
        # GPU only to encode, leaving the room to the DiT's step caches
        offload = (config.offload_model is not False) and device.type == "cuda"
        mode = memory.mode
        fp8 = bool(config.fp8) or mode.weights == "fp8"
        # with a decode worker this process only encodes and decodes: no DiT here
        dit, merged = (
            (None, None) if team is not None and team.decode_worker else build_dit(config, layout, device, dtype, fp8)
        )
        encoder_device = "cpu" if offload else device
        # the planner's low modes keep umT5-XXL (11 GB) off the GPU: it encodes on the CPU
        text_on_cpu = not mode.text_encoder_on_gpu
        models = Models(
            dit=dit,
            vae=load_vae(layout.vae, device=device, dtype=dtype),
            text=TextEncoder.from_checkpoint(layout.root, device="cpu" if text_on_cpu else encoder_device, dtype=dtype),
            audio=AudioFeatureEncoder.from_folder(layout.wav2vec, device=encoder_device, dtype=dtype),
        )
        loaded = f"note: Live Avatar LoRA merged into {merged.num_merged} modules" if merged else ""
        engine = cls(
            models,
            device,
            dtype,
            offload,
            memory,
            compile_decoder=compile_enabled(device),
            notify_load="\n".join(filter(None, [layout.lora_note, loaded])),
        )
        engine.team = team
        engine.text_on_cpu = text_on_cpu
        return engine

    @contextmanager
    def _on_device(self, module, stay: bool = False):
        """With offload, an encoder visits the GPU only while it works (`stay`: it encodes where it is)."""
        if not self.offload or stay:
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to("cpu")

    def generate(
        self, inputs: Inputs, plan: Plan, notify: Notify, start_clip: int = 0, memory=None
    ) -> Iterator[np.ndarray]:
        """Yield the frames of clips ``start_clip`` on; earlier clips are replayed, not yielded
        (the caches and the decoder's state come out exactly as in an uninterrupted run).
        ``memory``: this run's MemoryFit (None: the one the engine was built with)."""
        from liveavatar.engines.diffusion.runtime.run import DiffusionRun

        if memory is not None:
            self._adopt(memory)
        for line in self.load_message.splitlines():
            notify(line)
        m = self.models
        with self._on_device(m.text.model, stay=self.text_on_cpu):
            text = m.text.encode(plan.prompt)
        with self._on_device(m.audio.model):
            audio = m.audio.encode(inputs.audio, plan.num_clips * plan.frames_per_clip).to(self.device)
        portrait = fit_to_size(inputs.image, plan.height, plan.width)
        self.resume_states = {}  # a resident engine (the server) runs many videos
        yield from DiffusionRun(self, portrait, plan, notify, start_clip, text, audio)

    def _adopt(self, memory) -> None:
        """A run's own memory choice (the server's resident engine): weights and the text encoder
        follow its mode as a build for it would have placed them; the caches and decoder are per run."""
        if memory.mode.weights == "fp8" and self.device.type == "cuda" and not getattr(self.models.dit, "fp8", True):
            from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8

            quantize_linears_fp8(self.models.dit)
            self.models.dit.fp8 = True
        if not memory.mode.text_encoder_on_gpu and not self.text_on_cpu:
            self.models.text.model.to("cpu")
            self.text_on_cpu = True
        self.use_memory(memory)

    def open_session(self, portrait, plan: Plan, notify: Notify, options=None):
        """A live session (``live.session.Session``) over this loaded engine: the same block loop, fed
        block by block (engines/diffusion/live.py)."""
        from liveavatar.engines.diffusion.live import open_diffusion_session

        return open_diffusion_session(self, portrait, plan, notify, options)

    def decoder(self, mode):
        """A fresh streaming decoder for `mode` (tiled passes in the low modes)."""
        from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder
        from liveavatar.engines.diffusion.vae.vae import StreamingDecoder

        per_pass = 1 if self.device.type == "cuda" else 0
        if mode.decode_tiles > 1:
            return TiledStreamingDecoder(
                self.models.vae, mode.decode_tiles, latents_per_pass=per_pass, compile=self.compile_decoder
            )
        return StreamingDecoder(self.models.vae, latents_per_pass=per_pass, compile=self.compile_decoder)
