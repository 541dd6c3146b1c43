"""Per-worker memory plans (multi-GPU): each rank planned for its own GPU, from shapes alone.

The table the dry run prints for 1, 2 and 4(+1) workers on 24, 48 and 80 GiB cards: what each
worker holds, that its mode is the fastest that fits its card, and the one-line refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liveavatar.cli import main
from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.errors import UserError
from liveavatar.planning.memory import (GIB, MARGIN, MODES, Workload, candidate_modes, estimate, plan_workers,
                                        share_workload, worker_shares)
from liveavatar.planning.memory.components import ring_bytes

C14 = DiTConfig.wan_s2v_14b()
BASE = Workload(C14, 384, 704, 48, 4, num_frames=1250)
LAYOUTS = {"1": (1, False), "2": (2, False), "4+1": (4, True)}


def _plan(layout: str, card_gib: float):
    k, decode_worker = LAYOUTS[layout]
    shares = worker_shares(k, decode_worker, 4)
    return shares, plan_workers(BASE, shares, [int(card_gib * GIB)] * len(shares))


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("card", [24, 48, 80])
def test_each_worker_holds_its_share_in_the_fastest_mode_that_fits_its_card(layout, card):
    shares, memory = _plan(layout, card)
    assert len(memory.workers) == len(shares) == LAYOUTS[layout][0] + LAYOUTS[layout][1]
    steps = sorted(s for w in memory.workers for s in w.share.steps)
    assert steps == [0, 1, 2, 3]  # every step on exactly one worker
    for w in memory.workers:
        est, c = w.choice.estimate, w.choice.estimate.components
        assert est.peak <= card * GIB * (1 - MARGIN)
        work = share_workload(BASE, w.share)
        modes = candidate_modes(work)
        earlier = modes[: modes.index(w.choice.mode)]
        assert all(estimate(work, m).peak > card * GIB * (1 - MARGIN) for m in earlier), (w.share.label, card)
        if w.share.role == "decode":
            assert c["dit_weights"] == c["kv_rings"] == c["sink"] == 0 and c["vae_weights"] > 0 and c["vae_decode"] > 0
            assert c["wav2vec2"] > 0  # the decoding rank encodes the conditions
            continue
        if w.choice.mode.kv.placement == "resident":  # only ITS steps' rings
            assert c["kv_rings"] == len(w.share.steps) * ring_bytes(work, w.choice.mode)
        decodes = w.share.role in ("single", "dit+decode")
        assert (c["vae_weights"] > 0) == decodes and (c["wav2vec2"] > 0) == decodes


def test_more_workers_never_run_slower_modes_and_24_gb_cards_fit_the_guide_case():
    index = {m.name: i for i, m in enumerate(MODES)}
    for card in (24, 48, 80):
        single = _plan("1", card)[1].workers[0].choice.mode
        for layout in ("2", "4+1"):
            for w in _plan(layout, card)[1].workers:
                assert index[w.choice.mode.name] <= index[single.name], (layout, card, w.share.label)
    # the guide's failure case: 4 DiT workers + a decode worker, 24 GB each, every worker under
    # the 22.5 GiB the emulation allows it (one step's ring each; none streams all four)
    _, memory = _plan("4+1", 24)
    assert all(w.choice.estimate.peak <= 22.5 * GIB for w in memory.workers)
    assert all(w.choice.estimate.host_bytes <= ring_bytes(BASE, w.choice.mode) for w in memory.workers)
    # 80 GB cards: every DiT worker keeps bf16 weights and rings resident
    _, memory = _plan("4+1", 80)
    assert {w.choice.mode.name for w in memory.workers if w.share.role == "dit"} == {"bf16 resident"}


def test_a_worker_that_fits_no_mode_is_refused_in_one_line_naming_it():
    shares = worker_shares(2, False, 4)
    with pytest.raises(UserError) as err:
        plan_workers(BASE, shares, [16 * GIB, 16 * GIB])
    line = err.value.one_line()
    assert "\n" not in line and "worker 0 (DiT steps 0-1)" in line and "needs" in line and "16.0 GiB" in line
    # different cards: a small one for the decode worker (GPU 0) only
    shares = worker_shares(4, True, 4)
    budgets = [int((2 if s.gpu == 0 else 24) * GIB) for s in shares]
    with pytest.raises(UserError) as err:
        plan_workers(BASE, shares, budgets)
    assert "worker 4 (decode) on GPU 0" in err.value.one_line()


def _config_only_ckpt(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"dim": 5120, "num_layers": 40, "num_heads": 40, "ffn_dim": 13824}))
    return ckpt


def test_dry_run_prints_one_entry_per_worker(tmp_path, capsys, portrait_path, speech_path):
    args = ["generate", "--engine", "diffusion", "--image", str(portrait_path), "--audio", str(speech_path),
            "--ckpt_dir", str(_config_only_ckpt(tmp_path)), "--size", "704*384", "--dry_run"]
    assert main([*args, "--gpu_memory", "24"]) == 0
    single = json.loads(capsys.readouterr().out)["memory"]
    assert [(w["rank"], w["role"], w["steps"]) for w in single["workers"]] == [(0, "single", [0, 1, 2, 3])]
    assert main([*args, "--num_gpus_dit", "4", "--enable_vae_parallel", "--gpu_memory", "24"]) == 0
    out, err = capsys.readouterr()
    workers = json.loads(out)["memory"]["workers"]
    assert [(w["rank"], w["role"], w["steps"]) for w in workers] == [
        (0, "dit", [0]), (1, "dit", [1]), (2, "dit", [2]), (3, "dit", [3]), (4, "decode", [])]
    assert all({"mode", "peak_gib", "components", "budget_gib"} <= set(w) for w in workers)
    assert "note: memory plan per worker: worker 0 (DiT step 0)" in err
    # one budget per GPU (device order: the decoding process keeps GPU 0)
    assert main([*args, "--num_gpus_dit", "4", "--enable_vae_parallel", "--gpu_memory", "48,24,24,24,24"]) == 0
    workers = json.loads(capsys.readouterr().out)["memory"]["workers"]
    assert [w["budget_gib"] for w in workers] == [24, 24, 24, 24, 48]
    assert main([*args, "--num_gpus_dit", "4", "--enable_vae_parallel", "--gpu_memory", "24,24"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --gpu_memory") and "one per GPU" in err


def test_a_worker_that_cannot_fit_is_refused_before_any_weight_loads(tmp_path, capsys, portrait_path, speech_path,
                                                                    monkeypatch):
    from liveavatar.engines.diffusion.loading import checkpoint
    from liveavatar.engines.diffusion.runtime import workers
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    ckpt, lora = write_tiny_checkpoint(tmp_path / "release")
    loads, launches = [], []
    monkeypatch.setattr(checkpoint, "load_dit", lambda *a, **k: loads.append(a))
    monkeypatch.setattr(workers.Team, "launch", classmethod(lambda cls, *a, **k: launches.append(a)))
    out = tmp_path / "v.mp4"
    code = main(["generate", "--engine", "diffusion", "--image", str(portrait_path), "--audio", str(speech_path),
                 "--ckpt_dir", str(ckpt), "--lora_path_dmd", str(lora), "--size", "64*64", "--infer_frames", "12",
                 "--skip_checks", "--num_gpus_dit", "2", "--enable_vae_parallel", "--gpu_memory", "1,24,24",
                 "--save_file", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "worker 2 (decode) on GPU 0" in errors[0], err
    assert not loads and not launches and not out.exists()
