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
from liveavatar.engines.diffusion.loading.layout import CheckpointLayout
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


def build_dit(config: GenerateConfig, layout: CheckpointLayout, device, dtype, fp8: bool | None = None):
    """The DiT with the LoRA merged (fp8 and compiled as configured): ``(dit, merge report)``.

    ``fp8`` (default: ``--fp8`` on CUDA): the memory planner's mode may ask for it too."""
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    fp8 = (bool(config.fp8) if fp8 is None else fp8) and device.type == "cuda"
    # weights go straight from the memory-mapped shards to their device and dtype (no second
    # host copy); the LoRA is merged there, each W + (alpha/r) B A formed in fp32, then cast.
    # fp8: load and merge in host memory, quantise module by module onto the GPU, so the GPU
    # never holds the bf16 weights (30 GiB at 14B)
    dit = load_dit(layout.root, device="cpu" if fp8 else device, dtype=dtype)
    merged = merge_lora(dit, layout.lora)
    if fp8:
        from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8

        quantize_linears_fp8(dit, device=device)
        dit._rope = None
    dit.fp8 = fp8
    if compile_enabled(device):
        dit.accelerate(compile=True)  # one graph per layer half: ~20 s once, then 1.6x faster blocks
    return dit, merged


class DiffusionEngine:
    name = "diffusion"
    team = None  # runtime.workers.Team when the DiT runs on K > 1 workers
    overlap_decode: bool | None = None  # decode block n while block n+1 denoises; None: on CUDA

    def __init__(self, models: Models, device, dtype, offload: bool, compile_decoder: bool = False,
                 notify_load: str = "", memory=None) -> None:
        from liveavatar.planning.memory import MODES

        self.compile_decoder = compile_decoder
        self.models = models
        self.device = device
        self.dtype = dtype
        self.offload = offload
        self.load_message = notify_load
        # fingerprints (runtime/resume.clip_fingerprint) at the last clip ends, keyed by clips done
        self.resume_states: dict[int, dict] = {}
        # the memory planner's mode and the shape-keeping modes after it (the out-of-memory ladder)
        fp8 = getattr(models.dit, "fp8", False)
        self.mode = memory.mode if memory is not None else MODES[1 if fp8 else 0]
        self.later = list(memory.later) if memory is not None else list(MODES[MODES.index(self.mode) + 1:])
        self.config: GenerateConfig | None = None
        self.memory = memory

    @classmethod
    def from_config(cls, config: GenerateConfig, layout: CheckpointLayout, memory=None) -> "DiffusionEngine":
        """`memory`: the planner's Choice (planning/memory.py); its mode decides fp8 weights and where
        the text encoder runs (explicit flags were already folded in by the planner)."""
        """Load every model of the release; torch.compile on CUDA unless ENABLE_COMPILE=false (upstream's switch)."""
        # large caches are allocated once and live long: expandable segments avoid fragmentation
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        import torch

        from liveavatar.engines.diffusion.encoders.audio_features import AudioFeatureEncoder
        from liveavatar.engines.diffusion.runtime.workers import Team
        from liveavatar.engines.diffusion.encoders.text_encoder import TextEncoder
        from liveavatar.engines.diffusion.vae.vae import load_vae

        # K > 1 DiT workers: the others start loading now, in parallel with this process
        team = Team.launch(config, layout)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        # as upstream on one GPU, offload defaults to on: the 11 GB umT5-XXL and wav2vec2 visit the
        # GPU only to encode, leaving the room to the DiT's step caches
        offload = (config.offload_model is not False) and device.type == "cuda"
        compile_ = compile_enabled(device)
        mode = memory.mode if memory is not None else None
        fp8 = bool(config.fp8) or (mode is not None and mode.weights == "fp8")
        # with a decode worker this process only encodes and decodes: no DiT here
        dit, merged = (None, None) if team is not None and team.decode_worker else build_dit(config, layout, device, dtype, fp8)
        encoder_device = "cpu" if offload else device
        # the planner's low modes keep umT5-XXL (11 GB) off the GPU: it encodes on the CPU
        text_on_cpu = mode is not None and not mode.text_encoder_on_gpu
        models = Models(
            dit=dit,
            vae=load_vae(layout.vae, device=device, dtype=dtype),
            text=TextEncoder.from_checkpoint(layout.root, device="cpu" if text_on_cpu else encoder_device, dtype=dtype),
            audio=AudioFeatureEncoder.from_folder(layout.wav2vec, device=encoder_device, dtype=dtype),
        )
        loaded = f"note: Live Avatar LoRA merged into {merged.num_merged} modules" if merged else ""
        engine = cls(models, device, dtype, offload, compile_decoder=compile_,
                     notify_load="\n".join(filter(None, [layout.lora_note, loaded])), memory=memory)
        engine.team = team
        engine.text_on_cpu = text_on_cpu
        engine.config = config
        return engine

    text_on_cpu = False

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

    def generate(self, inputs: Inputs, plan: Plan, notify: Notify, start_clip: int = 0) -> Iterator[np.ndarray]:
        """Yield the frames of clips ``start_clip`` on; earlier clips are replayed, not yielded
        (the caches and the decoder's state come out exactly as in an uninterrupted run)."""
        import torch

        from liveavatar.engines.diffusion.encoders.conditioning import motion_from_frames, reference_latents
        from liveavatar.engines.diffusion.runtime.frames import BlockFrames
        from liveavatar.engines.diffusion.runtime.ladder import Ladder
        from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, StepCaches, denoise_blocks
        from liveavatar.engines.diffusion.runtime.modes import step_down
        from liveavatar.engines.diffusion.runtime.overlap import decode_side, overlap_fits
        from liveavatar.engines.diffusion.runtime.resume import clip_fingerprint
        from liveavatar.errors import UserError
        from liveavatar.planning.memory import finish_command
        from liveavatar.resume import remember_state

        for line in self.load_message.splitlines():
            notify(line)
        m = self.models
        with self._on_device(m.text.model, stay=self.text_on_cpu):
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
        # one latent per decoder pass on the GPU: the same frames, ~7 % slower, but the decode's
        # activations shrink enough for bf16 14B + four step caches to fit on one 80 GB card
        decoder = self._decoder(self.mode)
        # CUDA: block n's decode overlaps block n+1's DiT work (runtime/overlap.py); CPU: in order
        overlap = self.device.type == "cuda" if self.overlap_decode is None else self.overlap_decode
        ahead = overlap and self.team is None and overlap_fits(self.memory)
        with decode_side(ahead, motion):
            decoder.decode_next(motion[:, :, :DECODER_WARMUP_LATENTS])
        self.resume_states = {}  # a resident engine (the server) runs many videos

        def clip_end(block) -> None:  # resume records: the loop's state at each clip end (K > 1: in the workers)
            state = ladder.live if self.team is None else None
            remember_state(self.resume_states, block.clip + 1,
                           clip_fingerprint(block.clip + 1, block.task.index + 1, state, block.latents))

        frames = BlockFrames(decoder, plan.enable_online_decode, plan.clip_frame_counts(), plan.num_clips > 1,
                             start_clip=start_clip, on_clip_end=clip_end)
        steps = tuple(range(plan.sample_steps))
        finish = finish_command(self.config, plan.width, plan.height) if self.config else "a smaller --size"
        ladder = Ladder(self.mode, self.later, lambda old, new: step_down(self, old, new, frames), notify,
                        lambda block, mode: UserError(
                            "--gpu_memory", f"out of GPU memory at block {block} even in the last memory mode ({mode.name})",
                            f"the finished part is kept; to make the whole video run: {finish}"), ahead=ahead)

        def next_motion():
            ladder.caught_up()  # clip 0's frames are all decoded (the loop may run a block ahead)
            return motion_from_frames(m.vae, torch.cat(frames.first_clip, dim=2), portrait)

        if self.team is not None:  # K workers: the same loop, one step group each (runtime/workers.py)
            for block in self.team.run(m.dit, text, audio, ref, motion, loop_plan, next_motion, notify):
                out = frames(block)
                if out is not None:
                    yield out
            return
        text_ctx = m.dit.encode_text(text.to(self.device))
        yield from ladder.run(
            lambda form: StepCaches.allocate(m.dit, loop_plan, steps, mode=form),
            lambda caches, state: denoise_blocks(
                m.dit, text_ctx, audio, ref, motion, loop_plan, caches=caches, state=state,
                next_motion=next_motion),
            frames, LoopState.start(plan.seed))

    def _decoder(self, mode):
        from liveavatar.engines.diffusion.vae.vae import StreamingDecoder
        from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder

        per_pass = 1 if self.device.type == "cuda" else 0
        if mode.decode_tiles > 1:
            return TiledStreamingDecoder(self.models.vae, mode.decode_tiles, latents_per_pass=per_pass,
                                         compile=self.compile_decoder)
        return StreamingDecoder(self.models.vae, latents_per_pass=per_pass, compile=self.compile_decoder)
