"""The DiT's streaming caches (per-step KV rings and the shared sink) behind one interface.

Every cache keeps K and V of every layer, ``[layers, batch, tokens, heads, head_dim]``, in a
`KVStore` whose *form* the memory planner chooses (`CacheForm`):

* resident, model dtype (the default; the reference numerics): plain tensors on the DiT's device.
* fp8 (``kv="fp8"``): e4m3 values with one fp32 scale per token and head (amax / 448), half the
  bytes; read back dequantised to the model dtype layer by layer.
* host (``placement="host"``): the planes live in host memory (pinned on CUDA); per DiT call each
  layer's rows are copied into one of two device slots on a side stream while the previous layer
  computes, and the new block's rows are written back the same way. On the CPU the same code runs
  without streams and gives exactly the resident results.

What `CausalS2VDiT.denoise_block` asks, per call: ``cache.begin(valid)``; per layer
``sink.read(i)`` (the sink's un-roped K and V) and ``cache.exchange(i, write, k, v, valid)``
("store this block's rows, give me the layer's readable rows"); then ``cache.end()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from liveavatar.engines.diffusion.model.caches import RESIDENT, CacheForm  # noqa: F401 (the forms' names)
from liveavatar.engines.diffusion.model.fp8_attention import dequantize_rows  # re-exported: the fp8 form read back

FP8_MAX = 448.0
PLANES = ("k", "v")


def bytes_per_value(form: CacheForm, model_bytes: int, head_dim: int) -> float:
    """Storage bytes per K or V element (fp8: one byte plus the fp32 scale shared by a head's row)."""
    return 1 + 4 / head_dim if form.kv == "fp8" else float(model_bytes)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., D]`` -> (e4m3 values, fp32 scale ``[..., 1]``), one scale per token and head."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


