from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from liveavatar.config import GenerateConfig
    from liveavatar.engines.diffusion.engine import DiffusionEngine
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.planning.fit import unplanned
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    ckpt, lora = write_tiny_checkpoint(tmp_path_factory.mktemp("release"))
    config = GenerateConfig(image=Path("x"), audio=Path("y"), ckpt_dir=ckpt, lora_path_dmd=lora).resolve()
    return DiffusionEngine.from_config(config, resolve_layout(ckpt, lora), unplanned())
