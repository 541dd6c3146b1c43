"""The repository's sample inputs (a portrait and a speech clip) for demos and the web UI."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
