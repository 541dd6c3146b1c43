"""Adapters for voice-agent frameworks (optional extras, imported only by their users):
``livekit`` (``liveavatar[livekit]``) and ``pipecat`` (``liveavatar[pipecat]``)."""
