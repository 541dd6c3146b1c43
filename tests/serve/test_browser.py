"""The web page in a real browser (Debian's chromium, driven by playwright): token, sample,
check findings, Generate, and the <video> playing while the video is made."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_helpers import GatedEngine

from liveavatar.engines.preview.engine import BLOCK_FRAMES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api")
HOLD_FRAMES = 48


def test_page_generates_and_plays_while_generating(start_server, tmp_path):
    # the job holds after its first 48 frames (1.9 s of the sample's 7 clips) until the test has
    # looked: the page must play from the first fragments, not wait for the rest of the video
    engine = GatedEngine(hold_at=HOLD_FRAMES // BLOCK_FRAMES)
    server = start_server(engine, token="t0ken")
    shot = Path(os.environ.get("LIVEAVATAR_SERVE_SCREENSHOT", tmp_path / "serve.png"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"])
        try:
            # bypass_csp: playwright's waits evaluate strings, which the page's CSP (rightly) forbids
            page = browser.new_context(viewport={"width": 1180, "height": 760}, bypass_csp=True).new_page()
            outside = []
            page.on(
                "request",
                lambda r: None if r.url.startswith((server.url, f"blob:{server.url}")) else outside.append(r.url),
            )
            page.goto(server.url)
            page.wait_for_selector("#tokenbox", state="visible")  # it asks for the token
            page.fill("#token", "t0ken")
            page.click("#tokensave")
            page.wait_for_function("document.getElementById('health').textContent.includes('loaded')")
            page.click("#sample")
            page.wait_for_function(
                "document.getElementById('checkstate').textContent.includes('no errors')", timeout=60_000
            )
            assert page.locator("#findings li").count() >= 0
            page.fill("#size", "384*256")
            page.wait_for_function(
                "document.getElementById('checkstate').textContent.includes('will make 256x256')", timeout=60_000
            )
            page.click("#go")
            assert engine.held.wait(60)
            # playing while held: everything it plays came from the first fragments
            page.wait_for_function("document.getElementById('video').currentTime > 1.0", timeout=30_000)
            assert page.evaluate("document.getElementById('video').src").startswith("blob:")  # fed through MSE
            status = page.inner_text("#status")
            assert status.startswith("in progress") and "%" in status
            assert int(status.split(": ")[1].split("/")[0]) <= HOLD_FRAMES
            assert page.evaluate("document.getElementById('video').videoWidth") == 256
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot))
            engine.gate.set()
            page.wait_for_selector("#download", state="visible", timeout=60_000)
            assert page.inner_text("#status").startswith("completed")
            href = page.get_attribute("#download", "href")
            assert href.endswith("/content?download=1")
            # the live feed ends (endOfStream), plays out, and the player switches to the finished file
            page.wait_for_function("document.getElementById('video').src.endsWith('/content')", timeout=60_000)
            assert outside == []  # nothing loaded from anywhere else
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_page_opened_with_the_printed_url_keeps_the_token(start_server):
    """The URL `serve` prints (`/?token=...`): the page uses that token, for fetch and for the cookie
    the <video> element sends, and takes it out of the address bar; a tricky token survives the cookie."""
    from urllib.parse import quote

    token = "a+b/c=d;e"
    server = start_server(token=token)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(f"{server.url}/?token={quote(token, safe='')}")
            page.wait_for_function("document.getElementById('health').textContent.includes('loaded')")
            assert page.url == f"{server.url}/"
            assert page.locator("#tokenbox").is_hidden()
            # a request carrying only the cookie (as <video> and EventSource do)
            status = page.evaluate("fetch('/v1/videos', {credentials: 'same-origin'}).then(r => r.status)")
            assert status == 200
        finally:
            browser.close()
