"""Live sessions over the wire: /v1/sessions and its WebSocket, on the preview engine, with the
project's own client streaming samples/speech.wav in 20 ms chunks in real time."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
from live_helpers import PORTRAIT, SR, decode, mouth_openings, new_session, speech_pcm, talk, wait_ready

from liveavatar.engines.preview import PreviewEngine
from liveavatar.live.client import LiveClient, Received, SessionRefused, collect
from liveavatar.serve.settings import LiveSettings
from support import preview_quality as Q

AAC_FRAME = 1024


@pytest.fixture
def preview_server(start_server):
    def start(**fields):
        server = start_server(PreviewEngine(), **fields)
        wait_ready(server)
        return server

    return start


@pytest.fixture
def rendered_mouth(monkeypatch) -> dict:
    """timeline frame -> the mouth opening the preview engine rendered it with (recorded in-process)."""
    from liveavatar.engines.preview.live import PreviewBlockMaker

    mouth: dict[int, float] = {}
    make = PreviewBlockMaker.make

    def recording(self, audio, speech, start_frame):
        frames = make(self, audio, speech, start_frame)
        mouth.update({start_frame + j: float(v) for j, v in enumerate(self.last_open)})
        return frames

    monkeypatch.setattr(PreviewBlockMaker, "make", recording)
    return mouth


def per_file_frame(mouth: dict, received: Received, count: int) -> np.ndarray:
    origin = round(received.of("session.started")[0]["timeline_s"] * 25)
    return np.array([mouth[origin + i] for i in range(count)])


def speech_start_in_file(received: Received) -> float:
    started = received.of("session.started")[0]
    return received.of("speech.started")[0]["at_s"] - started["timeline_s"]


@pytest.mark.slow  # 13 s of speech in real time, then FaceMesh on every frame: ~35 s on 2 cores
def test_speech_streamed_in_real_time_comes_back_as_continuous_video_with_that_speech(preview_server, rendered_mouth):
    server = preview_server()
    pcm = speech_pcm()
    info = new_session(server)
    received, _ = asyncio.run(talk(server, info["id"], pcm))
    frames, audio, times = decode(received.data)

    # one continuous 25 fps video from the file's time 0, as long as the session ran for the client
    assert np.allclose(np.diff(times), 1 / 25) and times[0] == 0
    assert len(frames) >= (0.6 + len(pcm) / SR) * 25
    # the audio track is the speech sent, where the server says it started, within one AAC frame
    start = round(speech_start_in_file(received) * SR)
    speech = pcm.astype(np.float32) / 32768
    window = audio[max(0, start - 4 * AAC_FRAME) : start + len(speech) + 4 * AAC_FRAME]
    corr = np.correlate(window[: len(speech) + 8 * AAC_FRAME], speech[: 3 * SR], mode="valid")
    found = max(0, start - 4 * AAC_FRAME) + int(np.argmax(corr))
    assert abs(found - start) <= AAC_FRAME
    back = audio[found : found + len(speech)]
    assert np.corrcoef(back, speech[: len(back)])[0, 1] > 0.95
    assert np.sqrt(np.mean(audio[: max(0, start - AAC_FRAME)] ** 2)) < 1e-3  # listening: silence
    finished = received.of("playback.finished")
    assert finished[0]["interrupted"] is False and finished[0]["position_s"] == pytest.approx(len(pcm) / SR, abs=0.001)

    # the mouth seen in the received frames (FaceMesh) follows the received speech's loudness: the
    # frames and the audio arrive in step
    opening = mouth_openings(frames)
    loud = Q.loudness_envelope(audio[: len(frames) * SR // 25], SR, len(frames))
    first = int(start / SR * 25)
    _, lag, best = Q.lagged_correlation(opening[first:], loud[first:], max_lag=3)
    assert best > 0.5 and abs(lag) <= 1, f"mouth vs loudness r={best:.2f} at lag {lag}"
    # the engine rendered a closed mouth while listening and in the speech's pauses
    shown = per_file_frame(rendered_mouth, received, len(frames))
    assert not shown[:first].any()
    pauses = Q.pause_frames(audio[: len(frames) * SR // 25], SR, len(frames))
    pauses[:first] = False
    assert pauses.sum() >= 5 and np.mean(shown[pauses] < 0.05) > 0.8


def test_clear_stops_the_mouth_and_reports_the_interrupted_utterance(preview_server, rendered_mouth):
    server = preview_server()
    info = new_session(server)
    received, _ = asyncio.run(talk(server, info["id"], speech_pcm(4.0), lead_s=1.0, clear_after_s=2.0, tail_s=0.8))
    frames, audio, _ = decode(received.data)
    finished = received.of("playback.finished")
    assert len(finished) == 1 and finished[0]["interrupted"] is True
    played = finished[0]["position_s"]
    assert 1.0 < played <= 2.0  # no more than what was sent before the clear
    start = speech_start_in_file(received)
    stop = start + played  # where the speech stopped, in the file
    after = int((stop + 0.2) * 25)  # within 200 ms of video time ...
    assert after + 10 <= len(frames)
    assert np.sqrt(np.mean(audio[int((stop + 0.2) * SR) :] ** 2)) < 1e-3  # ... the audio is silent
    shown = per_file_frame(rendered_mouth, received, len(frames))
    assert shown[int(start * 25) : int(stop * 25)].max() > 0.3  # it spoke ...
    assert not shown[after:].any()  # ... and the mouth is closed in every frame from there on


def test_two_sessions_at_once(preview_server):
    server = preview_server()
    a, b = new_session(server), new_session(server, base_seed=7)

    async def both():
        return await asyncio.gather(talk(server, a["id"], speech_pcm(1.5)), talk(server, b["id"], speech_pcm(1.5)))

    for received, _ in asyncio.run(both()):
        frames, audio, _ = decode(received.data)
        assert len(frames) >= 2.0 * 25 and received.of("playback.finished")[0]["interrupted"] is False
        assert len(audio) >= 2.0 * SR
    assert httpx.get(f"{server.url}/v1/sessions").json()["data"] == []  # both closed by their clients


def test_reconnect_after_a_dropped_socket_continues_the_same_session(preview_server):
    server = preview_server()
    info = new_session(server)
    first, _ = asyncio.run(talk(server, info["id"], speech_pcm(1.0), close=False))
    state = httpx.get(f"{server.url}/v1/sessions/{info['id']}").json()
    assert state["state"] != "closed" and state["speech_seconds_played"] == pytest.approx(1.0, abs=0.01)
    second, _ = asyncio.run(talk(server, info["id"], speech_pcm(1.0)))
    t1, t2 = first.of("session.started")[0]["timeline_s"], second.of("session.started")[0]["timeline_s"]
    assert t2 > t1 + 1.5  # the same timeline, further on
    assert second.of("speech.started")[0]["at_s"] > first.of("speech.started")[0]["at_s"] + 1.0
    frames, _, times = decode(second.data)  # a new file of its own, from its time 0
    assert times[0] == 0 and len(frames) >= 1.5 * 25


def test_malformed_messages_get_an_error_and_the_session_goes_on(preview_server):
    server = preview_server()
    info = new_session(server)

    async def script():
        received = Received()
        async with LiveClient.connect(server.url, info["id"]) as live:
            reader = asyncio.create_task(collect(live, received))
            await live.socket.send(b"\x01\x02\x03")  # not whole int16 samples
            await live.socket.send("not json")
            await live.socket.send('{"type": "dance"}')
            await live.socket.send("[1, 2]")
            await live.send_audio(speech_pcm(0.5))
            await live.end_of_speech()
            for _ in range(100):
                if received.of("playback.finished"):
                    break
                await asyncio.sleep(0.05)
            await live.close_session()
            await asyncio.wait_for(reader, 10)
        return received

    received = asyncio.run(script())
    codes = [e["code"] for e in received.of("error")]
    assert codes == ["bad_audio", "bad_message", "unknown_control", "unknown_control"]
    assert all(e["message"] for e in received.of("error"))
    assert received.of("speech.started") and received.of("playback.finished")[0]["interrupted"] is False


def test_an_abandoned_session_is_closed_after_the_idle_timeout(preview_server):
    server = preview_server(live=LiveSettings(idle_s=0.5))
    never_connected, dropped = new_session(server), new_session(server)
    asyncio.run(talk(server, dropped["id"], speech_pcm(0.3), close=False, lead_s=0.1, tail_s=0.1))
    assert httpx.get(f"{server.url}/v1/sessions/{dropped['id']}").status_code == 200
    time.sleep(1.5)  # three idle timeouts
    for info in (never_connected, dropped):
        assert httpx.get(f"{server.url}/v1/sessions/{info['id']}").status_code == 404
    assert httpx.get(f"{server.url}/v1/sessions").json()["data"] == []


def test_the_session_cap_answers_429_until_one_is_deleted(preview_server):
    server = preview_server(live=LiveSettings(max_sessions=1))
    info = new_session(server)
    with pytest.raises(SessionRefused) as refused:
        new_session(server)
    assert refused.value.status == 429
    assert httpx.delete(f"{server.url}/v1/sessions/{info['id']}").json()["deleted"] is True
    assert httpx.get(f"{server.url}/v1/sessions/{info['id']}").status_code == 404
    assert new_session(server)["object"] == "session"


def test_inputs_are_checked_like_a_job(preview_server, tmp_path):
    from serve_helpers import noface_image

    server = preview_server()
    face = noface_image(tmp_path / "noface.png")
    response = httpx.post(
        f"{server.url}/v1/sessions", files={"image": ("noface.png", face.read_bytes())}, data={"size": "256*256"}
    )
    assert response.status_code == 422 and response.json()["error"]["param"] == "image"
    bad = httpx.post(
        f"{server.url}/v1/sessions", files={"image": ("p.png", PORTRAIT.read_bytes())}, data={"size": "big"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "size"
    assert httpx.get(f"{server.url}/v1/sessions").json()["data"] == []


def test_the_token_guards_the_routes_and_the_socket(preview_server):
    from websockets.exceptions import InvalidStatus

    server = preview_server(token="sesame")
    with pytest.raises(SessionRefused) as refused:
        new_session(server)
    assert refused.value.status == 401
    info = new_session(server, token="sesame")

    async def connect(token):
        async with LiveClient.connect(server.url, info["id"], token=token) as live:
            async for message in live:
                return message

    with pytest.raises(InvalidStatus):
        asyncio.run(connect(None))
    assert asyncio.run(connect("sesame"))["type"] == "session.started"  # ?token= (and the Bearer header)


def test_the_live_command_streams_a_file_and_saves_the_video(preview_server, tmp_path):
    import soundfile as sf

    from liveavatar.cli import main

    server = preview_server(token="t0k")
    speech = tmp_path / "short.wav"
    sf.write(str(speech), speech_pcm(1.0), SR, subtype="PCM_16")
    out = tmp_path / "live.mp4"
    code = main(
        [
            "live",
            "--image",
            str(PORTRAIT),
            "--audio",
            str(speech),
            "--url",
            server.url,
            "--token",
            "t0k",
            "--size",
            "256*256",
            "--save_file",
            str(out),
        ]
    )
    assert code == 0
    frames, audio, times = decode(out.read_bytes())
    assert len(frames) >= 1.5 * 25 and np.allclose(np.diff(times), 0.04) and len(audio) >= 1.5 * SR
    assert httpx.get(f"{server.url}/v1/sessions", headers={"Authorization": "Bearer t0k"}).json()["data"] == []
    assert (
        main(
            [
                "live",
                "--image",
                str(PORTRAIT),
                "--audio",
                str(speech),
                "--url",
                server.url,
                "--token",
                "wrong",
                "--save_file",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
