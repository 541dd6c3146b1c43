"""The checkpoint folder, laid out as upstream's release: every file name, the DiT's shards, and
what is missing. The one place that knows the release's names (loaders ask it for paths)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from liveavatar.errors import UserError

DEFAULT_CKPT_DIR = Path("ckpt/Wan2.2-S2V-14B")
DEFAULT_LORA_DIR = Path("ckpt/LiveAvatar")
LORA_FILENAME = "liveavatar.safetensors"
# where `hf_hub_download(..., cache_dir=DEFAULT_LORA_DIR)` (upstream's loader) puts the file
LORA_HUB_REPO = "models--Quark-Vision--Live-Avatar"
CKPT_ENV = "LIVEAVATAR_CKPT_DIR"
LORA_ENV = "LIVEAVATAR_LORA"

DIT_CONFIG = "config.json"
DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
DIT_SINGLE = "diffusion_pytorch_model.safetensors"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIR = "google/umt5-xxl"
WAV2VEC_DIR = "wav2vec2-large-xlsr-53-english"
SOURCES = {
    "ckpt": "the Wan-AI/Wan2.2-S2V-14B release (huggingface-cli download Wan-AI/Wan2.2-S2V-14B --local-dir ckpt/Wan2.2-S2V-14B)",
    "lora": "the Quark-Vision/Live-Avatar release (huggingface-cli download Quark-Vision/Live-Avatar --local-dir ckpt/LiveAvatar)",
}


def dit_shard_name(k: int, n: int) -> str:
    """The release's name of shard k (1-based) of n."""
    return f"diffusion_pytorch_model-{k:05d}-of-{n:05d}.safetensors"


