"""Input checks: every rule of the user guide as a measurement with a clear finding.

``run_checks`` reads and measures whichever input files are given (`liveavatar check`); ``gate`` is
what `generate` calls before an engine starts, on the inputs the pipeline already decoded. The heavy parts (mediapipe, webrtcvad, scipy) load only inside the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from liveavatar.checks.findings import Finding, has_error
from liveavatar.errors import UserError

if TYPE_CHECKING:
    from liveavatar.engines.base import Inputs

__all__ = ["Finding", "check_decoded", "gate", "has_error", "run_checks"]


def run_checks(image: Path | None = None, audio: Path | None = None, prompt: str | None = None) -> list[Finding]:
    """All findings for the given input files, in the order image, audio, prompt, consistency."""
    findings: list[Finding] = []
    if image is not None:
        from liveavatar.checks.image import check_image

        findings += check_image(Path(image))[0]
    stats = None
    if audio is not None:
        from liveavatar.checks.audio import check_audio

        audio_findings, stats = check_audio(Path(audio))
        findings += audio_findings
    return findings + _text_findings(prompt, stats)


def _text_findings(prompt: str | None, stats) -> list[Finding]:
    findings: list[Finding] = []
    if prompt is not None:
        from liveavatar.checks.prompt import check_prompt

        findings += check_prompt(prompt)
    if prompt and stats is not None:
        from liveavatar.checks.consistency import check_consistency

        findings += check_consistency(prompt, stats)
    return findings


def check_decoded(inputs: Inputs) -> list[Finding]:
    """All findings for inputs already decoded by the pipeline (no file is decoded again)."""
    from liveavatar.checks.audio import audio_findings
    from liveavatar.checks.image import image_findings

    findings = image_findings(inputs.image, inputs.image_path)[0]
    found, stats = audio_findings(inputs.audio, inputs.audio_path)
    return findings + found + _text_findings(inputs.prompt, stats)


def gate(inputs: Inputs, notify: Callable[[str], None]) -> None:
    """Run the checks before generation: ``notify`` once per warning (``warning: --flag: message [code]; fix``), UserError for the first error.

    The UserError's ``input`` is the flag (``--image``, ``--audio``, ``--prompt``), its message
    the finding's, its fix the finding's fix. Info findings are not reported here.
    """
    findings = check_decoded(inputs)
    for f in findings:
        if f.severity == "error":
            raise UserError(f.flag, f.message, f"{f.fix} (or pass --skip_checks)")
    for f in findings:
        if f.severity == "warning":
            notify(f"warning: {f.flag}: {f.message} [{f.code}]; {f.fix}")
