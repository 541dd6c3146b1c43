"""What a memory-mode change does to a running engine besides the caches (the ladder converts those)."""

from __future__ import annotations


def step_down(engine, old, new, frames) -> str:
    """Apply the differences between planner modes `old` and `new` to `engine` in place; describe them.

    `frames` is the engine's BlockFrames, whose decoder a tiled one replaces (taking over its state).
    """
    m = engine.models
    done: list[str] = [weights_for(m.dit, new)]
    if not new.text_encoder_on_gpu and not engine.text_on_cpu:
        m.text.model.to("cpu")  # already encoded; off the GPU for good
        engine.text_on_cpu = True
        done.append("text encoder moved to the CPU")
    if new.decode_tiles > old.decode_tiles:
        from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder

        old_decoder = frames.decoder
        frames.decoder = TiledStreamingDecoder(
            m.vae,
            new.decode_tiles,
            latents_per_pass=old_decoder.latents_per_pass,
            compile=engine.compile_decoder,
            state_from=old_decoder,
        )
        done.append(f"decode in {new.decode_tiles} spatial tiles")
    return "; ".join(d for d in done if d)


def weights_for(dit, new) -> str:
    """Quantise `dit`'s linears in place when mode `new` wants fp8 weights; say so ("" when nothing changed).

    All a DiT worker of a multi-GPU run has to change besides its caches."""
    if new.weights != "fp8" or getattr(dit, "fp8", False):
        return ""
    from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8

    quantize_linears_fp8(dit)
    dit.fp8 = True
    return "DiT linears now fp8"
