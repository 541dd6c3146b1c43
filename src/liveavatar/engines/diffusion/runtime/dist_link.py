"""The block loop's ``Link`` over torch.distributed, and the job every DiT worker receives.

Ranks ``0 .. K-1`` run the denoising steps in contiguous groups (``split_steps``); the decoding
rank is the last one: rank K with a decode worker, else the last DiT rank itself, which then has
the clean latents without a transfer (and, with uneven splits, the fewest steps). A block's
latents go rank r -> r + 1 with point-to-point sends; the rolling-sink reference and the
clip-1 motion latents are broadcast from the decoding rank, the one that has them (the
reference is the first clean latent; the motion is re-encoded from clip 0's decoded frames).

All calls block. A worker that dies closes its sockets, so its neighbours' calls fail at once
(gloo); the launcher's watchdog stops every other worker, which ends any call still waiting (see
workers.py), and the process-group timeout is the backstop for a worker that hangs alive.
"""

from __future__ import annotations

import pickle

import torch
import torch.distributed as dist

from liveavatar.engines.diffusion.latents import LATENT_CHANNELS
from liveavatar.engines.diffusion.runtime.loop import BlockTask, DenoisedBlock, LoopPlan

# one isend may be in flight per link, so a stage starts its next block while the last one travels
MAX_SENDS_IN_FLIGHT = 1


class DistLink:
    """``runtime.loop.Link`` between ranks: receive from ``rank - 1``, send to ``rank + 1``."""

    def __init__(self, rank: int, source: int, device: torch.device) -> None:
        self.rank, self.source, self.device = rank, source, device
        self._sends: list[tuple[object, torch.Tensor]] = []
        # a worker that steps down after running out of memory runs its current block again: the
        # block's input and the clip-1 broadcasts it already took part in are kept, not asked for twice
        self._received: tuple[int, torch.Tensor] | None = None
        self._shared: dict[str, torch.Tensor] = {}

    def receive(self, task: BlockTask, like: torch.Tensor) -> torch.Tensor:
        if self._received is not None and self._received[0] == task.index:
            return self._received[1].to(like.device)
        buf = torch.empty(like.shape, dtype=like.dtype, device=self.device)
        dist.recv(buf, src=self.rank - 1)
        self._received = (task.index, buf)
        return buf.to(like.device)

    def send(self, task: BlockTask, latents: torch.Tensor) -> None:
        while len(self._sends) >= MAX_SENDS_IN_FLIGHT:
            self._sends.pop(0)[0].wait()
        x = latents.to(self.device).contiguous()  # kept alive until the send completes
        self._sends.append((dist.isend(x, dst=self.rank + 1), x))

    def flush(self) -> None:
        while self._sends:
            self._sends.pop(0)[0].wait()

    def _broadcast(self, value: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if self.rank == self.source:
            if value is None or tuple(value.shape) != tuple(like.shape):
                raise RuntimeError(f"rank {self.rank} has no tensor shaped {tuple(like.shape)} to share")
            buf = value.to(device=self.device, dtype=like.dtype).contiguous()
        else:
            buf = torch.empty(like.shape, dtype=like.dtype, device=self.device)
        dist.broadcast(buf, src=self.source)
        return buf.to(like.device)

    def _once(self, key: str, make) -> torch.Tensor:
        """Each broadcast happens once per video (clip 1); a block run again gets the same tensor."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def share_reference(self, reference: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The first clean latent, from the decoding rank (the rolling-sink reference at clip 1)."""
        shape = (*like.shape[:2], 1, *like.shape[3:])
        return self._once(
            "reference", lambda: self._broadcast(reference, torch.empty(shape, dtype=like.dtype, device=like.device))
        )

    def motion(self, compute, like: torch.Tensor):
        """``next_motion`` for the loop: the decoding rank computes it, every rank gets it."""
        return lambda: self._once(
            "motion", lambda: self._broadcast(compute() if self.rank == self.source else None, like)
        )


def comm_device(backend: str) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def broadcast_job(
    rank: int,
    source: int,
    device: torch.device,
    plan: LoopPlan | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> tuple[LoopPlan, dict[str, torch.Tensor]]:
    """The decoding rank sends the loop plan and the conditions; every other rank receives them."""
    if rank == source:
        header = pickle.dumps((plan, [(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]))
        size = torch.tensor([len(header)], dtype=torch.int64, device=device)
    else:
        size = torch.zeros(1, dtype=torch.int64, device=device)
    dist.broadcast(size, src=source)
    raw = (
        torch.frombuffer(bytearray(header), dtype=torch.uint8).to(device)
        if rank == source
        else torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    )
    dist.broadcast(raw, src=source)
    plan, specs = pickle.loads(raw.cpu().numpy().tobytes())
    out = {}
    for name, shape, dtype in specs:
        buf = (
            tensors[name].to(device).contiguous() if rank == source else torch.empty(shape, dtype=dtype, device=device)
        )
        dist.broadcast(buf, src=source)
        out[name] = buf
    return plan, out


def receive_blocks(link: DistLink, plan: LoopPlan, ref: torch.Tensor, next_motion, like_motion: torch.Tensor):
    """The decode worker's side of the loop: each block's clean latents from the last DiT rank.

    At clip 1 it joins the two broadcasts of the rolling sink in the order ``denoise_blocks``
    makes them on the DiT ranks (reference, then motion).
    """
    reference = None
    h, w = plan.latent_hw
    share_motion = link.motion(next_motion, like_motion)
    for task in plan.schedule():
        if task.clip == 1 and task.start == 0 and plan.rolling_sink:
            link.share_reference(reference, ref)
            share_motion()
        x = link.receive(task, torch.empty((1, LATENT_CHANNELS, task.count, h, w), dtype=ref.dtype, device=ref.device))
        if reference is None:
            reference = x[:, :, :1].clone()
        yield DenoisedBlock(task, x)
