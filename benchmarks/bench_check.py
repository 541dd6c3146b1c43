"""Time `liveavatar check` on a 512x512 portrait, 30 s of speech and a 144-word prompt.

Run: .venv/bin/python benchmarks/bench_check.py
Prints the first call in this process (imports and model loads included) and the median of the
next runs, per input and in all. Target (issue 9): <= 3 s in all.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "checks"))

from checks_corpus import GOOD_PROMPT, astronaut, clean_speech, save_image, write_wav  # noqa: E402


def main() -> None:
    from liveavatar.checks import run_checks

    d = Path(tempfile.mkdtemp())
    image = save_image(d / "portrait.png", astronaut())
    x = clean_speech()
    audio = write_wav(d / "speech.wav", np.tile(x, int(np.ceil(30 * 16_000 / len(x))))[: 30 * 16_000])
    cases = {
        "image": dict(image=image),
        "audio": dict(audio=audio),
        "prompt": dict(prompt=GOOD_PROMPT),
        "all": dict(image=image, audio=audio, prompt=GOOD_PROMPT),
    }
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()} python {platform.python_version()}"
    )
    t = time.perf_counter()
    run_checks(image, audio, GOOD_PROMPT)
    print(f"first call (imports + model loads), all inputs: {time.perf_counter() - t:.2f} s")
    for name, kw in cases.items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            findings = run_checks(**kw)
            times.append(time.perf_counter() - t)
        print(f"{name:7s} median {statistics.median(times):.3f} s  (findings: {[f.code for f in findings]})")


if __name__ == "__main__":
    main()
