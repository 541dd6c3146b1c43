"""Load, when the server starts, what every job would otherwise load on first use.

The checks and the preview engine import their heavy libraries inside the functions that use them
(so `import liveavatar` stays light); a server would pay for those imports (about 2 s on a 2-core
CPU) in its first job's time to the first frame. Importing them with the engine, before
``/healthz`` says loaded, makes the first job as quick as the later ones. Nothing here changes
what a job computes: only modules are loaded.
"""

from __future__ import annotations

import importlib

# what a job's checks and the preview engine import on first use (the diffusion engine's own
# imports happen when it is built)
MODULES = (
    "av",
    "cv2",
    "soundfile",
    "webrtcvad",
    "pocketsphinx",
    "scipy.ndimage",
    "scipy.signal",
    "scipy.spatial",
    "liveavatar.pipeline",
    "liveavatar.checks.audio",
    "liveavatar.checks.consistency",
    "liveavatar.checks.face",
    "liveavatar.checks.image",
    "liveavatar.checks.prompt",
    "liveavatar.checks.speech",
    "liveavatar.engines.preview.engine",
    "liveavatar.engines.preview.face",
    "liveavatar.engines.preview.render",
    "liveavatar.engines.preview.speech",
    "liveavatar.engines.preview.phonemes",
    "liveavatar.engines.preview.motion",
)


def warm_up() -> list[str]:
    """Import MODULES and mediapipe; returns the names that could not be imported (left to the job)."""
    from liveavatar.media.faces import mediapipe_quietly

    missing = []
    try:
        with mediapipe_quietly():  # its native start-up chatter held back, as when a job imports it
            pass
    except ImportError:
        missing.append("mediapipe")
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing
