"""The causal S2V DiT of Live Avatar (upstream ``CausalWanModel_S2V``) and its streaming interface.

Streaming API (what the generation loop calls; B = batch, normally 1; h, w = latent size;
P = (h/2)(w/2) tokens per latent frame; F = latent frames per block, 3 upstream)::

    model = CausalS2VDiT(DiTConfig.wan_s2v_14b(), dtype=torch.bfloat16, device="meta")
    load_dit_checkpoint(model, ckpt_dir, device="cuda")            # checkpoint.py
    text = model.encode_text(t5_features)                          # once per video: TextContext
    sink, caches = new_caches(model, num_steps=4, ring_tokens=4 * 3 * P, sink_tokens=2800)  # runtime/caches.py
    model.prefill_sink(sink, ref_latents, motion_latents, text)    # once (t=0), shared by all steps
    for each block b (global latent frame index c = current_start // P):
        for step i, t_i:
            v = model.denoise_block(caches[i], x, t_i, text, audio_input, cond_states,
                                    current_start=(b_global * F) * P, rng=rng)
            x = x + (sigma[i+1] - sigma[i]) * v                    # Euler (scheduler.py)

* ``encode_text(context)``: T5 features ``[L, text_dim]`` (or ``[B, L, text_dim]`` / a list of
  ``[L_i, text_dim]``), zero-padded to text_len -> ``TextContext`` holding the text embedding and
  every block's cross-attention K/V ``[B, text_len, H, D]`` (computed once per video).
* ``runtime.caches.new_caches(model, num_steps, ring_tokens, sink_tokens, batch=1)`` ->
  ``(SinkCache, [KVCache] * steps)``; the model calls them through model/caches.py's interface. The ring must hold a whole number of blocks (upstream: 4 blocks).
* ``prefill_sink(sink, ref_latents [B,16,1,h,w], motion_latents [B,16,T,h,w], text,
  current_start=0)``: runs the reference + FramePack motion tokens (t=0 modulation, no audio) and
  stores every layer's un-roped K and V; ``sink.length`` = P + 1.5 P tokens.
* ``denoise_block(cache, block_latents [B,16,F,h,w], timestep (float or [B,F] tensor), text,
  audio_input [B,25,audio_dim,4F], cond_states [B,16,F,h,w] or None (= zeros, no pose),
  current_start, sink_rope_offset=None, relative_dist=None, rng=None)`` -> flow prediction
  ``[B,16,F,h,w]`` in the model dtype. Writes this block's roped K / raw V into the ring at
  ``current_start % ring_tokens``. The sink's reference tokens sit at temporal RoPE position
  ``30 + n`` with ``n = max(0, c - 30 + rd)``; ``sink_rope_offset`` gives n directly,
  ``relative_dist`` gives rd, else rd = ``rng.randint(4, 30)`` (``random.Random``) or a draw from a
  ``torch.Generator``. ``rng`` must be passed when neither value is (no global RNG is used).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from liveavatar.engines.diffusion.model.attention import sdpa, sdpa_two
from liveavatar.engines.diffusion.model.audio_encoder import CausalAudioEncoder
from liveavatar.engines.diffusion.model.audio_injector import AudioInjector, inject
from liveavatar.engines.diffusion.model.blocks import DiTBlock
from liveavatar.engines.diffusion.model.caches import SinkRows, StepCache
from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.engines.diffusion.model.embeddings import Head, time_modulation
from liveavatar.engines.diffusion.model.fp8_attention import StoredKV, dequantize_rows, stored_attention
from liveavatar.engines.diffusion.model.framepack import FramePackMotioner
from liveavatar.engines.diffusion.model.rope import GridGroup, RopeTables, apply_rope

SINK_REF_POSITION = 30  # temporal RoPE position of the reference tokens at prefill
RELATIVE_DIST_RANGE = (4, 30)


def draw_relative_dist(rng: random.Random | torch.Generator) -> int:
    """rd in [4, 30], as upstream's ``random.randint(4, 30)`` but from the given generator."""
    lo, hi = RELATIVE_DIST_RANGE
    if isinstance(rng, random.Random):
        return rng.randint(lo, hi)
    return int(torch.randint(lo, hi + 1, (1,), generator=rng).item())  # CPU generator: no device sync


def sink_rollout_frames(current_frame: int, relative_dist: int) -> int:
    """Frames the sink reference is moved forward: max(0, c - (30 - rd))."""
    return max(0, current_frame - (SINK_REF_POSITION - relative_dist))