def read_json(path: Path, flag: str = "--ckpt_dir") -> dict:
    """A JSON object from the release; a malformed file is one line naming it."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            flag, f"{path} is not valid JSON ({exc})", f"re-download {Path(path).name} from the release"
        ) from None
    if not isinstance(value, dict):
        raise UserError(flag, f"{path} does not hold a JSON object", f"re-download {Path(path).name} from the release")
    return value


def read_config(folder: Path):
    """The DiT's config.json as a DiTConfig (torch-free: the planner reads it too); a value we do
    not implement (e.g. zero_timestep false) or a damaged file is one UserError."""
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    file = Path(folder) / DIT_CONFIG
    if not file.is_file():
        raise UserError(str(folder), f"{DIT_CONFIG} is missing", "download the complete Wan2.2-S2V-14B release")
    fields = read_json(file)
    try:
        config = DiTConfig.from_json(fields)
        _require_numbers(config)
        return config
    except (KeyError, TypeError) as exc:
        raise UserError(
            "--ckpt_dir",
            f"{file} is not a Wan2.2-S2V-14B DiT config ({type(exc).__name__}: {exc})",
            f"re-download {DIT_CONFIG} from the release",
        ) from None
    except ValueError as exc:  # a value we do not implement (e.g. zero_timestep false)
        raise UserError(str(file), str(exc), "use the config.json of the Wan2.2-S2V-14B release") from None


def _require_numbers(config) -> None:
    """Every field whose default is a number holds one (a string in config.json would only fail
    later, deep inside the planner or the model's constructor)."""
    import dataclasses

    for f in dataclasses.fields(config):
        default = f.default
        value = getattr(config, f.name)
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{f.name} is {value!r}, not a number")


def dit_shard_paths(folder: Path) -> list[Path]:
    """The DiT's safetensors files, from the index when there is one (they may not exist)."""
    index = folder / DIT_INDEX
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise UserError(
                "--ckpt_dir", f"{index} has no valid weight_map", f"re-download {DIT_INDEX} from the release"
            )
        return [folder / name for name in sorted(set(weight_map.values()))]
    return [folder / DIT_SINGLE]


def dit_files(path: Path) -> list[Path]:
    """The DiT's safetensors files of a checkpoint folder (index shards or the single file), all present;
    a file path is itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not (path / DIT_INDEX).is_file() and not (path / DIT_SINGLE).is_file():
        raise UserError(
            str(path),
            f"no {DIT_INDEX} or {DIT_SINGLE} found",
            "point the checkpoint directory at the Wan2.2-S2V-14B release folder",
        )
    absent = [f.name for f in dit_shard_paths(path) if not f.is_file()]
    if absent:
        shown = ", ".join(absent[:5]) + (f" (+{len(absent) - 5} more)" if len(absent) > 5 else "")
        raise UserError(
            str(path),
            f"{len(absent)} shard(s) listed in {DIT_INDEX} are missing: {shown}",
            "download the complete Wan2.2-S2V-14B release into this folder",
        )
    return dit_shard_paths(path)


@dataclass(frozen=True)
class CheckpointLayout:
    """Paths of every file the diffusion engine loads."""

    root: Path
    lora: Path
    lora_note: str = ""  # which hub-cache snapshot the LoRA came from, when there was a choice

    @property
    def config(self) -> Path:
        return self.root / DIT_CONFIG

    @property
    def vae(self) -> Path:
        return self.root / VAE_FILE

    @property
    def t5(self) -> Path:
        return self.root / T5_FILE

    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER_DIR

    @property
    def wav2vec(self) -> Path:
        return self.root / WAV2VEC_DIR

    def missing(self) -> list[str]:
        """Human-readable list of what is absent; empty when everything is in place."""
        gaps: list[str] = []
        if not self.root.is_dir():
            return [f"{self.root}/ (the checkpoint folder itself)"]
        if not self.config.is_file():
            gaps.append(str(self.config))
        try:
            shards = dit_shard_paths(self.root)
        except UserError:
            gaps.append(f"{self.root / DIT_INDEX} (unreadable index: re-download it)")
            shards = []
        gaps += [str(p) for p in shards if not p.is_file()]
        gaps += [str(p) for p in (self.vae, self.t5) if not p.is_file()]
        if not (self.tokenizer / "tokenizer_config.json").is_file():
            gaps.append(f"{self.tokenizer}/ (tokenizer)")
        if not (self.wav2vec / "config.json").is_file():
            gaps.append(f"{self.wav2vec}/ (wav2vec2 model)")
        if not self.lora.is_file():
            gaps.append(f"{self.lora} (Live Avatar LoRA)")
        return gaps

    def require_complete(self) -> None:
        gaps = self.missing()
        if gaps:
            listed = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
            lora_only = all("LoRA" in g for g in gaps)
            source = SOURCES["lora"] if lora_only else SOURCES["ckpt"] + " and " + SOURCES["lora"]
            raise UserError(
                "--ckpt_dir",
                f"the diffusion checkpoint is incomplete: missing {listed}",
                f"get them from {source}, or use --engine preview",
            )


def resolve_layout(ckpt_dir: Path | None, lora_path: Path | None) -> CheckpointLayout:
    """The configured checkpoint: flags first, then environment variables, then ./ckpt/."""
    root = ckpt_dir or Path(os.environ.get(CKPT_ENV, DEFAULT_CKPT_DIR))
    lora = lora_path or Path(os.environ.get(LORA_ENV, DEFAULT_LORA_DIR))
    note = ""
    if lora.is_dir():
        lora, note = find_lora(lora)
    return CheckpointLayout(root=root, lora=lora, lora_note=note)


def find_lora(folder: Path) -> tuple[Path, str]:
    """``liveavatar.safetensors`` in a folder, either flat (``--local-dir``) or in a hub cache.

    The hub cache is what upstream's loader and ``huggingface-cli download`` without ``--local-dir``
    write: ``models--Quark-Vision--Live-Avatar/snapshots/<hash>/``, under ``folder`` or ``folder``
    itself. With several snapshots the one ``refs/main`` names wins, else the newest; the note says
    which. Returns (path, note); the path is the flat one when nothing is found (reported as missing).
    """
    flat = folder / LORA_FILENAME
    if flat.is_file():
        return flat, ""
    for repo in (folder / LORA_HUB_REPO, folder):
        snapshots = [d for d in sorted((repo / "snapshots").glob("*")) if (d / LORA_FILENAME).is_file()]
        if not snapshots:
            continue
        if len(snapshots) == 1:
            return snapshots[0] / LORA_FILENAME, ""
        ref = repo / "refs" / "main"
        named = ref.read_text().strip() if ref.is_file() else ""
        chosen = next((d for d in snapshots if d.name == named), None)
        why = "the one refs/main names"
        if chosen is None:
            chosen, why = max(snapshots, key=lambda d: (d / LORA_FILENAME).stat().st_mtime), "the newest"
        return chosen / LORA_FILENAME, (
            f"note: the hub cache in {repo} holds {len(snapshots)} snapshots of the LoRA; using {chosen.name} ({why})"
        )
    return flat, ""
