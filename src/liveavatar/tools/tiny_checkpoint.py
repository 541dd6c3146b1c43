"""Tiny random checkpoints in the real release's files and folder layout (tests, dry runs).

One function per component; each writes into a checkpoint folder laid out like
``Wan-AI/Wan2.2-S2V-14B`` and the result loads through the same code as the real files. Sizes are
read back from tensor shapes, so no side files are needed.

Encoder sizes a tiny DiT must match: text width ``TINY_T5.dim`` (32) and audio width
``TINY_WAV2VEC2["hidden_size"]`` (32) with 25 hidden states; latents keep 16 channels.
"""

from __future__ import annotations

from pathlib import Path

from liveavatar.engines.diffusion.encoders.text_encoder import T5Config
from liveavatar.engines.diffusion.loading.layout import T5_FILE, TOKENIZER_DIR, VAE_FILE, WAV2VEC_DIR
from liveavatar.engines.diffusion.vae.vae import VAEConfig

TINY_VAE = VAEConfig(dim=4, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=2, temporal_downsample=(False, True, True))
TINY_T5 = T5Config(vocab=128, dim=32, dim_attn=32, dim_ffn=64, num_heads=4, num_layers=2, num_buckets=32)
TINY_TOKENIZER_VOCAB = 96  # at most; must stay below TINY_T5.vocab
TINY_WAV2VEC2 = dict(
    hidden_size=32,
    num_hidden_layers=24,  # the DiT expects 25 hidden states (embedding output + 24 layers)
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,  # the real kernels and strides (25 ms window, 20 ms hop), narrow channels
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,  # as XLSR-53 large
    vocab_size=32,
)
_TOKENIZER_TEXT = (
    "a young woman with long hair is talking to the camera",
    "the man in a blue shirt smiles and speaks clearly in a bright room",
    "close-up portrait, natural light, soft background, gentle head movement",
    "Eine Frau spricht ruhig. Un homme parle. 一个女人在说话。",
    "0123456789 !?,.:;'\"()-",
)


def _save_state_dict(model, path: Path, dtype=None) -> Path:
    import torch

    state = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_tiny_vae(ckpt_dir: Path, seed: int = 0) -> Path:
    """``Wan2.1_VAE.pth``: a random :data:`TINY_VAE` state dict (fp32, as the real file)."""
    import torch

    from liveavatar.engines.diffusion.vae.vae import WanVAE

    torch.manual_seed(seed)
    return _save_state_dict(WanVAE(TINY_VAE), Path(ckpt_dir) / VAE_FILE)


def write_tiny_t5(ckpt_dir: Path, seed: int = 0) -> Path:
    """``models_t5_umt5-xxl-enc-bf16.pth``: a random :data:`TINY_T5` encoder in Wan's key layout (bf16)."""
    import torch

    from liveavatar.engines.diffusion.encoders.text_encoder import T5Encoder

    torch.manual_seed(seed)
    model = T5Encoder(TINY_T5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, p.shape[-1] ** -0.5)
    return _save_state_dict(model, Path(ckpt_dir) / T5_FILE, torch.bfloat16)


def write_tiny_tokenizer(ckpt_dir: Path) -> Path:
    """``google/umt5-xxl/``: a small SentencePiece unigram model (pad 0, EOS 1, unk 2, as umT5).

    Written as ``spiece.model`` plus the ``tokenizer.json``/``tokenizer_config.json`` that
    ``AutoTokenizer`` reads offline (the real folder has the same files).
    """
    import io

    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(ckpt_dir) / TOKENIZER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_TOKENIZER_TEXT * 8),
        model_writer=proto,
        vocab_size=TINY_TOKENIZER_VOCAB,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    model = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(model.id_to_piece(i), model.get_score(i)) for i in range(model.get_piece_size())]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(str(folder))
    (folder / "spiece.model").write_bytes(proto.getvalue())
    return folder


def write_tiny_wav2vec2(ckpt_dir: Path, seed: int = 0) -> Path:
    """``wav2vec2-large-xlsr-53-english/``: a random tiny Wav2Vec2ForCTC (24 layers) + its processor files."""
    import json

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    folder = Path(ckpt_dir) / WAV2VEC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**TINY_WAV2VEC2)).eval()
    model.save_pretrained(str(folder))
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"]
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({ch: i for i, ch in enumerate(letters)}))
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    extractor.save_pretrained(str(folder))  # preprocessor_config.json, as in the release
    Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    ).save_pretrained(str(folder))
    return folder


def write_tiny_encoders(ckpt_dir: Path, seed: int = 0) -> list[Path]:
    """Everything except the DiT and the LoRA: VAE, T5, tokenizer, wav2vec2."""
    return [
        write_tiny_vae(ckpt_dir, seed),
        write_tiny_t5(ckpt_dir, seed),
        write_tiny_tokenizer(ckpt_dir),
        write_tiny_wav2vec2(ckpt_dir, seed),
    ]


def write_tiny_checkpoint(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """A whole tiny release under ``root``: ``Wan2.2-S2V-14B/`` and ``LiveAvatar/liveavatar.safetensors``.

    Returns ``(ckpt_dir, lora_path)``, ready for ``--ckpt_dir`` and ``--lora_path_dmd``.
    """
    from liveavatar.tools.tiny_dit import write_tiny_dit, write_tiny_lora

    root = Path(root)
    ckpt_dir = root / "Wan2.2-S2V-14B"
    write_tiny_dit(ckpt_dir, seed=seed)
    write_tiny_encoders(ckpt_dir, seed)
    return ckpt_dir, write_tiny_lora(root / "LiveAvatar", seed=seed + 1)
