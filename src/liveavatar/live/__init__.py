"""Live sessions: speech pushed as it is spoken, frames made as they can be (one timeline per session).

``session.py`` gives what every engine's session shares (the timeline, the speech queue, barge-in,
events; defined in engines/session.py so that engines never import this package); each engine
supplies only a BlockMaker through its ``open_session``. Transports (WebSocket; WebRTC:
``webrtc.py`` signalling, ``webrtc_media.py`` tracks, ``vad.py`` utterance ends; LiveKit, Pipecat)
move audio in and blocks out. Nothing heavy is imported here.
"""
