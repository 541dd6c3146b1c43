"""Peak memory and time of the audio checks against the length of the speech (issue 13).

Run: .venv/bin/python benchmarks/bench_check_memory.py [seconds ...]   (default: 60 600)
Each length runs in a fresh process (peak RSS is per process): the bundled sample speech is
tiled to that length, written as a 16 kHz WAV, and `check_audio` reads and measures it. Prints
the RSS before (imports done) and at the peak, MB per minute of audio, and seconds.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys, time
from pathlib import Path
import scipy.signal, webrtcvad  # imports are not the measure
from liveavatar.checks.audio import check_audio
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
check_audio(Path(sys.argv[1]))
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t)
"""


def main() -> None:
    import numpy as np
    import soundfile as sf

    lengths = [int(a) for a in sys.argv[1:]] or [60, 600]
    x, sr = sf.read(str(REPO / "samples" / "speech.wav"), dtype="float32")
    x = np.concatenate([x, np.zeros(sr // 3, np.float32)])
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}")
    print("seconds of audio | RSS before MB | peak RSS MB | growth MB per minute of audio | check s | s per minute")
    with tempfile.TemporaryDirectory() as d:
        for seconds in lengths:
            path = Path(d) / f"speech{seconds}.wav"
            sf.write(str(path), np.tile(x, seconds * sr // len(x) + 1)[: seconds * sr], sr, subtype="PCM_16")
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
            before, peak, took = (float(v) for v in out.stdout.split())
            print(
                f"{seconds} | {before:.0f} | {peak:.0f} | {(peak - before) / seconds * 60:.1f} | {took:.1f} | {took / seconds * 60:.2f}"
            )


if __name__ == "__main__":
    main()
