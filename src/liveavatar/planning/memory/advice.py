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
    from liveavatar.config import IDENTITY
    from liveavatar.option_groups import in_group

    args = ["liveavatar", "generate"]
    shape = {"size": smaller[0] if smaller else config.size, "infer_frames": config.infer_frames if smaller else 24}
    for name in (*in_group(IDENTITY), "save_file"):  # everything that makes the video, at the smaller shape
        value = shape[name] if name in shape else getattr(config, name)
        if value is not None and value != "":
            args += [f"--{name}", str(value)]
    return shlex.join(args + ["--overwrite"])


# the cards of the README's multi-GPU rows: nominal size -> the budget planned for (as the one-GPU
# table: 80 GB cards report 79.2 GiB, 48 GB 44.5 GiB; 24 and 32 GB cards keep ~2 GiB for a desktop)
CARD_BUDGET_GIB = {24: 22.0, 32: 30.0, 48: 44.5, 80: 79.2}
# (cards, DiT workers, a decode worker): 2 and 4 cards, the last DiT worker decodes; 3 and 4+1, one decodes
LAYOUTS = ((2, 2, False), (3, 2, True), (4, 4, False), (5, 4, True))


def projected_seconds_per_block(memory) -> float:
    """A pipeline's seconds per 12-frame block, projected from one-GPU block times (calibration's
    SECONDS_PER_BLOCK less the decode, per step): the slowest worker sets the pace."""
    from liveavatar.planning.memory.calibration import DECODE_SECONDS_PER_BLOCK, SECONDS_PER_BLOCK
    from liveavatar.planning.memory.modes import MODES

    # a later mode keeps every earlier one's savings, so it is taken as no faster than the one before
    # it (the measured 1.081 / 1.095 s under 1.133 s are run-to-run noise, not a speed-up)
    seconds, slowest = {}, 0.0
    for m in MODES[1:]:  # from fp8 weights on; bf16 weights are slower than fp8 (their own figure)
        slowest = seconds[m.name] = max(slowest, SECONDS_PER_BLOCK[m.name])
    seconds[MODES[0].name] = SECONDS_PER_BLOCK[MODES[0].name]

    stages = []
    for w in memory.workers:
        steps = len(w.share.steps)
        per_step = (
            seconds[w.choice.mode.name.split(", ")[0]] - DECODE_SECONDS_PER_BLOCK
        ) / 4  # a rung: "<mode>, <shape>"
        stages.append(steps * per_step + (DECODE_SECONDS_PER_BLOCK if w.share.decodes else 0.0))
    return max(stages)


def multi_gpu_rows(
    config: DiTConfig, height: int = 384, width: int = 704, frames: int = 48, steps: int = 4, fp8_weights: bool = True
) -> list[dict]:
    """The README's multi-GPU rows: per layout and card, each worker's mode and the projected fps
    (with ``--fp8``, the guide's real-time setting, by default)."""
    from liveavatar.planning.memory.workers import plan_workers, worker_shares

    work = Workload(config, height, width, frames, steps, num_frames=1250)
    rows = []
    for cards, k, decode_worker in LAYOUTS:
        shares = worker_shares(k, decode_worker, steps)
        for card, budget in CARD_BUDGET_GIB.items():
            try:
                memory = plan_workers(work, shares, [int(budget * GIB)] * len(shares), fp8_weights=fp8_weights)
            except UserError:
                rows.append({"cards": cards, "card_gb": card, "fits": False})
                continue
            seconds = projected_seconds_per_block(memory)
            rows.append(
                {
                    "cards": cards,
                    "card_gb": card,
                    "fits": True,
                    "seconds_per_block": seconds,
                    "fps": 12 / seconds,
                    "workers": [
                        (w.share.label, w.choice.mode.name, w.choice.estimate.peak / GIB) for w in memory.workers
                    ],
                }
            )
    return rows


_SHORT = {
    "KV streamed from pinned host memory": "KV streamed",
    "smaller decode passes": "tiled decode",
    "text encoder on the CPU": "text enc. on CPU",
    "bf16 resident": "bf16",
}
_LAYOUT_NAMES = {
    2: "2: steps 2 + 2, the second decodes",
    3: "3: steps 2 + 2, + a decode GPU",
    4: "4: one step each, the fourth decodes",
    5: "4 + 1: one step each, + a decode GPU",
}


def _cell(row: dict) -> str:
    if not row["fits"]:
        return "does not fit"
    groups: list[list] = []  # runs of DiT workers with the same mode and peak: "3x fp8 KV 24.0"
    decode = ""
    for label, mode, peak in row["workers"]:
        if "(decode)" in label:
            decode = f" + decode {peak:.1f}"
            continue
        text = f"{_SHORT.get(mode, mode)} {peak:.1f}"
        if groups and groups[-1][0] == text:
            groups[-1][1] += 1
        else:
            groups.append([text, 1])
    workers = " / ".join(f"{n}x {t}" if n > 1 else t for t, n in groups)
    return f"{workers}{decode} GiB: **{row['fps']:.0f} fps**"


def multi_gpu_markdown(config: DiTConfig) -> str:
    """The README's multi-GPU table (``multi_gpu_rows`` as Markdown)."""
    rows = multi_gpu_rows(config)
    lines = [
        "| cards (704*384, 4 steps, `--fp8`) | "
        + " | ".join(f"{c} GB ({b} GiB)" for c, b in CARD_BUDGET_GIB.items())
        + " |",
        "|---|" + "---|" * len(CARD_BUDGET_GIB),
    ]
    for cards, _, _ in LAYOUTS:
        cells = [_cell(r) for r in rows if r["cards"] == cards]
        lines.append(f"| {_LAYOUT_NAMES[cards]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
