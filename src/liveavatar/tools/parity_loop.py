"""Loop-level parity: replay an upstream generation-loop reference through the engine's own code.

The folder (format of ``../shared/reference/upstream-loop``, see its README) holds upstream's
single-GPU clip/block/step loop run on a tiny DiT: every flow prediction in call order, the clean
latents per block, the K ring of every step cache and layer after each clip, the sink after each
prefill, and a tiny VAE's encode / full decode / streaming decode. Nothing of the loop is copied
here: the DiT runs inside ``runtime.loop.denoise_blocks`` (stored noise through ``noise=``, the
sink policy through ``LoopPlan.rolling_sink``), wrapped only to record what it is called with and
what it returns; the VAE runs through ``WanVAE.encode`` and ``StreamingDecoder``.

Tolerance (``run_info.json`` -> ``tolerance``), per stored tensor: ``max_abs`` bounds the largest
error and, where given, at least ``min_share`` of the elements are within ``share_within``. Integer
things (the sink-RoPE draws, the clip noise, the call sequence) must match exactly.

That rule holds in the reference's kernel environment, where our first denoise call is bit-identical
to the ``gpuln`` files. The loop amplifies last-bit differences (a bf16 rounding of norm3 flips and
is carried through the caches), so on a CPU whose kernels round otherwise (same ISA caps and thread
count, another machine) it cannot hold for any code, upstream's own included: there the
``PORTABLE`` rule applies, sized from the reference README's cross-environment measurements
(upstream against itself 4.8e-4 and 97.9 %, ours at one thread 7.1e-4 and 96.8 %) and still three
orders below what a wrong position, cache row or sink policy gives (> 0.1). The tool says which
rule it applied and why; ``strict=True`` demands the reference's.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("flow_pred", "latent", "ring_k", "cond_k", "cond_v")


def load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def build_tiny_dit(config_dict: dict, weights: Path, motion_frames: Any = None):
    """Our DiT in fp32 on the CPU, sized by an upstream config dict, with the reference's weights."""
    import dataclasses

    import torch

    from liveavatar.engines.diffusion.loading.checkpoint import load_dit_checkpoint
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    config = DiTConfig.from_json(config_dict)
    if motion_frames is not None:
        config = dataclasses.replace(config, motion_frames=tuple(motion_frames))
    model = CausalS2VDiT(config, dtype=torch.float32, device="meta")
    load_dit_checkpoint(model, weights, device="cpu", dtype=torch.float32)
    return model.eval()


# ----------------------------------------------------------------------------- the tolerance rule
@dataclass(frozen=True)
class Rule:
    max_abs: float
    share_within: float = 1e-5
    min_share: float = 0.0

    @classmethod
    def from_json(cls, data: dict) -> Rule:
        return cls(float(data["max_abs"]), float(data.get("share_within", 1e-5)), float(data.get("min_share", 0.0)))

    def measure(self, ours, want) -> tuple[float, float, bool]:
        """(max abs error, share of elements within ``share_within``, passes)."""
        if tuple(ours.shape) != tuple(want.shape):
            return float("inf"), 0.0, False
        err = (ours.float() - want.float()).abs()
        worst = err.max().item() if err.numel() else 0.0
        share = (err <= self.share_within).float().mean().item() if err.numel() else 1.0
        return worst, share, worst <= self.max_abs and share >= self.min_share


# see the module docstring: for machines whose kernels do not reproduce the reference bit for bit
PORTABLE = Rule(max_abs=1e-3, share_within=1e-5, min_share=0.95)


@dataclass
class Report:
    """Per stored tensor results, summarised per quantity (family) for printing."""

    label: str
    rule: Rule
    rows: dict = field(default_factory=dict)  # key -> (max abs, share, ok)
    problems: list = field(default_factory=list)

    def check(self, ours: dict, want: dict) -> None:
        for key in sorted(want):
            if key in ("timesteps", "sigmas"):
                continue
            if key not in ours:
                self.problems.append(f"{key}: not produced by the replay")
                continue
            self.rows[key] = self.rule.measure(ours[key], want[key])

    @property
    def ok(self) -> bool:
        return not self.problems and all(ok for _, _, ok in self.rows.values())

    def lines(self, verbose: bool = False) -> list[str]:
        out = []
        for family in sorted({k.split(".")[0] for k in self.rows}):
            keys = [k for k in self.rows if k.split(".")[0] == family]
            worst = max(self.rows[k][0] for k in keys)
            share = min(self.rows[k][1] for k in keys)
            bad = [k for k in keys if not self.rows[k][2]]
            verdict = "ok" if not bad else f"FAIL ({len(bad)}: {', '.join(bad[:3])})"
            out.append(
                f"{self.label} {family} x{len(keys)}: max abs {worst:.3e}, "
                f"min share within {self.rule.share_within:g} {100 * share:.2f} % {verdict}"
            )
            if verbose:
                out += [f"    {k}: {self.rows[k][0]:.3e} {100 * self.rows[k][1]:.2f} %" for k in sorted(keys)]
        return out + [f"{self.label} {p}" for p in self.problems]


