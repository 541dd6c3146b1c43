"""Test-only: run `liveavatar generate` and stop dead at a chosen point, for the crash tests.

``LIVEAVATAR_TEST_PAUSE=kind:n`` makes this process, at the n-th (1-based) occurrence of ``kind``,
create the file ``LIVEAVATAR_TEST_PAUSED`` and sleep, so the test can SIGKILL it right there:
  - ``dit:n``    the n-th DiT call (a step inside a block)
  - ``write:n``  just after the n-th block of frames went to the writer (between blocks)
  - ``record:n`` the n-th resume-record update, written to its temporary file but not yet renamed
Writer segments are cut at every clip (the tests use small clips) through the module constant.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _pause_at(kind: str):
    want = os.environ.get("LIVEAVATAR_TEST_PAUSE", "")
    if not want.startswith(kind + ":"):
        return lambda: None
    target, seen = int(want.split(":")[1]), [0]

    def tick() -> None:
        seen[0] += 1
        if seen[0] == target:
            Path(os.environ["LIVEAVATAR_TEST_PAUSED"]).write_text(str(os.getpid()))
            time.sleep(3600)

    return tick


def main() -> int:
    from liveavatar import resume
    from liveavatar.cli import main as cli_main
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.media.writer import VideoWriter

    resume.SEGMENT_MIN_FRAMES = 1
    dit_tick, write_tick, record_tick = _pause_at("dit"), _pause_at("write"), _pause_at("record")
    denoise, write, replace = CausalS2VDiT.denoise_block, VideoWriter.write, resume._replace

    def denoise_spy(self, *a, **k):
        dit_tick()
        return denoise(self, *a, **k)

    def write_spy(self, frames):
        write(self, frames)
        write_tick()

    def replace_spy(src, dst):
        record_tick()
        replace(src, dst)

    CausalS2VDiT.denoise_block, VideoWriter.write, resume._replace = denoise_spy, write_spy, replace_spy
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
