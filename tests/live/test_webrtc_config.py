"""--ice_servers and the offer checks, without a network: what a deployment configures reaches the
page, and what cannot work is refused with one line that says what to send instead."""

from __future__ import annotations

import pytest

from liveavatar.live.webrtc import OfferRejected, WebRTCConfig, check_offer, parse_ice_servers

TURN = (
    '[{"urls": "turn:turn.example:3478", "username": "u", "credential": "p"}, {"urls": ["stun:a:3478", "stun:b:3478"]}]'
)


def test_ice_servers_parse_as_the_browser_takes_them():
    servers = parse_ice_servers(TURN)
    assert servers[0] == {"urls": "turn:turn.example:3478", "username": "u", "credential": "p"}
    assert servers[1]["urls"] == ["stun:a:3478", "stun:b:3478"]
    for bad, says in (
        ("not json", "not JSON"),
        ('{"urls": "stun:a"}', "expected a list"),
        ('[{"url": "stun:a"}]', "expected a list"),
        ('[{"urls": "stun:a", "password": "x"}]', "unknown keys ['password']"),
    ):
        with pytest.raises(ValueError, match=r".*" + says.replace("[", r"\[").replace("]", r"\]")):
            parse_ice_servers(bad)


def test_serve_refuses_bad_ice_servers_in_one_line(capsys):
    from liveavatar.cli import main

    assert main(["serve", "--engine", "preview", "--ice_servers", '[{"url": 1}]']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ice_servers:")


def test_the_page_gets_the_configured_ice_servers():
    pytest.importorskip("fastapi")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from liveavatar.serve import webrtc_routes

    app = FastAPI()
    webrtc_routes.add_routes(app, {}, WebRTCConfig(ice_servers=parse_ice_servers(TURN)))
    body = TestClient(app).get("/v1/webrtc").json()
    assert body["ice_servers"][0]["urls"] == "turn:turn.example:3478"
    assert isinstance(body["tts"], bool) and (body["tts"] or "pip install 'liveavatar[tts]'" in body["tts_hint"])


@pytest.mark.parametrize(
    "sdp, code",
    [
        ("", "invalid_sdp"),
        ("hello", "invalid_sdp"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "invalid_sdp"),  # no media at all
        ("v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n", "no_audio"),
        (
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "no_audio",
        ),
        ("v=0\r\ns=-\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n", "no_audio"),  # port 0: rejected section
    ],
)
def test_offers_that_cannot_work_are_refused(sdp, code):
    with pytest.raises(OfferRejected) as info:
        check_offer(sdp)
    assert info.value.code == code and "\n" not in info.value.message


def test_an_offer_that_sends_audio_passes_the_check():
    check_offer(
        "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n"
    )
