"""What the DiT asks of its streaming caches: the interface, and the forms' names (no storage here).

The model calls a step cache and the shared sink through these Protocols only; how K and V are
stored (resident, fp8, streamed from host memory) is the runtime's business: the three forms live in
``runtime/caches.py`` and are allocated there (``new_caches``), so the model never imports the runtime.

Per DiT call: ``cache.begin(valid)``; per layer ``sink.read(i)`` (the sink's un-roped K and V) and
``cache.exchange(i, write, k, v, valid)`` ("store this block's rows, give me the layer's readable
rows"); then ``cache.end()``. ``prefill_sink`` writes the sink through ``sink.store.write``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CacheForm:
    """How K/V are stored: ``kv`` "model" (the DiT's dtype) or "fp8"; ``placement`` "resident" or "host"."""

    kv: str = "model"
    placement: str = "resident"

    def __post_init__(self) -> None:
        if self.kv not in ("model", "fp8") or self.placement not in ("resident", "host"):
            raise ValueError(f"unknown cache form {self}")

    @property
    def label(self) -> str:
        return f"{'fp8' if self.kv == 'fp8' else 'model-dtype'} KV, {self.placement}"


RESIDENT = CacheForm()


class SinkRows(Protocol):
    """The condition K/V shared by every step's cache (filled once per clip by ``prefill_sink``)."""

    store: Any  # ``write(layer, start, k, v)``: where prefill_sink puts the rows
    length: int
    ref_hw: tuple[int, int]
    ref_tokens: int
    motion_cos: Any
    motion_sin: Any

    @property
    def capacity(self) -> int: ...

    def read(self, layer: int, stored: bool = False) -> tuple[Any, ...]:
        """K and V widened to the model's dtype, or (``stored``) as stored: ``(k, k_scale, v, v_scale)``,
        the scales None unless the form is fp8 (the fp8 attention kernel reads them so)."""
        ...


class StepCache(Protocol):
    """One denoising step's ring of block K/V plus the shared sink."""

    sink: SinkRows

    @property
    def form(self) -> CacheForm: ...

    def window(self, current_start: int, num_tokens: int) -> tuple[int, int]: ...

    def begin(self, rows: int) -> None: ...

    def exchange(self, layer: int, start: int, k: Any, v: Any, rows: int, stored: bool = False) -> tuple[Any, ...]:
        """Store this block's rows; return the layer's readable rows (``stored``: as ``SinkRows.read``)."""
        ...

    def end(self) -> None: ...
