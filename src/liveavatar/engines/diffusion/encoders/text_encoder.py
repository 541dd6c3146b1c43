"""The umT5-XXL text encoder, under the key names of Wan's ``models_t5_umt5-xxl-enc-bf16.pth``.

umT5 is T5 v1.1 with a relative-position bias in every layer: pre-RMSNorm blocks, unscaled
attention, gated-GELU(tanh) feed-forward. The prompt is cleaned as upstream does, tokenised with
the ``google/umt5-xxl`` tokenizer (EOS appended, at most 512 tokens) and encoded; the result is
one vector per real token, ``[L, dim]``. Upstream pads to 512 and masks the padding out, which
leaves the real tokens' outputs unchanged, so the padding is skipped here.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from liveavatar.engines.diffusion.loading.layout import T5_FILE, TOKENIZER_DIR
from liveavatar.engines.diffusion.loading.state_dicts import build_from_pth
from liveavatar.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Mapping

TEXT_LEN = 512


@dataclass(frozen=True)
class T5Config:
    vocab: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6

    @classmethod
    def umt5_xxl(cls) -> T5Config:
        return cls()

    @classmethod
    def from_state_dict(cls, state: Mapping, source: Path) -> T5Config:
        try:
            vocab, dim = state["token_embedding.weight"].shape
            dim_attn = state["blocks.0.attn.q.weight"].shape[0]
            dim_ffn = state["blocks.0.ffn.fc1.weight"].shape[0]
            num_buckets, num_heads = state["blocks.0.pos_embedding.embedding.weight"].shape
        except KeyError as exc:
            raise UserError(
                "--ckpt_dir",
                f"{source} is not Wan's umT5 encoder (no {exc.args[0]})",
                f"use {T5_FILE} from the Wan-AI/Wan2.2-S2V-14B release",
            ) from None
        layers = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
        return cls(int(vocab), int(dim), int(dim_attn), int(dim_ffn), int(num_heads), len(layers), int(num_buckets))


class T5RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * y.to(self.weight.dtype)


class T5RelativeBias(nn.Module):
    """Bidirectional bucketed relative-position bias, ``[1, heads, Lq, Lk]``."""

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int) -> None:
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def buckets(self, lq: int, lk: int, device: torch.device) -> torch.Tensor:
        rel = torch.arange(lk, device=device)[None, :] - torch.arange(lq, device=device)[:, None]
        half = self.num_buckets // 2
        bucket = (rel > 0).long() * half
        dist = rel.abs()
        exact = half // 2
        far = (
            exact
            + (
                torch.log(dist.clamp(min=1).float() / exact) / math.log(self.max_distance / exact) * (half - exact)
            ).long()
        )
        far = far.clamp(max=half - 1)
        return bucket + torch.where(dist < exact, dist, far)

    def forward(self, lq: int, lk: int) -> torch.Tensor:
        bias = self.embedding(self.buckets(lq, lk, self.embedding.weight.device))
        return bias.permute(2, 0, 1).unsqueeze(0)


class T5Attention(nn.Module):
    def __init__(self, dim: int, dim_attn: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (proj(x).view(b, n, self.num_heads, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)  # T5: no 1/sqrt(d)
        return self.o(y.transpose(1, 2).reshape(b, n, -1))


class T5FeedForward(nn.Module):
    def __init__(self, dim: int, dim_ffn: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


class T5Block(nn.Module):
    def __init__(self, c: T5Config) -> None:
        super().__init__()
        self.norm1 = T5RMSNorm(c.dim, c.eps)
        self.attn = T5Attention(c.dim, c.dim_attn, c.num_heads)
        self.norm2 = T5RMSNorm(c.dim, c.eps)
        self.ffn = T5FeedForward(c.dim, c.dim_ffn)
        self.pos_embedding = T5RelativeBias(c.num_buckets, c.num_heads, c.max_distance)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[1]
        bias = self.pos_embedding(n, n)
        if mask_bias is not None:
            bias = bias + mask_bias
        x = x + self.attn(self.norm1(x), bias)
        return x + self.ffn(self.norm2(x))


class T5Encoder(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab, config.dim)
        self.blocks = nn.ModuleList(T5Block(config) for _ in range(config.num_layers))
        self.norm = T5RMSNorm(config.dim, config.eps)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids ``[B, L]`` (and an optional 0/1 mask ``[B, L]``) -> hidden states ``[B, L, dim]``."""
        x = self.token_embedding(ids)
        mask_bias = None
        if mask is not None:
            mask_bias = torch.zeros(mask.shape, dtype=torch.float32, device=x.device)
            mask_bias = mask_bias.masked_fill(mask.to(x.device) == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask_bias)
        return self.norm(x)


def clean_prompt(text: str) -> str:
    """Upstream's cleaning: ftfy's fixes, HTML entities (twice), whitespace.

    ftfy is required, not optional: without it curly quotes, ligatures and full-width characters
    reach the tokenizer as they are and tokenise differently from upstream.
    """
    try:
        import ftfy
    except ImportError:
        raise UserError(
            "--prompt",
            "umT5's prompt cleaning needs ftfy, which is not installed",
            "pip install 'liveavatar[diffusion]'",
        ) from None
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def load_t5(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16) -> T5Encoder:
    """Load Wan's umT5 encoder file (any size with its layout; sizes come from the shapes)."""
    return build_from_pth(
        path,
        "umT5-XXL encoder",
        T5Config.from_state_dict,
        T5Encoder,
        lambda c: f"umT5 encoder layout ({c.num_layers} layers, dim {c.dim})",
        device,
        dtype,
    )


def load_tokenizer(folder: Path):
    """The ``google/umt5-xxl`` tokenizer from the checkpoint folder, never from the network."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad folder
        raise UserError(
            "--ckpt_dir",
            f"the tokenizer in {folder} could not be loaded ({type(exc).__name__})",
            f"put the {TOKENIZER_DIR} folder of the Wan-AI/Wan2.2-S2V-14B release there",
        ) from None


class TextEncoder:
    """Prompt -> umT5 hidden states ``[L, dim]`` (L <= 512 real tokens, EOS included)."""

    def __init__(self, model: T5Encoder, tokenizer, max_length: int = TEXT_LEN) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_checkpoint(
        cls, ckpt_dir: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16
    ) -> TextEncoder:
        ckpt_dir = Path(ckpt_dir)
        tokenizer = load_tokenizer(ckpt_dir / TOKENIZER_DIR)
        return cls(load_t5(ckpt_dir / T5_FILE, device, dtype), tokenizer)

    def token_ids(self, prompt: str) -> torch.Tensor:
        """Token ids ``[1, L]`` of the cleaned prompt, truncated to ``max_length`` (EOS kept)."""
        batch = self.tokenizer(
            [clean_prompt(prompt)],
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return batch["input_ids"]

    @torch.no_grad()
    def encode(self, prompt: str) -> torch.Tensor:
        ids = self.token_ids(prompt).to(self.model.token_embedding.weight.device)
        return self.model(ids)[0]