# ----------------------------------------------------------------------------- the loop
class RecordingDiT:
    """The DiT as the loop sees it, recording each call; everything else passes through."""

    def __init__(self, dit, caches) -> None:
        self._dit, self._caches = dit, caches
        self._signature = inspect.signature(dit.denoise_block)
        self.denoise_calls: list[dict] = []
        self.prefills: list[dict] = []

    def __getattr__(self, name: str):
        return getattr(self._dit, name)

    def denoise_block(self, *args, **kwargs):
        bound = self._signature.bind(*args, **kwargs).arguments
        out = self._dit.denoise_block(*args, **kwargs)
        step = next(s for s, c in self._caches.by_step.items() if c is bound["cache"])
        self.denoise_calls.append(
            {
                "step": step,
                "x": bound["block_latents"].clone(),
                "timestep": bound["timestep"],
                "audio": bound["audio_input"],
                "current_start": bound["current_start"],
                "relative_dist": bound.get("relative_dist"),
                "out": out.clone(),
            }
        )
        return out

    def prefill_sink(self, sink, ref_latents, motion_latents, *args, **kwargs):
        self._dit.prefill_sink(sink, ref_latents, motion_latents, *args, **kwargs)
        n = sink.length
        self.prefills.append(
            {"ref": ref_latents.clone(), "length": n, "k": sink.k[:, :, :n].clone(), "v": sink.v[:, :, :n].clone()}
        )


def ring_k(cache, layer: int):
    """The whole K ring of one layer of one step cache, ``[B, ring, H, D]``."""
    return cache.k[layer]


