"""`POST /v1/sessions/{id}/webrtc` (an SDP offer in, 201 + the SDP answer out, WHIP style) and
`DELETE /v1/sessions/{id}/webrtc/{peer}`. Imported only when the `webrtc` extra is installed."""

from __future__ import annotations

from typing import Protocol

from fastapi import Request
from fastapi.responses import Response

from liveavatar.engines.base import LiveSession
from liveavatar.live.webrtc import MAX_SDP_BYTES, OfferRejected, Peer, WebRTCConfig
from liveavatar.serve.uploads import Rejected


class SessionSource(Protocol):
    """What the transport needs of the server's session registry."""

    def live_session(self, session_id: str) -> LiveSession | None: ...

    def client_attached(self, session_id: str) -> bool:
        """True when no other client (WebSocket or WebRTC) holds the session; it is then held."""
        ...

    def client_detached(self, session_id: str) -> None:
        """The client left: the session's idle timeout starts."""
        ...


def add_routes(app, sessions: SessionSource, config: WebRTCConfig) -> dict[str, Peer]:
    """The two routes; returns the live peers by session id (the server closes them at shutdown)."""
    peers: dict[str, Peer] = {}

    def closed(peer: Peer) -> None:
        for sid, p in list(peers.items()):
            if p is peer:
                del peers[sid]
                sessions.client_detached(sid)

    @app.post("/v1/sessions/{session_id}/webrtc", status_code=201)
    async def offer(session_id: str, request: Request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/sdp":
            raise Rejected(415, "unsupported_media_type", f"the offer must be sent as application/sdp, not {kind or 'nothing'!r}", "body")
        body = await request.body()
        if len(body) > MAX_SDP_BYTES:
            raise Rejected(413, "request_too_large", f"an SDP offer is at most {MAX_SDP_BYTES} bytes", "body")
        session = sessions.live_session(session_id)
        if session is None:
            raise Rejected(404, "not_found", f"no session with id {session_id!r}", "session_id")
        if not sessions.client_attached(session_id):
            raise Rejected(409, "session_busy", f"session {session_id} already has a client; DELETE its WebRTC resource "
                                                "(or close its WebSocket) first, or open another session", "session_id")
        peer = Peer(session, config, closed)
        peers[session_id] = peer
        try:
            answer = await peer.answer(body.decode("utf-8", errors="replace"))
        except OfferRejected as exc:
            await peer.close()
            raise Rejected(400, exc.code, exc.message, "body") from None
        except BaseException:
            await peer.close()
            raise
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/v1/sessions/{session_id}/webrtc/{peer.id}"})

    @app.delete("/v1/sessions/{session_id}/webrtc/{peer_id}")
    async def hang_up(session_id: str, peer_id: str):
        peer = peers.get(session_id)
        if peer is None or peer.id != peer_id:
            raise Rejected(404, "not_found", f"no WebRTC connection {peer_id!r} on session {session_id!r}", "peer_id")
        await peer.close()
        return {"id": peer_id, "object": "session.webrtc", "deleted": True}

    return peers
