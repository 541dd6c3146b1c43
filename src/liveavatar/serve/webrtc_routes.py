"""`POST /v1/sessions/{id}/webrtc` (an SDP offer in, 201 + the SDP answer out, WHIP style) and
`DELETE /v1/sessions/{id}/webrtc/{peer}`. Imported only when the `webrtc` extra is installed."""

from __future__ import annotations

from typing import Protocol

from fastapi import Request
from fastapi.responses import Response

from liveavatar.live.webrtc import MAX_SDP_BYTES, OfferRejected, Peer, WebRTCConfig
from liveavatar.live.webrtc_media import Run
from liveavatar.serve.uploads import Rejected

INSTALL_WEBRTC = "live sessions over WebRTC need the webrtc extra: pip install 'liveavatar[webrtc]' (aiortc), then restart the server"


def webrtc_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiortc") is not None


class Runs(Protocol):
    """What the transport needs of the server's session registry (``live.registry.SessionRegistry``)."""

    def get(self, run_id: str) -> Run | None: ...


class WebRTCRoutes:
    """The live peers by session id and the TTS process: what the server closes at shutdown."""

    def __init__(self) -> None:
        from liveavatar.live import tts

        self.peers: dict[str, Peer] = {}
        self.speaker = tts.Speaker()

    async def close(self) -> None:
        for peer in list(self.peers.values()):
            await peer.close()
        self.speaker.close()


def add_routes(app, sessions: Runs, config: WebRTCConfig) -> WebRTCRoutes:
    """The WebRTC routes (offer, hang up, config, say) over the server's session registry."""
    from liveavatar.live import tts

    routes = WebRTCRoutes()
    peers, speaker = routes.peers, routes.speaker

    def closed(peer: Peer) -> None:
        for sid, p in list(peers.items()):
            if p is peer:
                del peers[sid]

    @app.post("/v1/sessions/{session_id}/webrtc", status_code=201)
    async def offer(session_id: str, request: Request):
        if not webrtc_available():
            raise Rejected(501, "webrtc_not_installed", INSTALL_WEBRTC, "session_id")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/sdp":
            raise Rejected(
                415,
                "unsupported_media_type",
                f"the offer must be sent as application/sdp, not {kind or 'nothing'!r}",
                "body",
            )
        body = await request.body()
        if len(body) > MAX_SDP_BYTES:
            raise Rejected(413, "request_too_large", f"an SDP offer is at most {MAX_SDP_BYTES} bytes", "body")
        run = sessions.get(session_id)
        if run is None:
            raise Rejected(404, "not_found", f"no live session with id {session_id!r}", "session_id")
        if session_id in peers or run.view().get("connected"):
            raise Rejected(
                409,
                "session_busy",
                f"session {session_id} already has a client; DELETE its WebRTC resource "
                "(or close its WebSocket) first, or open another session",
                "session_id",
            )
        peer = Peer(run, config, closed)
        peers[session_id] = peer
        try:
            answer = await peer.answer(body.decode("utf-8", errors="replace"))
        except OfferRejected as exc:
            await peer.close()
            raise Rejected(400, exc.code, exc.message, "body") from None
        except BaseException:
            await peer.close()
            raise
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/v1/sessions/{session_id}/webrtc/{peer.id}"},
        )

    @app.delete("/v1/sessions/{session_id}/webrtc/{peer_id}")
    async def hang_up(session_id: str, peer_id: str):
        peer = peers.get(session_id)
        if peer is None or peer.id != peer_id:
            raise Rejected(404, "not_found", f"no WebRTC connection {peer_id!r} on session {session_id!r}", "peer_id")
        await peer.close()
        return {"id": peer_id, "object": "session.webrtc", "deleted": True}

    @app.get("/v1/webrtc")
    async def webrtc_config():
        """What the page needs before its offer: the ICE servers, and whether "say" can speak."""
        if not webrtc_available():
            raise Rejected(501, "webrtc_not_installed", INSTALL_WEBRTC)
        has_tts = tts.available()
        return {
            "ice_servers": list(config.ice_servers),
            "tts": has_tts,
            "tts_hint": None if has_tts else tts.INSTALL_HINT,
        }

    @app.post("/v1/sessions/{session_id}/say")
    async def say(session_id: str, request: Request):
        """Speak ``{"text": ...}`` (piper, in its own process) into the session's WebRTC peer."""
        from starlette.concurrency import run_in_threadpool

        peer = peers.get(session_id)
        if peer is None:
            raise Rejected(
                409,
                "no_peer",
                f"session {session_id!r} has no WebRTC connection to speak into; Start it first",
                "session_id",
            )
        try:
            text = (await request.json()).get("text")
        except (ValueError, AttributeError):
            text = None
        if not isinstance(text, str) or not text.strip() or len(text) > tts.MAX_TEXT:
            raise Rejected(
                400, "invalid_text", f'send JSON {{"text": "..."}} with 1 to {tts.MAX_TEXT} characters', "text"
            )
        if not tts.available():  # after the body's own check: a bad request is a 400 either way
            raise Rejected(501, "tts_not_installed", tts.INSTALL_HINT, "text")
        speech = await run_in_threadpool(speaker.say, text.strip(), peer.session.sample_rate)
        peer.run.push_audio(speech)
        peer.run.end_of_speech()
        return {"id": session_id, "object": "session.say", "seconds": round(len(speech) / peer.session.sample_rate, 3)}

    return routes