class KVStore:
    """K and V of every layer in one form; `exchange`/`read` hand out readable rows of one layer."""

    def __init__(
        self, planes: dict[str, torch.Tensor], form: CacheForm, dtype: torch.dtype, device: torch.device
    ) -> None:
        self.planes, self.form, self.dtype, self.device = planes, form, dtype, torch.device(device)
        self._slots: list[dict[str, torch.Tensor]] = []
        self._stream = None
        self._ready: list = []
        self._rows = 0

    # ------------------------------------------------------------------ building
    @classmethod
    def allocate(
        cls,
        layers: int,
        batch: int,
        tokens: int,
        heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
        form: CacheForm = RESIDENT,
        share: KVStore | None = None,
    ) -> KVStore:
        """``share``: a host store of the same shape whose device slots and stream this one uses too
        (the step rings are read one DiT call at a time, so one pair of slots serves them all)."""
        device = torch.device(device)
        host = form.placement == "host"
        where = torch.device("cpu") if host else device
        pin = host and device.type == "cuda"
        shape = (layers, batch, tokens, heads, head_dim)

        def zeros(shape, dt):
            return torch.zeros(shape, dtype=dt, device=where, pin_memory=pin)

        planes: dict[str, torch.Tensor] = {}
        for name in PLANES:
            if form.kv == "fp8":
                planes[name] = zeros(shape, torch.float8_e4m3fn)
                planes[name + "_scale"] = zeros(shape[:-1] + (1,), torch.float32)
            else:
                planes[name] = zeros(shape, dtype)
        store = cls(planes, form, dtype, device)
        if host and share is not None and share._slots:
            store._slots, store._stream, store._ready = share._slots, share._stream, share._ready
        elif host:
            # two device slots of one layer each: layer i computes in one while layer i+1 arrives
            store._slots = [
                {n: torch.zeros(p.shape[1:], dtype=p.dtype, device=device) for n, p in planes.items()} for _ in range(2)
            ]
            if device.type == "cuda":
                store._stream = torch.cuda.Stream(device)
                store._ready = [torch.cuda.Event(), torch.cuda.Event()]
        return store

    @property
    def tokens(self) -> int:
        return self.planes["k"].shape[2]

    @property
    def layers(self) -> int:
        return self.planes["k"].shape[0]

    def nbytes(self) -> int:
        """Bytes this store holds on the device (a host store: its slots, which others may share)."""
        if self.form.placement == "host":
            return sum(p.numel() * p.element_size() for s in self._slots for p in s.values())
        return sum(p.numel() * p.element_size() for p in self.planes.values())

    # ------------------------------------------------------------------ rows in, rows out
    def _encode(self, dst: dict[str, torch.Tensor], index, k: torch.Tensor, v: torch.Tensor) -> None:
        for name, x in zip(PLANES, (k, v)):
            if self.form.kv == "fp8":
                q, s = quantize_rows(x)
                dst[name][index], dst[name + "_scale"][index] = q, s
            else:
                dst[name][index] = x

    def _decode(self, src: dict[str, torch.Tensor], index) -> tuple[torch.Tensor, torch.Tensor]:
        if self.form.kv == "fp8":
            return tuple(dequantize_rows(src[n][index], src[n + "_scale"][index], self.dtype) for n in PLANES)
        return src["k"][index], src["v"][index]

    def _stored(self, src: dict[str, torch.Tensor], index) -> tuple:
        """The rows as stored: (k, k_scale, v, v_scale), the scales None in the model-dtype form."""
        scale = (lambda n: src[n + "_scale"][index]) if self.form.kv == "fp8" else (lambda n: None)
        return src["k"][index], scale("k"), src["v"][index], scale("v")

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store rows ``[start, start + n)`` of one layer (the sink's prefill; resident stores)."""
        if self.form.placement == "host":
            self._sync()
            k, v = k.to("cpu"), v.to("cpu")
        self._encode(self.planes, (layer, slice(None), slice(start, start + k.shape[1])), k, v)

    def read(self, layer: int, rows: int, stored: bool = False) -> tuple:
        """Rows ``[0, rows)`` of one layer in the model dtype (a view for resident model-dtype stores);
        ``stored``: as stored, (k, k_scale, v, v_scale) (resident stores only)."""
        if stored:
            return self._stored(self.planes, (layer, slice(None), slice(0, rows)))
        if self.form.placement == "host":
            self._sync()
            k, v = self._decode(self.planes, (layer, slice(None), slice(0, rows)))
            return k.to(self.device), v.to(self.device)
        return self._decode(self.planes, (layer, slice(None), slice(0, rows)))

    def begin(self, rows: int) -> None:
        """A DiT call starts that will read rows ``[0, rows)``: fetch layer 0 ahead."""
        self._rows = rows
        if self.form.placement == "host":
            self._fetch(0)

    def exchange(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor, rows: int, stored: bool = False
    ) -> tuple:
        """Store the block's rows ``[start, start + n)`` of `layer`; return its rows ``[0, rows)`` in the
        model dtype, or with ``stored`` as stored: (k, k_scale, v, v_scale) for model/fp8_attention.py."""
        n = k.shape[1]
        read = self._stored if stored else self._decode
        if self.form.placement == "resident":
            self._encode(self.planes, (layer, slice(None), slice(start, start + n)), k, v)
            return read(self.planes, (layer, slice(None), slice(0, rows)))
        slot = self._slots[layer % 2]
        if self._stream is not None:
            torch.cuda.current_stream(self.device).wait_event(self._ready[layer % 2])
        self._encode(slot, (slice(None), slice(start, start + n)), k, v)
        out = read(slot, (slice(None), slice(0, rows)))
        self._write_back(layer, slot, start, n)
        if layer + 1 < self.layers:
            self._fetch(layer + 1)
        return out

    def end(self) -> None:
        """The call is over (the write-backs may still be in flight on the side stream)."""

    # ------------------------------------------------------------------ host streaming
    def _fetch(self, layer: int) -> None:
        slot, rows = self._slots[layer % 2], self._rows
        if self._stream is None:
            for name, p in self.planes.items():
                slot[name][:, :rows].copy_(p[layer, :, :rows])
            return
        # the slot was last read by layer - 1's attention, queued before this point on the compute stream
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            for name, p in self.planes.items():
                slot[name][:, :rows].copy_(p[layer, :, :rows], non_blocking=True)
            self._ready[layer % 2].record(self._stream)

    def _write_back(self, layer: int, slot: dict[str, torch.Tensor], start: int, n: int) -> None:
        if self._stream is None:
            for name, p in self.planes.items():
                p[layer, :, start : start + n].copy_(slot[name][:, start : start + n])
            return
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            for name, p in self.planes.items():
                p[layer, :, start : start + n].copy_(slot[name][:, start : start + n], non_blocking=True)

    def _sync(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    # ------------------------------------------------------------------ changing form
    def converted(self, form: CacheForm, share: KVStore | None = None) -> KVStore:
        """A store of another form holding the same rows (exactly, unless it is fp8 and this is not)."""
        self._sync()
        _, batch, tokens, heads, dim = self.planes["k"].shape
        out = KVStore.allocate(self.layers, batch, tokens, heads, dim, self.dtype, self.device, form, share)
        for layer in range(self.layers):  # one layer at a time: the transient is one layer's rows
            index = (layer, slice(None), slice(None))
            src = {n: p[index] for n, p in self.planes.items()}
            dst = {n: p[index] for n, p in out.planes.items()}
            if self.form.kv == form.kv:
                for n in dst:
                    dst[n].copy_(src[n])
            else:
                k, v = self._decode(src, slice(None))
                out._encode(dst, slice(None), k.to(dst["k"].device), v.to(dst["k"].device))
        return out


class _Planes:
    """``k`` / ``v``: a resident model-dtype store's planes (tests, benchmarks and tools fill them directly)."""

    store: KVStore

    @property
    def k(self) -> torch.Tensor:
        return self.store.planes["k"]

    @property
    def v(self) -> torch.Tensor:
        return self.store.planes["v"]


@dataclass
class SinkCache(_Planes):
    """Condition K/V shared by all step caches; filled by `CausalS2VDiT.prefill_sink`.

    K is stored **un-roped** (after norm_k): its RoPE is re-anchored on every call. Rows
    ``[0, length)`` are valid. The sink stays on the device in every form (it is read by every call).
    """

    store: KVStore
    length: int = 0
    # RoPE of the sink tokens, kept from the prefill: reference-token grid (height, width) and the
    # cos/sin of the motion tokens (fixed positions); the reference part is re-anchored per call.
    ref_hw: tuple[int, int] = (0, 0)
    ref_tokens: int = 0
    motion_cos: torch.Tensor | None = None
    motion_sin: torch.Tensor | None = None

    @classmethod
    def allocate(
        cls,
        num_layers: int,
        batch: int,
        capacity: int,
        num_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
        form: CacheForm = RESIDENT,
    ) -> SinkCache:
        form = CacheForm(form.kv, "resident")
        return cls(KVStore.allocate(num_layers, batch, capacity, num_heads, head_dim, dtype, device, form))

    @property
    def capacity(self) -> int:
        return self.store.tokens

    def read(self, layer: int, stored: bool = False) -> tuple:
        return self.store.read(layer, self.length, stored)

    def converted(self, form: CacheForm) -> SinkCache:
        return SinkCache(
            self.store.converted(CacheForm(form.kv, "resident")),
            self.length,
            self.ref_hw,
            self.ref_tokens,
            self.motion_cos,
            self.motion_sin,
        )


@dataclass
class KVCache(_Planes):
    """The per-denoising-step ring of roped block K / raw V, plus the shared sink.

    A block at global token offset ``current_start`` is written at ``current_start % ring_tokens``.
    Until the ring has wrapped, attention sees rows ``[0, current_start + n)``; afterwards all rows.
    """

    store: KVStore
    sink: SinkCache
    extra: dict = field(default_factory=dict)

    @classmethod
    def allocate(
        cls, sink: SinkCache, ring_tokens: int, form: CacheForm | None = None, share: KVCache | None = None
    ) -> KVCache:
        layers, batch, _, heads, dim = sink.k.shape
        form = form or sink.store.form
        s = sink.store
        return cls(
            KVStore.allocate(
                layers,
                batch,
                ring_tokens,
                heads,
                dim,
                s.dtype,
                s.device,
                form,
                share.store if share is not None else None,
            ),
            sink,
        )

    @property
    def ring_tokens(self) -> int:
        return self.store.tokens

    @property
    def form(self) -> CacheForm:
        return self.store.form

    def window(self, current_start: int, num_tokens: int) -> tuple[int, int]:
        """(write offset, number of valid ring rows) for a block of `num_tokens` at `current_start`."""
        size = self.ring_tokens
        if current_start >= size:
            write, valid = current_start % size, size
        else:
            write, valid = current_start, current_start + num_tokens
        if write + num_tokens > size:
            raise ValueError(
                f"block [{current_start}, +{num_tokens}) does not fit the KV ring of {size} "
                "tokens; the ring must hold a whole number of blocks"
            )
        return write, valid

    def begin(self, rows: int) -> None:
        self.store.begin(rows)

    def exchange(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor, rows: int, stored: bool = False
    ) -> tuple:
        return self.store.exchange(layer, start, k, v, rows, stored)

    def end(self) -> None:
        self.store.end()


def new_caches(
    model, num_steps: int, ring_tokens: int, sink_tokens: int, batch: int = 1, form: CacheForm = RESIDENT
) -> tuple[SinkCache, list[KVCache]]:
    """The shared sink and `num_steps` KV rings for `model` (a CausalS2VDiT), stored as `form` says."""
    c = model.config
    sink = SinkCache.allocate(
        c.num_layers, batch, sink_tokens, c.num_heads, c.head_dim, model.dtype, model.device, form
    )
    rings: list[KVCache] = []
    for _ in range(num_steps):
        rings.append(KVCache.allocate(sink, ring_tokens, form, share=rings[0] if rings else None))
    return sink, rings


def device_bytes(sink: SinkCache, caches: list[KVCache]) -> int:
    """What the sink and the rings hold on the device (host planes not counted, shared slots once)."""
    seen, total = set(), sink.store.nbytes()
    for c in caches:
        key = id(c.store._slots) if c.store._slots else id(c.store)
        if key not in seen:
            seen.add(key)
            total += c.store.nbytes()
    return total
