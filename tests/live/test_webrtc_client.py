"""The WebRTC transport with an aiortc client (no browser): offer/answer, the microphone from a wav,
the avatar's video and audio received in sync, the data channel's events, bad offers, lifetimes."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("fastapi")

from webrtc_helpers import StandinServer, call, speech_clip

from liveavatar.live.registry import SessionRegistry
from liveavatar.live.webrtc import WebRTCConfig
from support.webrtc_standin import mouth_opening, open_run

LEAD_S, SPEECH_S, TAIL_S = 0.8, 2.2, 1.6


def audio_loudness(audio: list) -> np.ndarray:
    """dBFS per received audio frame."""
    return np.array(
        [20 * np.log10(np.sqrt(np.mean((f.to_ndarray().astype(np.float64) / 32768.0) ** 2)) + 1e-9) for _, f in audio]
    )


def best_lag_ms(t_a: np.ndarray, a: np.ndarray, t_b: np.ndarray, b: np.ndarray, max_ms: int = 400) -> int:
    """The shift of ``b`` (ms, positive: b late) that best lines it up with ``a`` (cross-correlation on a 5 ms grid)."""
    grid = np.arange(max(t_a[0], t_b[0]) + 0.5, min(t_a[-1], t_b[-1]) - 0.5, 0.005)
    x = np.interp(grid, t_a, a)
    lags = range(-max_ms // 5, max_ms // 5 + 1)
    scores = [np.corrcoef(x, np.interp(grid + k * 0.005, t_b, b))[0, 1] for k in lags]
    return 5 * list(lags)[int(np.nanargmax(scores))]


@pytest.fixture
def standin_server():
    registry = SessionRegistry(max_sessions=16, idle_s=1.5)
    with StandinServer(registry, WebRTCConfig(connect_timeout_s=2.0, silent_timeout_s=1.5)) as server:
        yield server, registry


def test_speech_in_avatar_out_in_sync(standin_server, tmp_path):
    server, registry = standin_server
    run = open_run(registry)
    session = run.session
    wav = speech_clip(tmp_path / "clip.wav", LEAD_S, SPEECH_S, TAIL_S)
    got, _ = asyncio.run(call(server.url, run.id, wav, LEAD_S + SPEECH_S + TAIL_S + 0.8))
    assert got.status == 201 and got.location.startswith(f"/v1/sessions/{run.id}/webrtc/")
    assert session.speech_seconds_played > 0.8 * SPEECH_S  # the microphone reached the session
    assert len(got.video) > 25 * (SPEECH_S + TAIL_S)  # the timeline never stops, speech or not
    assert len(got.audio) > 50 * (SPEECH_S + TAIL_S)
    kinds = [e["type"] for _, e in got.events]
    assert "speech.started" in kinds and "playback.finished" in kinds, kinds
    started = next(e for _, e in got.events if e["type"] == "speech.started")
    finished_at, finished = next((t, e) for t, e in got.events if e["type"] == "playback.finished")
    assert finished["interrupted"] is False and finished["position_s"] > 0.8 * SPEECH_S
    assert 0 < started["server_latency_ms"] < 1000

    t_v = np.array([t for t, _ in got.video])
    mouth = np.array([mouth_opening(f.to_ndarray(format="rgb24")) for _, f in got.video])
    speaking = (t_v > t_v[0] + LEAD_S + 0.4) & (t_v < finished_at - 0.6)
    after = t_v > finished_at + 0.2
    assert mouth[speaking].std() > 0.05 and mouth[speaking].max() > 0.3  # it moves while the mic speaks
    assert after.sum() > 5 and mouth[after].max() < 0.1  # and rests after
    # on the sender's clock (RTP timestamps + sender reports), each sample at the middle of what it
    # measures: a stand-in frame shows the loudness of its own 40 ms, an audio frame holds 20 ms
    t_video = got.sender_times("video") + 0.5 / 25
    t_audio = got.sender_times("audio") + np.array([f.samples / f.sample_rate / 2 for _, f in got.audio])
    lag = best_lag_ms(t_audio, np.clip(audio_loudness(got.audio), -60, 0), t_video, mouth)
    assert abs(lag) <= 80, f"received mouth and audio are {lag} ms apart"


def test_bad_offers_get_one_clear_4xx_and_the_server_stays_up(standin_server, tmp_path):
    import httpx

    server, registry = standin_server
    registry.idle_s = 30.0  # the refused offers leave s2 without a client: it must stay for the next ones
    s2 = open_run(registry).id
    url = f"{server.url}/v1/sessions/{s2}/webrtc"
    sdp = {"content-type": "application/sdp"}
    r = httpx.post(url, content="hello", headers=sdp)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sdp"
    r = httpx.post(
        url, content="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", headers=sdp
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sdp"  # aiortc cannot use it
    assert httpx.post(url, content="v=0", headers={"content-type": "text/plain"}).status_code == 415
    assert httpx.post(f"{server.url}/v1/sessions/nope/webrtc", content="v=0", headers=sdp).status_code == 404

    async def video_only():
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient() as http:
            r = await http.post(url, content=pc.localDescription.sdp, headers=sdp)
        await pc.close()
        return r

    r = asyncio.run(video_only())
    assert (
        r.status_code == 400
        and r.json()["error"]["code"] == "no_audio"
        and "microphone" in r.json()["error"]["message"]
    )

    wav = speech_clip(tmp_path / "clip.wav", 0.2, 0.5, 0.2)

    s2b = open_run(registry).id

    async def two_offers():
        first, pc = await call(server.url, s2b, wav, 1.0, close=False)
        second, r = await call(server.url, s2b, wav, 0.1)
        await pc.close()
        return first, second, r

    first, second, r = asyncio.run(two_offers())
    assert first.status == 201 and len(first.video) > 0  # the refusals before did not break the server
    assert second.status == 409 and r.json()["error"]["code"] == "session_busy"
    assert httpx.get(f"{server.url}/docs").status_code in (200, 404)  # the server still answers


def test_session_closes_within_the_idle_timeout_of_its_peer(standin_server, tmp_path):
    import httpx

    server, registry = standin_server
    run = open_run(registry)
    session = run.session
    wav = speech_clip(tmp_path / "clip.wav", 0.2, 0.3, 0.2)
    _got, _ = asyncio.run(call(server.url, run.id, wav, 1.0))  # the client closes its peer connection
    left = time.monotonic()
    while not session.closed and time.monotonic() - left < 5:
        time.sleep(0.05)
    assert session.closed and time.monotonic() - left < registry.idle_s + 1.0, "the session outlived its peer"

    # a client that vanishes without a goodbye (its microphone stops, its peer connection stays)
    run = open_run(registry)
    session = run.session
    asyncio.run(call(server.url, run.id, wav, 0.7, close=False))  # its loop ends: nothing is sent any more
    quiet = time.monotonic() + 0.3  # when the 0.7 s wav has ended
    while not session.closed and time.monotonic() - quiet < 8:
        time.sleep(0.05)
    assert session.closed and time.monotonic() - quiet < 1.5 + registry.idle_s + 1.5, (
        "the session outlived a vanished peer"
    )

    # a client that never completes the connection: dropped after connect_timeout_s, then idle_s
    run = open_run(registry)
    session = run.session
    sent = time.monotonic()
    r = httpx.post(
        f"{server.url}/v1/sessions/{run.id}/webrtc", content=_offer_sdp(), headers={"content-type": "application/sdp"}
    )
    assert r.status_code == 201
    while not session.closed and time.monotonic() - sent < 8:
        time.sleep(0.05)
    assert session.closed and time.monotonic() - sent < 2.0 + registry.idle_s + 1.5


def test_delete_ends_the_connection(standin_server, tmp_path):
    import httpx

    server, registry = standin_server
    s5 = open_run(registry).id
    r = httpx.post(
        f"{server.url}/v1/sessions/{s5}/webrtc", content=_offer_sdp(), headers={"content-type": "application/sdp"}
    )
    assert r.status_code == 201 and r.headers["content-type"].startswith("application/sdp") and "m=video" in r.text
    assert httpx.delete(server.url + r.headers["location"]).status_code == 200
    assert httpx.delete(server.url + r.headers["location"]).status_code == 404
    r = httpx.post(
        f"{server.url}/v1/sessions/{s5}/webrtc", content=_offer_sdp(), headers={"content-type": "application/sdp"}
    )
    assert r.status_code == 201  # free again for the next client


def _offer_sdp() -> str:
    async def make():
        from aiortc import RTCPeerConnection
        from aiortc.mediastreams import AudioStreamTrack

        pc = RTCPeerConnection()
        pc.addTrack(AudioStreamTrack())
        pc.addTransceiver("video", direction="recvonly")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


def test_say_speaks_typed_text_or_says_what_to_install(standin_server, tmp_path, monkeypatch):
    import httpx

    from liveavatar.live import tts

    server, registry = standin_server
    s6 = open_run(registry).id
    url = f"{server.url}/v1/sessions/{s6}/say"
    assert httpx.post(url, json={"text": "hello"}).status_code == 409  # no peer to speak into yet
    wav = speech_clip(tmp_path / "quiet.wav", 0.2, 0.0, 60.0)  # the microphone stays silent

    async def talk():
        import asyncio as aio

        # piper starts, loads its voice and speaks: seconds on a busy machine
        def finished(c) -> bool:
            return any(e["type"] == "playback.finished" for _, e in c.events)

        task = aio.ensure_future(call(server.url, s6, wav, 60.0, until=finished))
        await aio.sleep(1.0)
        async with httpx.AsyncClient(timeout=60) as http:
            with monkeypatch.context() as m:
                m.setattr(tts, "available", lambda: False)
                missing = await http.post(url, json={"text": "hello"})
            bad = await http.post(url, json={"words": 1})
            said = await http.post(url, json={"text": "Hello there."}) if tts.available() else None
        return (await task)[0], missing, bad, said

    got, missing, bad, said = asyncio.run(talk())
    assert missing.status_code == 501 and "pip install 'liveavatar[tts]'" in missing.json()["error"]["message"]
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_text"
    if said is None:
        pytest.skip("the tts extra is not installed: only its absence was tested")
    assert said.status_code == 200 and 0.4 < said.json()["seconds"] < 3
    kinds = [e["type"] for _, e in got.events]
    assert "speech.started" in kinds and "playback.finished" in kinds, kinds
    assert max(mouth_opening(f.to_ndarray(format="rgb24")) for _, f in got.video) > 0.3


def test_clear_over_the_data_channel_interrupts_and_bad_controls_are_answered(standin_server, tmp_path):
    server, registry = standin_server
    run = open_run(registry)
    session = run.session
    wav = speech_clip(tmp_path / "clip.wav", 0.5, 2.2, 1.5)
    controls = ((0.3, "not json"), (0.4, '{"type": "dance"}'), (2.0, '{"type": "clear"}'))
    got, _ = asyncio.run(call(server.url, run.id, wav, 4.5, controls=controls))
    events = [e for _, e in got.events]
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 2 and all(e["code"] == "bad_message" for e in errors)
    finished = [e for e in events if e["type"] == "playback.finished"]
    assert finished and finished[0]["interrupted"] is True and 0.2 < finished[0]["position_s"] < 2.0
    cleared_at = next(t for t, e in got.events if e["type"] == "playback.finished")
    after = [
        mouth_opening(f.to_ndarray(format="rgb24")) for t, f in got.video if cleared_at + 0.1 < t < cleared_at + 0.6
    ]
    assert after and max(after) < 0.1  # the mouth closed at the barge-in (the mic speaks on: no new utterance yet)
    assert not session.closed  # the bad messages left the session usable
