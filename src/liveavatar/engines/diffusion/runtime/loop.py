"""Block-wise autoregressive generation: clips of blocks, per-step KV caches, the rolling sink.

For each clip r, noise is drawn with seed + r. The clip's latent frames are denoised in blocks of
3 (the last block is shorter when the clip's latent count is not a multiple of 3, so every latent
frame is denoised), each block through all sampling steps, step i attending to its own KV cache
(a ring holding one clip of latent frames, as upstream) plus the shared sink. Block and frame
positions are global, so RoPE keeps counting across clips.

Sink policy (``LoopPlan.rolling_sink``): upstream's single-GPU script keeps the sink it prefilled at
clip 0 for the whole video ("static"); its online-decode path and its multi-GPU pipeline prefill it
again when clip 1 starts, with the video's first clean latent as the new reference ("rolling"), and
motion latents that the caller supplies through ``next_motion`` (re-encoded from clip 0's frames on
the single-GPU online path) or the original ones.

There is ONE loop. What varies is a parameter of it:
- ``stage``: which denoising steps this worker runs. One process runs them all; with K workers
  (pipeline parallelism) each runs a contiguous group and ``link`` moves a block's latents from
  one worker to the next. Every worker draws the same random numbers in the same order (one sink
  RoPE offset per block and step, drawn whether or not the step is its own), so any split gives
  the single-process result.
- ``state``: where the loop stands (next block, random state, rolling-sink reference). A loop
  can be continued from a snapshot taken at a block boundary, given caches that hold what the
  uninterrupted loop's caches held there (the out-of-memory ladder and ``--resume`` use this).
- ``caches``: the step caches and the sink, as the memory planner chose to store them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from liveavatar.config import DISTILLED_SHIFT, Plan
from liveavatar.engines.diffusion.latents import FRAMES_PER_LATENT, LATENT_CHANNELS, latent_hw
from liveavatar.engines.diffusion.model.dit import draw_relative_dist
from liveavatar.engines.diffusion.runtime.caches import (
    RESIDENT,
    CacheForm,
    KVCache,
    SinkCache,
    device_bytes,
    new_caches,
)
from liveavatar.engines.diffusion.runtime.scheduler import EulerSampler

BLOCK_LATENT_FRAMES = 3
# upstream allocates 2800 condition tokens; ours is sized from the latent grid instead
SINK_TOKENS_PER_FRAME = 2.5


@dataclass(frozen=True)
class BlockTask:
    """One block of the video: where it sits and which latent frames it covers."""

    index: int  # position in the video's sequence of blocks
    clip: int
    start: int  # first latent frame of the block within its clip
    count: int  # latent frames in the block
    frame_index: int  # global latent frame index of the block's first frame
    last_in_clip: bool


@dataclass(frozen=True)
class LoopPlan:
    frames_per_clip: int  # video frames per clip (a multiple of 4)
    num_clips: int
    latent_hw: tuple[int, int]
    sample_steps: int
    sample_shift: float
    seed: int
    last_clip_frames: int | None = None  # stop early once the last clip has this many frames
    rolling_sink: bool = True  # prefill the sink again at clip 1 (see the module's docstring)

    @classmethod
    def of(cls, plan: Plan) -> LoopPlan:
        """The loop of a resolved run: its size in latents, its sampling, the last clip cut where the
        audio ends; upstream's online-decode path rolls the sink at clip 1, its default script does not."""
        return cls(
            frames_per_clip=plan.frames_per_clip,
            num_clips=plan.num_clips,
            latent_hw=latent_hw(plan.height, plan.width),
            sample_steps=plan.sample_steps,
            sample_shift=plan.sample_shift,
            seed=plan.seed,
            last_clip_frames=plan.clip_frame_counts()[-1],
            rolling_sink=plan.enable_online_decode,
        )

    @classmethod
    def for_size(
        cls, height: int, width: int, frames_per_clip: int, sample_steps: int, num_clips: int = 1, seed: int = 0
    ) -> LoopPlan:
        """A loop of these pixel shapes (memory estimates, benchmarks: the sampling's shift does not
        change a size, so it is the distilled one)."""
        return cls(
            frames_per_clip=frames_per_clip,
            num_clips=num_clips,
            latent_hw=latent_hw(height, width),
            sample_steps=sample_steps,
            sample_shift=DISTILLED_SHIFT,
            seed=seed,
        )

    @property
    def latents_per_clip(self) -> int:
        return self.frames_per_clip // FRAMES_PER_LATENT

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.latent_hw
        return (h // 2) * (w // 2)

    @property
    def ring_tokens(self) -> int:
        return self.latents_per_clip * self.tokens_per_frame

    @property
    def sink_tokens(self) -> int:
        return int(SINK_TOKENS_PER_FRAME * self.tokens_per_frame)

    def blocks(self) -> list[tuple[int, int]]:
        """(first latent frame in the clip, number of latent frames) for each block of a clip."""
        n = self.latents_per_clip
        return [(s, min(BLOCK_LATENT_FRAMES, n - s)) for s in range(0, n, BLOCK_LATENT_FRAMES)]

    def schedule(self) -> list[BlockTask]:
        """Every block of the video in order (the last clip stops once it has its frames)."""
        tasks: list[BlockTask] = []
        frame_index = 0
        for clip in range(self.num_clips):
            needed = self.latents_per_clip
            if clip == self.num_clips - 1 and self.last_clip_frames is not None:
                needed = -(-self.last_clip_frames // FRAMES_PER_LATENT)
            blocks = [(s, c) for s, c in self.blocks() if s < needed]
            for i, (start, count) in enumerate(blocks):
                tasks.append(BlockTask(len(tasks), clip, start, count, frame_index, i == len(blocks) - 1))
                frame_index += count
        return tasks


@dataclass(frozen=True)
class Stage:
    """The denoising steps one worker runs, a contiguous range of ``0 .. num_steps - 1``."""

    steps: tuple[int, ...]
    num_steps: int

    @classmethod
    def whole(cls, num_steps: int) -> Stage:
        return cls(tuple(range(num_steps)), num_steps)

    @property
    def first(self) -> bool:
        return self.steps[0] == 0

    @property
    def last(self) -> bool:
        return self.steps[-1] == self.num_steps - 1


def split_steps(num_steps: int, workers: int) -> list[Stage]:
    """Contiguous step groups, the earlier ones one larger when uneven (5 steps on 4: 2+1+1+1)."""
    if not 1 <= workers <= num_steps:
        raise ValueError(f"{workers} workers cannot share {num_steps} steps: each needs at least one")
    base, extra = divmod(num_steps, workers)
    stages, first = [], 0
    for k in range(workers):
        size = base + (1 if k < extra else 0)
        stages.append(Stage(tuple(range(first, first + size)), num_steps))
        first += size
    return stages


class Link(Protocol):
    """How a block's latents and the rolling-sink reference travel between workers."""

    def receive(self, task: BlockTask, like: torch.Tensor) -> torch.Tensor: ...

    def send(self, task: BlockTask, latents: torch.Tensor) -> None: ...

    def share_reference(self, reference: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor: ...


class LocalLink:
    """One worker runs every step: nothing travels."""

    def receive(self, task: BlockTask, like: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a single worker never receives latents")

    def send(self, task: BlockTask, latents: torch.Tensor) -> None:
        raise RuntimeError("a single worker never sends latents")

    def share_reference(self, reference: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if reference is None:
            raise RuntimeError("the rolling sink needs the first clean latent before clip 1")
        return reference


@dataclass
class StepCaches:
    """The shared sink and one KV cache per denoising step this worker runs (keyed by step)."""

    sink: SinkCache
    by_step: dict[int, KVCache]

    @classmethod
    def allocate(cls, dit, plan: LoopPlan, steps: tuple[int, ...], mode: CacheForm = RESIDENT) -> StepCaches:
        """Fresh caches in the form the memory planner chose (`mode`; resident model dtype by default)."""
        sink, caches = new_caches(
            dit, num_steps=len(steps), ring_tokens=plan.ring_tokens, sink_tokens=plan.sink_tokens, form=mode
        )
        return cls(sink, dict(zip(steps, caches)))

    @property
    def form(self) -> CacheForm:
        return next(iter(self.by_step.values())).store.form if self.by_step else self.sink.store.form

    def converted(self, mode: CacheForm, release: bool = False) -> StepCaches:
        """The same contents in another form (the out-of-memory ladder); exact unless it turns to fp8.

        ``release``: empty this object as it goes, so only one step's old ring is alive beside the new ones.
        """
        sink = self.sink.converted(mode)
        by_step = {}
        for s in list(self.by_step):
            c = self.by_step.pop(s) if release else self.by_step[s]
            first = next(iter(by_step.values()), None)
            by_step[s] = KVCache(c.store.converted(mode, first.store if first else None), sink, dict(c.extra))
            del c
        return StepCaches(sink, by_step)

    def device_bytes(self) -> int:
        return device_bytes(self.sink, list(self.by_step.values()))


@dataclass
class LoopState:
    """Where the loop stands at a block boundary; a copy continues the loop from there."""

    next_task: int
    rng_state: tuple
    reference: torch.Tensor | None = None  # the video's first clean latent (rolling-sink reference)
    extra: dict = field(default_factory=dict)

    @classmethod
    def start(cls, seed: int) -> LoopState:
        return cls(next_task=0, rng_state=random.Random(seed).getstate())

    def snapshot(self) -> LoopState:
        ref = None if self.reference is None else self.reference.clone()
        return replace(self, reference=ref, extra=dict(self.extra))


@dataclass(frozen=True)
class DenoisedBlock:
    task: BlockTask
    latents: torch.Tensor  # clean latents [1, 16, count, h, w]

    @property
    def clip(self) -> int:
        return self.task.clip

    @property
    def last_in_clip(self) -> bool:
        return self.task.last_in_clip


NoiseFn = Callable[["LoopPlan", int, torch.device], torch.Tensor]


def clip_noise(plan: LoopPlan, clip: int, device: torch.device) -> torch.Tensor:
    """The clip's initial noise ``[1, LATENT_CHANNELS, latents, h, w]``, from a generator seeded seed + clip."""
    gen = torch.Generator(device=device).manual_seed(plan.seed + clip)
    h, w = plan.latent_hw
    return torch.randn(
        (1, LATENT_CHANNELS, plan.latents_per_clip, h, w), generator=gen, device=device, dtype=torch.float32
    )


@torch.no_grad()
def denoise_blocks(
    dit,
    text_ctx,
    audio: torch.Tensor,
    ref_latents: torch.Tensor,
    motion_latents: torch.Tensor,
    plan: LoopPlan,
    next_motion: Callable[[], torch.Tensor] | None = None,
    *,
    stage: Stage | None = None,
    link: Link | None = None,
    caches: StepCaches | None = None,
    state: LoopState | None = None,
    noise: NoiseFn = clip_noise,
) -> Iterator[DenoisedBlock]:
    """Yield each block's clean latents in order (on the worker that runs the last step).

    ``next_motion``, when given, is called when clip 1 starts on a rolling sink and returns the
    motion latents for the re-prefilled sink; without it the sink keeps the original motion.
    ``state`` is updated in place after every block, so the caller can snapshot it.
    """
    device, dtype = dit.device, dit.dtype
    stage = stage or Stage.whole(plan.sample_steps)
    if stage.num_steps != plan.sample_steps:
        raise ValueError(f"the stage covers {stage.num_steps} steps, the plan {plan.sample_steps}")
    link = link or LocalLink()
    sampler = EulerSampler(plan.sample_steps, plan.sample_shift)
    caches = caches or StepCaches.allocate(dit, plan, stage.steps)
    state = state if state is not None else LoopState.start(plan.seed)
    tasks = plan.schedule()
    rng = random.Random()
    rng.setstate(state.rng_state)
    noise_clip, clip_latents = -1, None

    def prefill(clip: int) -> None:
        if plan.rolling_sink and clip >= 1:
            state.reference = link.share_reference(state.reference, ref_latents)
            motion = next_motion() if next_motion is not None else motion_latents
            dit.prefill_sink(caches.sink, state.reference, motion, text_ctx)
        else:
            dit.prefill_sink(caches.sink, ref_latents, motion_latents, text_ctx)

    entry = state.next_task
    # fresh caches get the sink of the clip the loop starts in; caches handed over from an earlier
    # run of the loop already hold it (the clip-1 re-prefill then happens in the loop as usual)
    prefilled_at_entry = entry < len(tasks) and getattr(caches.sink, "length", 0) == 0
    if prefilled_at_entry:
        prefill(tasks[entry].clip)
    for task in tasks[entry:]:
        if (
            task.clip == 1
            and task.start == 0
            and plan.rolling_sink
            and not (task.index == entry and prefilled_at_entry)
        ):
            prefill(1)
        if stage.first:
            if task.clip != noise_clip:
                noise_clip, clip_latents = task.clip, noise(plan, task.clip, device)
            x = clip_latents[:, :, task.start : task.start + task.count].to(dtype)
        else:
            h, w = plan.latent_hw
            x = link.receive(task, torch.empty((1, LATENT_CHANNELS, task.count, h, w), dtype=dtype, device=device))
        audio_cols = task.clip * plan.frames_per_clip + FRAMES_PER_LATENT * task.start
        audio_in = audio[..., audio_cols : audio_cols + FRAMES_PER_LATENT * task.count]
        current_start = task.frame_index * plan.tokens_per_frame
        for step in range(sampler.num_steps):
            relative_dist = draw_relative_dist(rng)  # every worker draws every step's number
            if step not in caches.by_step:
                continue
            v = dit.denoise_block(
                caches.by_step[step],
                x,
                float(sampler.timesteps[step]),
                text_ctx,
                audio_in,
                None,
                current_start,
                relative_dist=relative_dist,
            )
            x = sampler.step(x, v, step)
        if state.reference is None and stage.last and task.index == 0:
            state.reference = x[:, :, :1].clone()
        state.next_task, state.rng_state = task.index + 1, rng.getstate()
        if stage.last:
            yield DenoisedBlock(task, x)
        else:
            link.send(task, x)
