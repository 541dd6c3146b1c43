"""Which engine runs, and building it."""

from __future__ import annotations

from liveavatar.config import GenerateConfig
from liveavatar.engines.base import Engine
from liveavatar.engines.diffusion.loading.layout import resolve_layout
from liveavatar.errors import UserError
from liveavatar.option_groups import EngineOptions


def choose_engine(config: GenerateConfig | EngineOptions) -> tuple[str, str]:
    """``(engine name, why)``: the flag if given, else diffusion when a complete checkpoint is configured."""
    if config.engine:
        return config.engine, "--engine"
    layout = resolve_layout(config.ckpt_dir, config.lora_path_dmd)
    if layout.missing():
        return "preview", f"no complete diffusion checkpoint at {layout.root}"
    missing = _diffusion_missing()
    if missing:
        return (
            "preview",
            f"a checkpoint is at {layout.root} but {', '.join(missing)} is not installed: {INSTALL_DIFFUSION}",
        )
    return "diffusion", f"a complete checkpoint is at {layout.root}"


INSTALL_DIFFUSION = "pip install 'liveavatar[diffusion]'"
# what the diffusion extra adds that the engine cannot run without (ftfy: umT5's prompt cleaning)
DIFFUSION_MODULES = ("torch", "transformers", "ftfy")


def _diffusion_missing() -> list[str]:
    import importlib.util

    return [name for name in DIFFUSION_MODULES if importlib.util.find_spec(name) is None]


def engine_device(name: str) -> str:
    """Where the engine will run: "cuda" or "cpu" (the diffusion engine takes a GPU when torch sees one)."""
    if name != "diffusion" or "torch" in _diffusion_missing():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_engine_files(name: str, config: GenerateConfig | EngineOptions) -> None:
    """Fail early, before any output exists, when the engine's files are not all there."""
    if name == "diffusion":
        missing = _diffusion_missing()
        if missing:
            raise UserError(
                "--engine",
                f"the diffusion engine needs {', '.join(missing)}, which is not installed",
                f"{INSTALL_DIFFUSION}, or use --engine preview",
            )
        if config.num_gpus_dit > 1:
            from liveavatar.engines.diffusion.runtime.ranks import plan_roles

            plan_roles(config)  # enough steps and GPUs for the workers, or one line saying why not
        resolve_layout(config.ckpt_dir, config.lora_path_dmd).require_complete()


def build_engine(name: str, config: GenerateConfig | EngineOptions, memory=None) -> Engine:
    """`config`: a run's, or a resident engine's EngineOptions (the server); `memory`: the planner's
    MemoryFit (planning/fit.py), which the diffusion engine needs."""
    if name == "preview":
        from liveavatar.engines.preview import PreviewEngine

        return PreviewEngine()
    from liveavatar.engines.diffusion.engine import DiffusionEngine

    if memory is None:
        raise ValueError("the diffusion engine is built for a memory choice: pass planning.fit's MemoryFit")
    layout = resolve_layout(config.ckpt_dir, config.lora_path_dmd)
    layout.require_complete()
    return DiffusionEngine.from_config(config, layout, memory)
