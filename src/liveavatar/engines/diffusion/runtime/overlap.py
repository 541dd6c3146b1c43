"""Run the block loop one block ahead of its consumer, so that the decode of block n (and its copy to
the host) overlaps the DiT work of block n+1.

The loop runs in a worker thread; the consumer (the decode, in the caller's thread) takes block n
the moment it is denoised, so the first frame comes out as early as in order. The worker starts
block n+1 once the consumer has taken block n and never runs further ahead. Each block travels with
the loop state as it was when the block was yielded (the out-of-memory ladder and the resume
records read that, not the state the worker has moved on to). Exceptions in the loop reach the
consumer at the block they happened in; closing the consumer's iterator stops the worker.

A loop step that needs everything before it consumed (the clip-1 sink prefill re-encodes clip 0's
decoded frames) calls `caught_up()` first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
S = TypeVar("S")


class Cancelled(Exception):
    """The consumer went away: the worker stops where it waits."""


class AheadOfConsumer(Generic[T, S]):
    def __init__(
        self, items: Iterator[T], snapshot: Callable[[], S], context: Callable[[], object] | None = None
    ) -> None:
        """`snapshot()` runs in the worker right after each item (the state that goes with it);
        `context()` (e.g. torch.no_grad) is entered by the worker around the whole loop."""
        self._items, self._snapshot, self._context = items, snapshot, context
        self._cv = threading.Condition()
        self._slot: tuple | None = None
        self._produced = self._finished = 0
        self._cancelled = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ worker side
    def _put(self, entry: tuple) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._slot is None or self._cancelled)
            if self._cancelled:
                raise Cancelled
            self._slot = entry
            self._produced += entry[0] == "item"
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._slot is None or self._cancelled)  # taken: start the next one
            if self._cancelled:
                raise Cancelled

    def _work(self) -> None:
        try:
            if self._context is not None:
                with self._context():
                    self._loop()
            else:
                self._loop()
        except Cancelled:
            pass
        except BaseException as exc:  # the consumer re-raises it at this block
            try:
                self._put(("error", exc))
            except Cancelled:
                pass
        finally:
            self._items.close() if hasattr(self._items, "close") else None

    def _loop(self) -> None:
        for item in self._items:
            self._put(("item", item, self._snapshot()))
        self._put(("end",))

    def caught_up(self) -> None:
        """Worker side: wait until the consumer has finished every block yielded so far."""
        with self._cv:
            self._cv.wait_for(lambda: self._finished >= self._produced or self._cancelled)
            if self._cancelled:
                raise Cancelled

    # ------------------------------------------------------------------ consumer side
    def __iter__(self) -> Iterator[tuple[T, S]]:
        self._thread = threading.Thread(target=self._work, name="block-loop", daemon=True)
        self._thread.start()
        try:
            first = True
            while True:
                with self._cv:
                    if not first:  # the consumer asks for the next block: it is done with the last one
                        self._finished += 1
                    first = False
                    self._cv.notify_all()
                    self._cv.wait_for(lambda: self._slot is not None)
                    entry, self._slot = self._slot, None
                    self._cv.notify_all()
                if entry[0] == "end":
                    return
                if entry[0] == "error":
                    raise entry[1]
                yield entry[1], entry[2]
        finally:
            self.close()

    def close(self) -> None:
        with self._cv:
            self._cancelled = True
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


class InOrder(Generic[T, S]):
    """The same interface without a thread (the CPU, and any run that asks for no overlap)."""

    def __init__(self, items: Iterator[T], snapshot: Callable[[], S], context=None) -> None:
        self._items, self._snapshot = items, snapshot

    def __iter__(self) -> Iterator[tuple[T, S]]:
        for item in self._items:
            yield item, self._snapshot()

    def caught_up(self) -> None:
        """In order, the consumer has always finished every earlier block."""

    def close(self) -> None:
        if hasattr(self._items, "close"):
            self._items.close()


def run_blocks(items: Iterator, snapshot: Callable[[], S], ahead: bool) -> AheadOfConsumer | InOrder:
    """The block loop as (block, (state, ready)) pairs: one block ahead in a thread when `ahead`
    (then `ready` is a CUDA event recorded when the block's latents were complete, or None on the
    CPU), else in order (`ready` None)."""
    import torch

    if not ahead:
        return InOrder(items, lambda: (snapshot(), None))
    cuda = torch.cuda.is_available()

    def after_block():
        return snapshot(), (torch.cuda.current_stream().record_event() if cuda else None)

    return AheadOfConsumer(items, after_block, torch.no_grad)


_SIDE: dict = {}


def _side_stream(device):
    import torch

    if device not in _SIDE:
        _SIDE[device] = torch.cuda.Stream(device, priority=-1)
    return _SIDE[device]


@contextmanager
def consume_side(ready, latents) -> Iterator[None]:
    """Consume a block on a high-priority side stream that waits only for that block's latents
    (`ready`), so the decode runs beside the next block's DiT work instead of behind it; as is
    when `ready` is None."""
    if ready is None:
        yield
        return
    import torch

    stream = _side_stream(latents.device)
    stream.wait_event(ready)
    latents.record_stream(stream)  # made on the loop's stream, read here: keep it until this work is done
    with torch.cuda.stream(stream):
        yield


@contextmanager
def decode_side(ahead: bool, *inputs) -> Iterator[None]:
    """Work before the loop whose results the consumer keeps (the decoder's warm-up state): on the
    consumer's side stream too, after everything queued so far, so its tensors belong to that stream."""
    if not (ahead and inputs and inputs[0].is_cuda):
        yield
        return
    import torch

    stream = _side_stream(inputs[0].device)
    stream.wait_stream(torch.cuda.current_stream(inputs[0].device))
    for x in inputs:
        x.record_stream(stream)
    with torch.cuda.stream(stream):
        yield
