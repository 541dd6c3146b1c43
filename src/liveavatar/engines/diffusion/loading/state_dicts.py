"""State dicts: reading a ``.pth``, comparing one strictly with a model's (a report a person can
read), and building a model from one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from liveavatar.errors import UserError


def _shape(t) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def state_dict_problems(expected: Mapping, found: Mapping, limit: int = 5) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches between two name -> tensor maps."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k} {list(_shape(found[k]))} (expected {list(_shape(expected[k]))})"
        for k in expected
        if k in found and _shape(found[k]) != _shape(expected[k])
    ]
    return describe_mismatch(missing, unexpected, wrong, limit)


def describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[str] = (), limit: int = 5) -> list[str]:
    """``["2 missing: a, b", "1 unexpected: c", ...]``: the first ``limit`` names of each kind."""
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return problems


def require_matching(expected: Mapping, found: Mapping, path: Path, what: str) -> None:
    """Raise a UserError naming the file when ``found`` does not fit ``expected`` exactly."""
    problems = state_dict_problems(expected, found)
    if problems:
        raise UserError(
            "--ckpt_dir",
            f"{path} does not match the {what}: {'; '.join(problems)}",
            f"use the unmodified {path.name} from the Wan-AI/Wan2.2-S2V-14B release",
        )


def load_pth(path: Path, what: str) -> dict:
    """A ``torch.save``d state dict, memory-mapped when the file allows it (no copy in RAM)."""
    import torch

    if not path.is_file():
        raise UserError(
            "--ckpt_dir", f"{path} is missing", f"put the {what} file from the Wan-AI/Wan2.2-S2V-14B release there"
        )
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem to the user
        raise UserError(
            "--ckpt_dir",
            f"{path} could not be read as a torch state dict ({type(exc).__name__}: {exc})",
            f"re-download the {what} file",
        ) from None
    if not isinstance(state, Mapping) or not state:
        raise UserError("--ckpt_dir", f"{path} does not hold a state dict", f"re-download the {what} file")
    return dict(state)


def build_from_pth(path: Path, what: str, config_from_state, model_class, describe, device, dtype):
    """Read a ``.pth`` state dict, size the model from its shapes, check the keys strictly and load.

    ``config_from_state(state, path)`` gives the config, ``model_class(config)`` the module (built on
    the meta device, then filled with the file's tensors), ``describe(config)`` the layout's name for
    the error message.
    """
    import torch

    path = Path(path)
    state = load_pth(path, what)
    config = config_from_state(state, path)
    with torch.device("meta"):
        model = model_class(config)
    require_matching(model.state_dict(), state, path, describe(config))
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
