"""Input checks: every rule of the user guide as a measurement with a clear finding.

``run_checks`` measures whichever inputs are given; ``gate`` is what `generate` calls before an
engine starts. The heavy parts (mediapipe, webrtcvad, scipy) load only inside the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from liveavatar.checks.findings import Finding, has_error
from liveavatar.errors import UserError

__all__ = ["Finding", "gate", "has_error", "run_checks"]


def run_checks(image: Path | None = None, audio: Path | None = None, prompt: str | None = None) -> list[Finding]:
    """All findings for the given inputs, in the order image, audio, prompt, consistency."""
    findings: list[Finding] = []
    if image is not None:
        from liveavatar.checks.image import check_image

        findings += check_image(Path(image))[0]
    stats = None
    if audio is not None:
        from liveavatar.checks.audio import check_audio

        audio_findings, stats = check_audio(Path(audio))
        findings += audio_findings
    if prompt is not None:
        from liveavatar.checks.prompt import check_prompt

        findings += check_prompt(prompt)
    if prompt and stats is not None:
        from liveavatar.checks.consistency import check_consistency

        findings += check_consistency(prompt, stats)
    return findings


def gate(image_path: Path | None, audio_path: Path | None, prompt: str | None, notify: Callable[[str], None]) -> None:
    """Run the checks before generation: ``notify`` once per warning (``warning: --flag: message [code]; fix``), UserError for the first error.

    The UserError's ``input`` is the flag (``--image``, ``--audio``, ``--prompt``), its message
    the finding's, its fix the finding's fix. Info findings are not reported here.
    """
    findings = run_checks(image_path, audio_path, prompt)
    for f in findings:
        if f.severity == "error":
            raise UserError(f.flag, f.message, f"{f.fix} (or pass --skip_checks)")
    for f in findings:
        if f.severity == "warning":
            notify(f"warning: {f.flag}: {f.message} [{f.code}]; {f.fix}")
