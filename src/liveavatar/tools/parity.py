"""Parity of our code against an upstream reference folder (upstream-tiny or upstream-loop format).

Usage: ``python -m liveavatar.tools.parity REF_DIR [--tol 1e-4] [--verbose]``

A folder with ``loop_inputs.json`` is a generation-loop reference: it is replayed through the
engine's block loop, caches and streaming VAE decoder with the folder's own tolerance rule
(parity_loop.py). When its run_info.json names a kernel environment (``numerics_env``: CPU ISA
caps, thread count), the tool re-runs itself in that environment, because the rule holds there.

Otherwise (upstream-tiny format) it reads the config, cache sizes and RNG draws from run_info.json, the weights from tiny_dit.safetensors,
the inputs and the ordered ``call_list`` from tiny_inputs.json / tiny_inputs.safetensors, replays
every call with our model in fp32 on CPU and prints the max abs error per output. With
tiny_lora.safetensors it also merges the LoRA, compares the merged weights with
tiny_dit_lora_merged.safetensors and the outputs with tiny_output_lora_merged.safetensors.
Exit code 0 only if every error is <= tol.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from liveavatar.argtypes import number
from liveavatar.tools.parity_loop import build_tiny_dit
from liveavatar.tools.parity_loop import load_tensors as _load


def _block_slices(call: dict, inputs: dict, info: dict, common: dict) -> tuple[Any, Any]:
    """cond_states and audio_input of the call's block (F latent frames, 4F audio frames)."""
    frames = int(info.get("num_frame_per_block", 3))
    b = int(call.get("block", 0))
    cond = inputs.get(call.get("cond_states", "cond_latents"))
    if cond is not None:
        cond = cond[:, :, frames * b : frames * b + frames]
    audio = inputs[call.get("audio_input", "audio_emb")]
    per_block = 4 * frames
    return cond, audio[..., per_block * b : per_block * b + per_block]


def _rollout(call: dict, current_frame: int) -> tuple[int, str]:
    from liveavatar.engines.diffusion.model.dit import draw_relative_dist, sink_rollout_frames

    rd = call.get("relative_dist")
    if rd is None and call.get("python_random_seed") is not None:
        rd = draw_relative_dist(random.Random(int(call["python_random_seed"])))
    if "cond_rollout_frames" in call:
        n = int(call["cond_rollout_frames"])
        if rd is not None and sink_rollout_frames(current_frame, int(rd)) != n:
            return n, f" (note: relative_dist {rd} gives rollout {sink_rollout_frames(current_frame, int(rd))})"
        return n, ""
    if rd is None:
        raise SystemExit(f"call {call.get('name')}: no cond_rollout_frames, relative_dist or python_random_seed")
    return sink_rollout_frames(current_frame, int(rd)), ""


