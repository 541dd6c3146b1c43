"""The Live tab in a real browser (Debian's chromium, driven by playwright) against the server with
the preview engine: a fake microphone plays speech, the page starts a session over WebRTC, the
avatar's <video> plays, the mouth region of the displayed frames moves while the microphone
speaks and rests after, and playback.finished arrives over the data channel."""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
from webrtc_helpers import speech_clip  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api")
LEAD_S, SPEECH_S, TAIL_S = 2.0, 2.2, 4.5

# the mouth box of the displayed video every 40 ms, through a canvas: (time, gray pixels)
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
GRAB = """() => { const v = document.getElementById('livevideo'), c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); }"""


def launch(p, wav: Path):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox",
            "--disable-background-networking",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            "--disable-features=WebRtcHideLocalIpsWithMdns",  # host candidates as addresses: no mDNS resolver here
        ],
    )


def mouth_box(png_data_url: str) -> list[int]:
    """x, y, w, h around the lips (MediaPipe FaceMesh on one displayed frame), with a margin."""
    from PIL import Image

    from support.preview_quality import landmarks_per_frame

    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_data_url.split(",", 1)[1]))).convert("RGB"))
    lm = landmarks_per_frame([frame])[0]
    assert lm is not None, "no face in the displayed video"
    lips = lm[[61, 291, 0, 17, 13, 14]]
    (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
    pad = 0.35 * (x1 - x0)
    x0, y0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    return [x0, y0, int(x1 + pad) - x0, int(y1 + 2 * pad) - y0]


@pytest.mark.slow  # about a minute on two busy cores: the engine loads, the speech plays in real time
def test_live_tab_speaks_back_what_the_microphone_says(start_server, tmp_path):
    wav = speech_clip(tmp_path / "mic.wav", LEAD_S, SPEECH_S, TAIL_S)
    shot = Path(os.environ.get("LIVEAVATAR_LIVE_SCREENSHOT", tmp_path / "live.png"))  # docs/live.png comes from here
    server = start_server()
    with sync_api.sync_playwright() as p:
        browser = launch(p, wav)
        try:
            context = browser.new_context(viewport={"width": 1180, "height": 760}, bypass_csp=True)
            context.grant_permissions(["microphone"])
            page = context.new_page()
            outside = []
            page.on(
                "request", lambda r: None if r.url.startswith((server.url, "blob:", "data:")) else outside.append(r.url)
            )
            page.goto(server.url + "/#live")
            page.wait_for_function("document.getElementById('health').textContent.includes('loaded')", timeout=60_000)
            page.click("#livesample")
            page.wait_for_function("!document.getElementById('livestart').disabled")
            page.click("#livestart")
            page.wait_for_function("document.getElementById('livevideo').currentTime > 0.3", timeout=60_000)
            box = mouth_box(page.evaluate(GRAB))
            page.evaluate(SAMPLER, box)
            page.wait_for_function("window.liveEvents.some((e) => e.type === 'speech.started')", timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot))
            page.wait_for_function("window.liveEvents.some((e) => e.type === 'playback.finished')", timeout=30_000)
            page.wait_for_timeout(2500)
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
    boxes = np.array([s[1] for s in samples], np.float32)
    # the displayed video runs a little behind the data channel (the browser holds video for the
    # audio's playout delay; more when the machine is busy): "after" starts a while after the event
    before, during, after = (
        t < started - 100,
        (t > started + 300) & (t < finished["at"] - 500),
        t > finished["at"] + 900,
    )
    assert before.sum() >= 5 and during.sum() >= 10 and after.sum() >= 5
    # motion: how much the mouth region changes over 80 ms (the listening head drifts slowly, a
    # speaking mouth opens and closes several times a second)
    motion = np.r_[np.zeros(2), np.abs(boxes[2:] - boxes[:-2]).mean(axis=1)]
    calm, moving, rested = (float(np.median(motion[w])) for w in (before, during, after))
    print(f"mouth motion (median): before {calm:.2f}, during {moving:.2f}, after {rested:.2f}")
    assert moving > 3 * max(calm, 0.3), "the mouth did not move while the microphone spoke"
    assert rested < moving / 2, "the mouth kept moving after the speech"
    assert shot.stat().st_size > 10_000
