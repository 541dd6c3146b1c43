"""The planner's text for people: the README's GPU table and the command that finishes a video."""

from __future__ import annotations

from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.errors import UserError
from liveavatar.planning.memory.calibration import GIB
from liveavatar.planning.memory.modes import GUIDE_SIZES
from liveavatar.planning.memory.select import choose
from liveavatar.planning.memory.workload import Workload


def gpu_table(
    config: DiTConfig,
    height: int = 384,
    width: int = 704,
    frames: int = 48,
    steps: int = 4,
    cards_gib: tuple[int, ...] = (80, 48, 24),
) -> list[tuple[int, str, float]]:
    """(card GiB, chosen mode, predicted peak GiB) for the README's "Which GPU do I need?" table."""
    work = Workload(config, height, width, frames, steps, num_frames=1250)
    rows = []
    for card in cards_gib:
        try:
            ch = choose(work, card * GIB)
            rows.append((card, ch.mode.name, round(ch.estimate.peak / GIB, 1)))
        except UserError:
            rows.append((card, "does not fit", float("nan")))
    return rows


def finish_command(config, plan_width: int, plan_height: int) -> str:
    """The one command that would make the whole video in less memory: the same run at the guide's
    next smaller size (the finished part stays in the .partial.mp4 beside the output)."""
    import shlex

    from liveavatar.sizing import parse_size

    area = plan_width * plan_height
    smaller = [s for s in GUIDE_SIZES if parse_size(s)[0] * parse_size(s)[1] < area]
    from liveavatar.config import IDENTITY, in_group

    args = ["liveavatar", "generate"]
    shape = {"size": smaller[0] if smaller else config.size, "infer_frames": config.infer_frames if smaller else 24}
    for name in (*in_group(IDENTITY), "save_file"):  # everything that makes the video, at the smaller shape
        value = shape[name] if name in shape else getattr(config, name)
        if value is not None and value != "":
            args += [f"--{name}", str(value)]
    return shlex.join(args + ["--overwrite"])