def replay(model, ref: Path, info: dict, spec: dict, inputs: dict) -> dict:
    """Run every call of the call_list; returns {output name: tensor}."""
    common = spec.get("calls", {}).get("common_kwargs(block b)", {})
    motion = info.get("motion_frames") or common.get("motion_frames")
    if motion is not None and tuple(motion) != tuple(model.config.motion_frames):
        raise SystemExit(f"motion_frames {motion} differ from the model's {model.config.motion_frames}")
    text = model.encode_text(inputs[spec.get("context_input", "context")])
    from liveavatar.engines.diffusion.runtime.caches import KVCache, new_caches

    caches: dict[str, Any] = {}
    sink = None
    outputs = {}
    for call in spec["call_list"]:
        cache_id = str(call.get("kv_cache", "0"))
        if sink is None:
            sink, _ = new_caches(model, 0, int(info["kv_cache_size"]), int(info["cond_cache_capacity"]))
        if cache_id not in caches:
            caches[cache_id] = KVCache.allocate(sink, int(info["kv_cache_size"]))
        x = inputs[call["x"]]
        if call["kind"] == "sink":
            model.prefill_sink(
                sink,
                inputs[call.get("ref_latents", "ref_latents")],
                inputs[call.get("motion_latents", "motion_latents")],
                text,
                current_start=int(call.get("current_start", 0)),
                block_frames=int(x.shape[-3]),
            )
            continue
        cond, audio = _block_slices(call, inputs, info, common)
        t = inputs[call.get("timestep", "timestep")] * float(call.get("t_scale", 1))
        tokens_per_frame = int(info.get("frame_seqlen") or (x.shape[-2] // 2) * (x.shape[-1] // 2))
        start = int(call["current_start"])
        n, note = _rollout(call, start // tokens_per_frame)
        out = model.denoise_block(caches[cache_id], x, t, text, audio, cond, start, sink_rope_offset=n)
        outputs[call["output"]] = (out[0] if x.dim() == 4 else out, note)
    return outputs


def _compare(outputs: dict, expected: dict, label: str, tol: float) -> bool:
    ok = True
    for name, (ours, note) in outputs.items():
        if name not in expected:
            print(f"{label}{name}: no expected tensor in the reference")
            ok = False
            continue
        err = (ours.float() - expected[name].float()).abs().max().item()
        good = err <= tol
        ok &= good
        print(f"{label}{name}: max abs err {err:.3e} {'ok' if good else 'FAIL'}{note}")
    return ok


def run(ref: Path, tol: float) -> bool:
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    info = json.loads((ref / "run_info.json").read_text())
    spec = json.loads((ref / "tiny_inputs.json").read_text())
    config_dict = info.get("tiny_config") or info.get("config")
    inputs = _load(ref / "tiny_inputs.safetensors")

    def fresh():
        return build_tiny_dit(config_dict, ref / "tiny_dit.safetensors", info.get("motion_frames"))

    ok = _compare(replay(fresh(), ref, info, spec, inputs), _load(ref / "tiny_output.safetensors"), "", tol)
    lora_file = ref / "tiny_lora.safetensors"
    if lora_file.is_file():
        lora = info.get("lora", {})
        model = fresh()
        result = merge_lora(model, lora_file, rank=lora.get("r"), alpha=lora.get("alpha"))
        print(f"lora: merged {result.num_merged} modules, overwrote {result.num_overwritten} parameters")
        merged_ref = ref / "tiny_dit_lora_merged.safetensors"
        if merged_ref.is_file():
            want = _load(merged_ref)
            sd = model.state_dict()
            err = max((sd[k].float() - v.float()).abs().max().item() for k, v in want.items())
            good = err <= tol and set(want) == set(sd)
            ok &= good
            print(f"lora merged weights: max abs err {err:.3e} {'ok' if good else 'FAIL'}")
        out_ref = ref / "tiny_output_lora_merged.safetensors"
        if out_ref.is_file():
            ok &= _compare(replay(model, ref, info, spec, inputs), _load(out_ref), "lora ", tol)
    return ok


def _environment_ok(ref: Path, argv: list[str]) -> bool:
    """In the reference's kernel environment already, or re-run there (the call does not return)."""
    env_spec = json.loads((ref / "run_info.json").read_text()).get("numerics_env")
    if not env_spec:
        return True
    wanted = {k: str(v) for k, v in env_spec.items() if k.isupper()}
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        import torch

        torch.set_num_threads(int(env_spec.get("torch_num_threads", wanted.get("OMP_NUM_THREADS", 1))))
        capability = torch.backends.cpu.get_cpu_capability()
        want_cap = env_spec.get("cpu_capability")
        print(
            f"kernel environment: {' '.join(f'{k}={v}' for k, v in wanted.items())}, "
            f"{torch.get_num_threads()} threads, CPU capability {capability}"
        )
        if want_cap and capability != want_cap:
            print(
                f"error: this CPU runs torch at {capability}, the reference's rule holds at {want_cap}", file=sys.stderr
            )
            return False
        return True
    if "torch" in sys.modules:  # the ISA caps are read once, when torch loads
        print(
            f"error: set {' '.join(f'{k}={v}' for k, v in wanted.items())} before torch is imported "
            "(or run the tool as its own process)",
            file=sys.stderr,
        )
        return False
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "liveavatar.tools.parity", *argv], {**os.environ, **wanted})
    return False  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m liveavatar.tools.parity", description=__doc__.splitlines()[0])
    parser.add_argument("ref_dir", type=Path)
    parser.add_argument("--tol", type=number, default=1e-4, help="max abs error (upstream-tiny folders only)")
    parser.add_argument("--verbose", action="store_true", help="one line per stored tensor (loop folders)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="loop folders: the reference's own rule even where this CPU rounds otherwise",
    )
    args = parser.parse_args(argv)
    if not (args.ref_dir / "run_info.json").is_file():
        print(
            f"error: {args.ref_dir}: no run_info.json; pass an upstream-tiny or upstream-loop reference folder",
            file=sys.stderr,
        )
        return 2
    if (args.ref_dir / "loop_inputs.json").is_file():
        from liveavatar.tools.parity_loop import run_loop_reference

        if not _environment_ok(args.ref_dir, argv):
            return 2
        ok = run_loop_reference(args.ref_dir, args.verbose, args.strict)
    else:
        ok = run(args.ref_dir, args.tol)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