def _layer_pre(
    block: DiTBlock,
    x: torch.Tensor,
    e0: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    sink_k: torch.Tensor,
    scos: torch.Tensor,
    ssin: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer up to attention: roped q, roped k, v of the block and the sink's K roped for this call."""
    q, k, v = block.attn_inputs(x, e0)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, apply_rope(sink_k, scos, ssin)


def _layer_post(
    block: DiTBlock, x: torch.Tensor, e0: torch.Tensor, y: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    return block.attn_outputs(x, e0, y, text_kv)


@dataclass
class TextContext:
    """Per-video text condition: the embedded context and each block's cross-attention K/V."""

    embedding: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor]]


class CausalS2VDiT(nn.Module):
    def __init__(
        self, config: DiTConfig, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c = config
        with torch.device(device or "cpu"):
            self.patch_embedding = nn.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
            self.text_embedding = nn.Sequential(
                nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"), nn.Linear(c.dim, c.dim)
            )
            self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
            self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, c.dim * 6))
            self.blocks = nn.ModuleList(
                [
                    DiTBlock(c.dim, c.ffn_dim, c.num_heads, c.qk_norm, c.cross_attn_norm, c.eps)
                    for _ in range(c.num_layers)
                ]
            )
            self.head = Head(c.dim, c.out_dim, c.patch_size, c.eps)
            if c.cond_dim > 0:
                self.cond_encoder = nn.Conv3d(c.cond_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
            self.casual_audio_encoder = CausalAudioEncoder(
                c.audio_dim, c.dim, c.num_audio_token, c.enable_adain, c.audio_layers
            )
            self.audio_injector = AudioInjector(
                c.dim, c.num_heads, c.num_layers, c.audio_inject_layers, c.enable_adain, c.adain_mode, c.eps
            )
            self.trainable_cond_mask = nn.Embedding(3, c.dim)
            if c.enable_framepack:
                self.frame_packer = FramePackMotioner(c.dim, c.in_dim, c.zip_frame_buckets, c.framepack_drop_mode)
        self.to(dtype)
        self._rope: RopeTables | None = None
        self.accelerate()

    def accelerate(
        self,
        compile: bool = False,
        split_sink: bool = False,
        mode: str | None = None,
        stored_attention: bool | None = None,
        fp8_qk: bool = False,
    ) -> None:
        """Speed options of `denoise_block` (the defaults are the reference path, used for parity).

        ``compile``: torch.compile the two halves of a layer around the self-attention (fixed shapes;
        one graph each, shared by all layers). ``split_sink``: attend the ring and the sink keys
        separately and merge by log-sum-exp instead of concatenating [ring; sink] in every layer
        (measured on an H100 it was 1 % slower than the concatenation: benchmarks/RESULTS.md).
        ``stored_attention``: the self-attention reads the ring and the sink as the caches store
        them (model/fp8_attention.py, a Triton kernel); None: on CUDA when the caches are fp8, so
        the CPU numerics and the parity guard keep torch SDPA. ``fp8_qk``: its Q.K^T in fp8.
        """
        self._split_sink = split_sink
        self._stored_attention, self._fp8_qk = stored_attention, fp8_qk
        if compile:
            self._pre = torch.compile(_layer_pre, dynamic=False, mode=mode)
            self._post = torch.compile(_layer_post, dynamic=False, mode=mode)
            self._inject = torch.compile(inject, dynamic=False, mode=mode)
        else:
            self._pre, self._post, self._inject = _layer_pre, _layer_post, inject

    # ----------------------------------------------------------------------------- helpers
    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    def rope_tables(self) -> RopeTables:
        if self._rope is None or self._rope.device != self.device:
            self._rope = RopeTables(self.config.head_dim, self.config.rope_max_positions, self.device)
        return self._rope

    def _embed_frames(self, latents: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
        return conv(latents.to(device=self.device, dtype=self.dtype))

    # ----------------------------------------------------------------------------- text
    @torch.no_grad()
    def encode_text(self, context: torch.Tensor | list[torch.Tensor]) -> TextContext:
        if isinstance(context, torch.Tensor):
            context = [context] if context.dim() == 2 else list(context)
        n = self.config.text_len
        rows = []
        for u in context:
            if u.shape[0] > n:
                raise ValueError(f"text context has {u.shape[0]} tokens, more than text_len {n}")
            u = u.to(device=self.device, dtype=self.dtype)
            rows.append(torch.cat([u, u.new_zeros(n - u.shape[0], u.shape[1])]))
        emb = self.text_embedding(torch.stack(rows))
        return TextContext(emb, [blk.cross_attn.context_kv(emb) for blk in self.blocks])

    # ----------------------------------------------------------------------------- sink
    @torch.no_grad()
    def prefill_sink(
        self,
        sink: SinkRows,
        ref_latents: torch.Tensor,
        motion_latents: torch.Tensor,
        text: TextContext,
        current_start: int = 0,
        block_frames: int = 3,
    ) -> None:
        """Fill the condition K/V of every layer from the reference and motion latents (t = 0).

        `block_frames` only shapes the t=0 embedding batch like upstream's call (bitwise parity).
        """
        c = self.config
        ref = self._embed_frames(ref_latents, self.patch_embedding)  # [B, C, 1, h2, w2]
        b, _, _, h2, w2 = ref.shape
        tokens_per_frame = h2 * w2
        ref_tok = ref.flatten(2).transpose(1, 2)
        mask_w = self.trainable_cond_mask.weight
        parts = [ref_tok + mask_w[1].to(ref_tok.dtype)]
        groups: list[GridGroup] = []
        if c.enable_framepack:
            mot, groups = self.frame_packer(
                motion_latents.to(device=self.device, dtype=self.dtype), 2 if c.add_last_motion else 0
            )
            parts.append(mot + mask_w[2].to(mot.dtype))
        x = torch.cat(parts, dim=1)
        length = x.shape[1]
        if length > sink.capacity:
            raise ValueError(f"the sink needs {length} tokens but its cache holds {sink.capacity}")
        tables = self.rope_tables()
        ref_pos = SINK_REF_POSITION + current_start // tokens_per_frame
        rcos, rsin = tables.grid(ref_pos, 1, h2, w2)
        mcos = torch.cat([g.freqs(tables)[0] for g in groups]) if groups else rcos[:0]
        msin = torch.cat([g.freqs(tables)[1] for g in groups]) if groups else rsin[:0]
        cos, sin = torch.cat([rcos, mcos]), torch.cat([rsin, msin])
        t0 = torch.zeros(b + 1, block_frames, device=self.device)
        _, e0 = time_modulation(self.time_embedding, self.time_projection, c.freq_dim, t0)
        e0 = e0[b:, :1].expand(b, 1, *e0.shape[2:])  # the t=0 row of frame 0: [B, 1, 6, C]
        for i, block in enumerate(self.blocks):

            def attend(q, k, v, i=i):
                sink.store.write(i, 0, k, v)
                return sdpa(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)

            x = block(x, e0, attend, text.kv[i])
        sink.length = length
        sink.ref_hw = (h2, w2)
        sink.ref_tokens = tokens_per_frame
        sink.motion_cos, sink.motion_sin = mcos, msin

    # ----------------------------------------------------------------------------- denoise
    def _uses_stored_attention(self, cache: StepCache) -> bool:
        if self._stored_attention is not None:
            return self._stored_attention
        return self.device.type == "cuda" and cache.form.kv == "fp8"

    def _sink_offset(
        self,
        current_frame: int,
        sink_rope_offset: int | None,
        relative_dist: int | None,
        rng: random.Random | torch.Generator | None,
    ) -> int:
        if sink_rope_offset is not None:
            return int(sink_rope_offset)
        if relative_dist is None:
            if rng is None:
                raise ValueError("denoise_block needs rng, relative_dist or sink_rope_offset")
            relative_dist = draw_relative_dist(rng)
        return sink_rollout_frames(current_frame, relative_dist)

    def _audio_tokens(self, audio_input: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        prefix, drop = self.config.motion_frames
        a = audio_input.to(self.device)
        a = torch.cat([a[..., :1].expand(*a.shape[:-1], prefix), a], dim=-1)
        local, glob = self.casual_audio_encoder(a)
        local = local[:, drop:].to(self.dtype)
        glob = None if glob is None else glob[:, drop:].to(self.dtype)
        if local.shape[1] != frames:
            raise ValueError(
                f"audio gives {local.shape[1]} latent frames for a block of {frames}; "
                f"pass {4 * frames} audio frames per block"
            )
        return local, glob

    @torch.no_grad()
    def denoise_block(
        self,
        cache: StepCache,
        block_latents: torch.Tensor,
        timestep: float | torch.Tensor,
        text: TextContext,
        audio_input: torch.Tensor,
        cond_states: torch.Tensor | None,
        current_start: int,
        sink_rope_offset: int | None = None,
        relative_dist: int | None = None,
        rng: random.Random | torch.Generator | None = None,
    ) -> torch.Tensor:
        """One denoising call for one block at one step; returns the flow prediction [B, 16, F, h, w]."""
        c = self.config
        if block_latents.dim() == 4:
            block_latents = block_latents.unsqueeze(0)
        x = self._embed_frames(block_latents, self.patch_embedding)
        if hasattr(self, "cond_encoder"):
            if cond_states is None:
                x = x + self.cond_encoder.bias.view(1, -1, 1, 1, 1)
            else:
                x = x + self._embed_frames(cond_states.reshape(x.shape[0], *cond_states.shape[-4:]), self.cond_encoder)
        b, _, frames, h2, w2 = x.shape
        tokens_per_frame = h2 * w2
        n = frames * tokens_per_frame
        x = x.flatten(2).transpose(1, 2) + self.trainable_cond_mask.weight[0].to(x.dtype)
        audio_local, audio_global = self._audio_tokens(audio_input, frames)

        if not isinstance(timestep, torch.Tensor):
            timestep = torch.full((b, frames), float(timestep), device=self.device)
        timestep = timestep.to(self.device).reshape(b, frames)
        # with the zero-timestep row appended, as upstream batches it (same GEMM shapes, bitwise parity)
        t_all = torch.cat([timestep.float(), torch.zeros(1, frames, device=self.device)])
        e, e0 = time_modulation(self.time_embedding, self.time_projection, c.freq_dim, t_all)
        e, e0 = e[: b * frames], e0[:b]

        tables = self.rope_tables()
        current_frame = current_start // tokens_per_frame
        cos, sin = tables.grid(current_frame, frames, h2, w2)
        sink = cache.sink
        if sink.length == 0:
            raise ValueError("the sink cache is empty: call prefill_sink first")
        rollout = self._sink_offset(current_frame, sink_rope_offset, relative_dist, rng)
        rcos, rsin = tables.grid(SINK_REF_POSITION + rollout, 1, *sink.ref_hw)
        scos, ssin = torch.cat([rcos, sink.motion_cos]), torch.cat([rsin, sink.motion_sin])
        write, valid = cache.window(current_start, n)

        # per layer the cache stores the block's K/V rows and hands back the readable ring; how it
        # keeps them (resident, fp8, host-streamed) is its business (runtime/caches.py)
        kernel = self._uses_stored_attention(cache)
        cache.begin(valid)
        for i, block in enumerate(self.blocks):
            if kernel:  # the sink's V as stored; its K widened for this call's RoPE
                sk, sk_scale, sink_v, sv_scale = sink.read(i, stored=True)
                sink_k_raw = sk if sk_scale is None else dequantize_rows(sk, sk_scale, self.dtype)
            else:
                sink_k_raw, sink_v = sink.read(i)
            q, k, v, sink_k = self._pre(block, x, e0, cos, sin, sink_k_raw, scos, ssin)
            if kernel:
                ring = StoredKV(*cache.exchange(i, write, k, v, valid, stored=True))
                y = stored_attention(q, ring, StoredKV(sink_k, None, sink_v, sv_scale), fp8_qk=self._fp8_qk)
            elif self._split_sink:
                ring_k, ring_v = cache.exchange(i, write, k, v, valid)
                y = sdpa_two(q, ring_k, ring_v, sink_k, sink_v)
            else:
                ring_k, ring_v = cache.exchange(i, write, k, v, valid)
                y = sdpa(q, torch.cat([ring_k, sink_k], dim=1), torch.cat([ring_v, sink_v], dim=1))
            x = self._post(block, x, e0, y, text.kv[i])
            if i in self.audio_injector.block_to_injector:
                x = self._inject(*self.audio_injector.parts(i), x, audio_local, audio_global)
        cache.end()

        out = self.head(x, e)  # [B, F*P, out*pt*ph*pw]
        pt, ph, pw = c.patch_size
        out = out.view(b, frames, h2, w2, pt, ph, pw, c.out_dim)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c.out_dim, frames * pt, h2 * ph, w2 * pw)
