"""The Live tab in a real browser (Debian's chromium, driven by playwright): a fake microphone plays
speech, the page starts a session over WebRTC, the avatar's <video> plays, its mouth moves while
the microphone speaks and rests after, and playback.finished arrives over the data channel."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc")
from support.webrtc_standin import MOUTH
from webrtc_helpers import StandinServer, speech_clip

from liveavatar.live.registry import SessionRegistry
from liveavatar.live.webrtc import WebRTCConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")
LEAD_S, SPEECH_S, TAIL_S = 1.5, 2.2, 3.0

# grabs the mouth box of the displayed video every 40 ms through a canvas: (time, gray pixels)
SAMPLER = """([x, y, w, h]) => {
  const video = document.getElementById('livevideo'), canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.mouthSamples = [];
  window.mouthTimer = setInterval(() => {
    ctx.drawImage(video, 0, 0);
    const px = ctx.getImageData(x, y, w, h).data, gray = [];
    for (let i = 0; i < px.length; i += 4) gray.push((px[i] + px[i + 1] + px[i + 2]) / 3);
    window.mouthSamples.push([performance.now(), gray]);
  }, 40);
}"""


def launch(p, wav: Path):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-background-networking",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--disable-features=WebRtcHideLocalIpsWithMdns",  # host candidates as addresses: no mDNS on this machine
    ])


def test_live_tab_speaks_back_what_the_microphone_says(tmp_path):
    wav = speech_clip(tmp_path / "mic.wav", LEAD_S, SPEECH_S, TAIL_S)
    shot = Path(os.environ.get("LIVEAVATAR_LIVE_SCREENSHOT", tmp_path / "live.png"))
    registry = SessionRegistry(idle_s=2.0)
    with StandinServer(registry, WebRTCConfig(), page=True) as server, sync_api.sync_playwright() as p:
        browser = launch(p, wav)
        try:
            context = browser.new_context(viewport={"width": 1180, "height": 760}, bypass_csp=True)
            context.grant_permissions(["microphone"])
            page = context.new_page()
            outside = []
            page.on("request", lambda r: None if r.url.startswith((server.url, "blob:", "data:")) else outside.append(r.url))
            page.goto(server.url + "/#live")
            page.click("#livesample")
            page.wait_for_function("!document.getElementById('livestart').disabled")
            page.click("#livestart")
            page.wait_for_function("document.getElementById('livevideo').currentTime > 0.3", timeout=30_000)
            assert page.evaluate("document.getElementById('livevideo').videoWidth") == registry.list()[0].session.width
            box = [MOUTH[1].start, MOUTH[0].start, MOUTH[1].stop - MOUTH[1].start, MOUTH[0].stop - MOUTH[0].start]
            page.evaluate(SAMPLER, box)
            page.wait_for_function("window.liveEvents.some((e) => e.type === 'speech.started')", timeout=20_000)
            page.wait_for_timeout(900)
            page.screenshot(path=str(shot))
            page.wait_for_function("window.liveEvents.some((e) => e.type === 'playback.finished')", timeout=20_000)
            page.wait_for_timeout(1200)
            samples = page.evaluate("window.mouthSamples")
            events = page.evaluate("window.liveEvents")
            assert "mouth-to-ear about" in page.inner_text("#latency")
            page.click("#livestop")
            assert page.inner_text("#livestatus") == "stopped"
            assert outside == []
        finally:
            browser.close()
    started = next(e["at"] for e in events if e["type"] == "speech.started")
    finished = next(e for e in events if e["type"] == "playback.finished")
    assert finished["interrupted"] is False and finished["position_s"] > 0.8 * SPEECH_S
    t = np.array([s[0] for s in samples])
    dark = np.array([np.mean(np.array(s[1]) < 80) for s in samples])  # the stand-in's open mouth is dark
    before, during, after = t < started - 100, (t > started + 200) & (t < finished["at"] - 500), t > finished["at"] + 300
    assert before.sum() >= 3 and during.sum() >= 10 and after.sum() >= 5
    assert dark[during].std() > 0.05 and dark[during].max() > 0.3, "the mouth did not move while the microphone spoke"
    assert dark[before].max() < 0.1 and dark[after].max() < 0.1, "the mouth moved in silence"
    assert shot.stat().st_size > 10_000