def replay_loop(
    dit, inputs: dict, loop: dict, rolling: bool, seed_check: Callable[[str], None] | None = None
) -> tuple[dict, RecordingDiT]:
    """Run ``denoise_blocks`` on the reference's inputs; returns {stored key: our tensor} and the recorder."""
    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, StepCaches, denoise_blocks

    plan = LoopPlan(
        frames_per_clip=int(loop["frames_per_clip"]),
        num_clips=int(loop["num_clips"]),
        latent_hw=tuple(loop["latent_hw"]),
        sample_steps=int(loop["sample_steps"]),
        sample_shift=3.0,
        seed=int(loop["seed"]),
        rolling_sink=rolling,
    )
    caches = StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)))
    recorder = RecordingDiT(dit, caches)
    stored_noise = lambda plan, clip, device: inputs[f"noise.clip{clip}"][None].to(device)  # noqa: E731
    text = dit.encode_text(inputs["context"])
    out: dict[str, Any] = {}
    blocks_seen: dict[int, int] = {}
    for block in denoise_blocks(
        recorder,
        text,
        inputs["audio_emb"],
        inputs["ref_latents"],
        inputs["motion_latents"],
        plan,
        caches=caches,
        noise=stored_noise,
    ):
        b = blocks_seen[block.clip] = blocks_seen.get(block.clip, -1) + 1
        out[f"latent.c{block.clip}.b{b}"] = block.latents[0].clone()
        if block.last_in_clip:
            for step, cache in caches.by_step.items():
                for layer in range(dit.config.num_layers):
                    out[f"ring_k.c{block.clip}.s{step}.l{layer}"] = ring_k(cache, layer).clone()
    for n, p in enumerate(recorder.prefills):
        for layer in range(dit.config.num_layers):
            out[f"cond_k.p{n}.l{layer}"], out[f"cond_v.p{n}.l{layer}"] = p["k"][layer], p["v"][layer]
    for call in recorder.denoise_calls:
        clip, frame = divmod(call["current_start"] // plan.tokens_per_frame, plan.latents_per_clip)
        key = f"flow_pred.c{clip}.b{frame // 3}.s{call['step']}"
        out[key] = call["out"][0]
    return out, recorder


def check_calls(recorder: RecordingDiT, call_list: list[dict], inputs: dict, outputs: dict) -> list[str]:
    """The exact things: call order, step cache, positions, timesteps, sink-RoPE draws, inputs."""
    import torch

    problems = []
    want = [c for c in call_list if c["kind"] == "denoise"]
    if len(want) != len(recorder.denoise_calls):
        problems.append(f"{len(recorder.denoise_calls)} denoise calls, the reference made {len(want)}")
    for ours, ref in zip(recorder.denoise_calls, want):
        name = ref["output"]
        got = (ours["step"], ours["current_start"], ours["relative_dist"], float(ours["timestep"]))
        exp = (int(ref["step_cache"]) - 1, ref["current_start"], ref["relative_dist"], float(ref["timestep"]))
        if got[:3] != exp[:3] or abs(got[3] - exp[3]) > 1e-3:
            problems.append(f"call {ref['index']} ({name}): (step, current_start, relative_dist, t) {got} != {exp}")
        a, b = ref["audio_cols"]
        if not torch.equal(ours["audio"], inputs["audio_emb"][..., a:b]):
            problems.append(f"call {ref['index']} ({name}): audio is not columns {a}:{b}")
        if ref["step"] == 0:
            frames = ours["x"].shape[2]
            noise = inputs[f"noise.clip{ref['clip']}"][:, frames * ref["block"] : frames * (ref["block"] + 1)]
            if not torch.equal(ours["x"][0], noise):
                problems.append(f"call {ref['index']} ({name}): step 0 input is not the stored noise slice")
    prefills = sorted({c["prefill"] for c in call_list if c["kind"] == "sink"})
    if len(prefills) != len(recorder.prefills):
        problems.append(f"{len(recorder.prefills)} sink prefills, the reference made {len(prefills)}")
    for n, p in enumerate(recorder.prefills):
        ref = inputs["ref_latents"] if n == 0 else outputs["latent.c0.b0"][None, :, 0:1]
        if not torch.equal(p["ref"].to(ref.dtype), ref):
            problems.append(
                f"prefill {n}: the sink reference is not {'ref_latents' if n == 0 else 'latent.c0.b0[:, 0:1]'}"
            )
    return problems


# ----------------------------------------------------------------------------- the VAE
def replay_vae(ref: Path) -> dict:
    """encode, full decode and the engine's streaming decode (warm-up, then blocks) of the tiny VAE."""
    import torch

    from liveavatar.engines.diffusion.runtime.run import DECODER_WARMUP_LATENTS
    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, VAEConfig, build_vae

    state = load_tensors(ref / "vae_weights.safetensors")
    vae = build_vae(VAEConfig.from_state_dict(state, ref / "vae_weights.safetensors"))
    vae.load_state_dict(state, strict=True)
    x = load_tensors(ref / "vae_inputs.safetensors")
    mean, std = vae.latent_stats()
    blocks = [x[f"z.{i}"] for i in range(sum(k.startswith("z.") for k in x))]
    if blocks[0].shape[2] != DECODER_WARMUP_LATENTS:
        raise SystemExit(f"z.0 has {blocks[0].shape[2]} latents; the engine warms up on {DECODER_WARMUP_LATENTS}")
    out = {
        "encode": vae.encode(x["video"]),
        "decode_full": vae.decode(torch.cat(blocks, dim=2)),
        "scale_mean": mean.flatten(),
        "scale_inv_std": 1.0 / std.flatten(),
    }
    decoder = StreamingDecoder(vae)
    for i, z in enumerate(blocks):
        out[f"stream.{i}"] = decoder.decode_next(z)
    out["_stored_scale"] = (x["scale_mean"], x["scale_inv_std"])
    return out


# ----------------------------------------------------------------------------- the whole check
def run_loop_reference(ref: Path, verbose: bool = False, strict: bool = False) -> bool:
    import torch

    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, clip_noise
    from liveavatar.engines.diffusion.runtime.scheduler import EulerSampler

    info = json.loads((ref / "run_info.json").read_text())
    spec = json.loads((ref / "loop_inputs.json").read_text())
    loop = spec["loop"]
    inputs = load_tensors(ref / "loop_inputs.safetensors")
    rules = {name: Rule.from_json(r) for name, r in info["tolerance"].items()}
    dit = build_tiny_dit(info["tiny_config"], ref / "tiny_dit.safetensors", loop.get("motion_frames"))
    ok = True

    # the schedule and our own noise draw must be the stored ones exactly
    plan = LoopPlan(
        int(loop["frames_per_clip"]),
        int(loop["num_clips"]),
        tuple(loop["latent_hw"]),
        int(loop["sample_steps"]),
        3.0,
        int(loop["seed"]),
    )
    for clip in range(plan.num_clips):
        same = torch.equal(clip_noise(plan, clip, torch.device("cpu"))[0], inputs[f"noise.clip{clip}"])
        ok &= same
        print(
            f"noise.clip{clip}: our draw (seed {plan.seed} + {clip}) {'equals' if same else 'DIFFERS from'} the stored noise"
        )
    sampler = EulerSampler(plan.sample_steps, plan.sample_shift)
    first = load_tensors(ref / next(iter(spec["variants"].values()))["outputs"]["gpuln"])
    t_err = (torch.as_tensor(sampler.timesteps) - first["timesteps"]).abs().max().item()
    s_err = (torch.as_tensor(sampler.sigmas, dtype=torch.float32) - first["sigmas"]).abs().max().item()
    good = t_err <= 1e-4 and s_err <= 1e-7
    ok &= good
    print(f"schedule: timesteps max abs {t_err:.3e}, sigmas {s_err:.3e} {'ok' if good else 'FAIL'}")

    portable = None
    for name, variant in spec["variants"].items():
        ours, recorder = replay_loop(dit, inputs, loop, bool(variant["re_prefill_at_clip1"]))
        if portable is None:
            want = load_tensors(ref / variant["outputs"]["gpuln"])["flow_pred.c0.b0.s0"]
            err = (ours["flow_pred.c0.b0.s0"] - want).abs()
            portable = bool(err.max() > 0) and not strict
            if err.max() == 0:
                print(
                    "environment: the first denoise call is bit-identical to the gpuln reference: "
                    "the reference's rule applies"
                )
            else:
                rule = (
                    f"the portable rule (max abs {PORTABLE.max_abs:g}, {100 * PORTABLE.min_share:g} % within "
                    f"{PORTABLE.share_within:g})"
                    if portable
                    else "the reference's rule (--strict)"
                )
                print(
                    f"environment: the first denoise call differs from the gpuln reference by {err.max():.2e} "
                    f"({100 * (err > 0).float().mean():.1f} % of elements): this CPU's kernels round otherwise "
                    f"(or the model's numerics changed); applying {rule}"
                )
        problems = check_calls(recorder, variant["call_list"], inputs, ours)
        for p in problems:
            print(f"{name} {p}")
        ok &= not problems
        if not problems:
            print(
                f"{name}: {len(recorder.denoise_calls)} denoise calls and {len(recorder.prefills)} prefills in "
                "upstream's order, relative_dist draws equal"
            )
        for numerics, file in variant["outputs"].items():
            report = Report(f"{name}/{numerics}", PORTABLE if portable else rules[numerics])
            report.check(ours, load_tensors(ref / file))
            for line in report.lines(verbose):
                print(line)
            ok &= report.ok

    if (ref / "vae_output.safetensors").is_file():
        ours = replay_vae(ref)
        mean, inv_std = ours.pop("_stored_scale")
        scale_ok = torch.equal(ours.pop("scale_mean"), mean)
        inv_err = (ours.pop("scale_inv_std") - inv_std).abs().max().item()
        print(f"vae scale: mean {'equal' if scale_ok else 'DIFFERS'}, 1/std max abs {inv_err:.3e}")
        ok &= scale_ok and inv_err <= 1e-6
        report = Report("vae", rules["vae"])
        report.check(ours, load_tensors(ref / "vae_output.safetensors"))
        for key in sorted(report.rows):
            worst, share, good = report.rows[key]
            print(
                f"vae {key}: max abs {worst:.3e}, within {report.rule.share_within:g} {100 * share:.2f} % "
                f"{'ok' if good else 'FAIL'}"
            )
        print(*(f"vae {p}" for p in report.problems), sep="\n") if report.problems else None
        ok &= report.ok
    return ok
