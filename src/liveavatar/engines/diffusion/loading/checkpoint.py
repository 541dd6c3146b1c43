"""Load the DiT from upstream's safetensors layout (sharded + index.json, or one file), strictly.

The model is built on the meta device; each tensor is read from the memory-mapped shard, cast
and moved to the target device one at a time and assigned in place of the meta parameter, so
no second full copy of the weights ever exists in RAM. Every shard is opened and closed per
tensor batch so the mapped pages are released as we go.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from liveavatar.engines.diffusion.loading.layout import DIT_CONFIG, dit_files, read_config  # noqa: F401  (read_config: re-exported)
from liveavatar.engines.diffusion.loading.state_dicts import describe_mismatch
from liveavatar.errors import UserError

_SHOW = 5


@dataclass
class LoadReport:
    files: list[Path]
    num_tensors: int = 0
    num_bytes: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def key_report(missing: list[str], unexpected: list[str]) -> str:
    """A readable one-paragraph summary of a key mismatch ('' when the keys match)."""
    return "; ".join(describe_mismatch(sorted(missing), sorted(unexpected), limit=_SHOW))


@contextmanager
def open_safetensors(path: Path, flag: str = "--ckpt_dir") -> Iterator:
    """``safe_open`` whose failure (a truncated or garbage file) is one line naming the file."""
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            flag,
            f"{path} is not a complete safetensors file ({exc})",
            f"re-download {Path(path).name}: an interrupted download leaves it truncated",
        ) from None
    with handle as opened:
        yield opened


def _param_slots(model: nn.Module) -> dict[str, tuple[nn.Module, str, torch.Tensor]]:
    slots = {}
    for mod_name, module in model.named_modules():
        for name, p in list(module._parameters.items()) + list(module._buffers.items()):
            if p is not None and (name in module._parameters or name not in module._non_persistent_buffers_set):
                slots[f"{mod_name}.{name}" if mod_name else name] = (module, name, p)
    return slots


def load_state_files(
    model: nn.Module,
    files: list[Path],
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    source: str = "",
) -> LoadReport:
    """Assign every tensor of `files` to `model` (built on meta or not), strictly, tensor by tensor."""
    slots = _param_slots(model)
    report = LoadReport(files=list(files))
    file_keys: dict[Path, list[str]] = {}
    seen: set[str] = set()
    for f in files:
        with open_safetensors(f) as handle:
            file_keys[f] = list(handle.keys())
        seen.update(file_keys[f])
    report.missing = sorted(set(slots) - seen)
    report.unexpected = sorted(seen - set(slots))
    if report.missing or report.unexpected:
        raise UserError(
            source or str(files[0].parent),
            "the checkpoint does not match the DiT: " + key_report(report.missing, report.unexpected),
            "use the Wan2.2-S2V-14B release with its own config.json (a different model or a "
            "truncated download gives these keys)",
        )
    for f in files:
        keys = file_keys[f]
        for start in range(0, len(keys), 16):  # reopen so the mapped pages already copied are released
            with open_safetensors(f) as handle:
                for key in keys[start : start + 16]:
                    module, name, old = slots[key]
                    tensor = handle.get_tensor(key)
                    if tuple(tensor.shape) != tuple(old.shape):
                        raise UserError(
                            source or str(f),
                            f"tensor {key} has shape {tuple(tensor.shape)}, the model expects {tuple(old.shape)}",
                            "use a checkpoint made for this model config",
                        )
                    target_dtype = dtype or (old.dtype if old.is_floating_point() else tensor.dtype)
                    target_device = (
                        device if device is not None else (old.device if old.device.type != "meta" else "cpu")
                    )
                    new = tensor.to(device=target_device, dtype=target_dtype, copy=False)
                    del tensor
                    if name in module._parameters:
                        module._parameters[name] = nn.Parameter(new, requires_grad=False)
                    else:
                        module._buffers[name] = new
                    report.num_tensors += 1
                    report.num_bytes += new.numel() * new.element_size()
    return report


def load_dit_checkpoint(
    model: nn.Module, path: Path | str, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> LoadReport:
    """Load a Wan2.2-S2V-14B DiT folder (sharded or single file) or one .safetensors file into `model`."""
    files = dit_files(Path(path))
    return load_state_files(model, files, device=device, dtype=dtype, source=str(path))


def load_dit(folder: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """Build the DiT from the folder's config.json on the meta device and load its weights."""
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT

    config = read_config(Path(folder))
    try:
        model = CausalS2VDiT(config, dtype=dtype, device="meta")
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        raise UserError(
            "--ckpt_dir",
            f"{Path(folder) / DIT_CONFIG} does not describe a buildable DiT ({type(exc).__name__}: {exc})",
            f"re-download {DIT_CONFIG} from the Wan2.2-S2V-14B release",
        ) from None
    load_dit_checkpoint(model, folder, device=device, dtype=dtype)
    model._rope = None
    return model.eval()
