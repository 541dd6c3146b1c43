"""Live sessions: speech pushed as it is spoken, frames made as they can be (one timeline per session).

``session.py`` gives what every engine's session shares (the timeline, the speech queue, barge-in,
events; defined in engines/session.py); each engine supplies only a BlockMaker through its
``open_session``. Transports (WebSocket, WebRTC, LiveKit, Pipecat) move audio in and blocks out.
"""
