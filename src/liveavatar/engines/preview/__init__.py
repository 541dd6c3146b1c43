"""The preview engine: animate the portrait from the audio on any CPU, nothing to download.

Face landmarks (MediaPipe) + timed phonemes (pocketsphinx) -> per-frame mouth, blink and head
tracks -> a smooth mesh warp of the portrait with a painted mouth interior. Heavy libraries are
imported inside the submodules that need them, when ``generate`` runs.
"""

from __future__ import annotations

from liveavatar.engines.preview.engine import PreviewEngine

__all__ = ["PreviewEngine"]
