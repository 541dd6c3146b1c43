"""liveavatar: streaming, audio-driven talking-avatar video generation (Live Avatar)."""

__version__ = "0.1.0"
