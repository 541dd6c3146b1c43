"""The server as an attacker's page would call it: forged Host (DNS rebinding) and Origin (cross-site
requests), missing and wrong tokens; over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import inputs, wait_for

WebSocket = pytest.importorskip("fastapi").WebSocket  # at module level: the route's annotation is resolved here


def port_of(server) -> str:
    return server.url.rsplit(":", 1)[1]


def test_forged_host_is_refused_even_without_a_token(start_server):
    server = start_server()  # no token: the DNS-rebinding case
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for host in (f"evil.example:{port_of(server)}", "evil.example", "127.0.0.1.evil.example", ""):
            response = client.get("/v1/videos", headers={"Host": host})
            assert response.status_code == 403, host
            assert response.json()["error"]["code"] == "host_not_allowed"
        for host in (
            f"127.0.0.1:{port_of(server)}",
            f"localhost:{port_of(server)}",
            f"[::1]:{port_of(server)}",
            "LOCALHOST",
        ):
            assert client.get("/v1/videos", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_adds_names(start_server):
    server = start_server(allowed_hosts=("avatar.lan",))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/v1/videos", headers={"Host": f"avatar.lan:{port_of(server)}"}).status_code == 200
        assert client.get("/v1/videos", headers={"Host": "other.lan"}).status_code == 403


def test_cross_site_post_and_delete_are_refused(start_server, portrait_path, speech_path):
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for origin in (
            "http://evil.example",
            "null",
            f"http://localhost:{int(port_of(server)) + 1}",
            "https://127.0.0.1:" + port_of(server),
        ):
            response = client.post(
                "/v1/videos", headers={"Origin": origin}, **inputs(portrait_path, speech_path, infer_frames=8)
            )
            assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed", origin
            assert client.delete("/v1/videos/video_x", headers={"Origin": origin}).status_code == 403
        assert client.get("/v1/videos").json()["data"] == []  # nothing was queued
        # a preflight from that site gets no CORS permission
        preflight = client.options(
            "/v1/videos", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers
        # the server's own page (same origin) and clients that send no Origin still work
        same = client.post(
            "/v1/videos", headers={"Origin": server.url}, **inputs(portrait_path, speech_path, infer_frames=8)
        )
        assert same.status_code == 202, same.text
        # reading is allowed cross-origin at the HTTP level: the browser withholds the answer (no CORS header)
        listed = client.get("/v1/videos", headers={"Origin": "http://evil.example"})
        assert listed.status_code == 200 and "access-control-allow-origin" not in listed.headers


def test_cors_origins_lets_a_named_site_in(start_server):
    server = start_server(cors_origins=("https://app.example",))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        preflight = client.options(
            "/v1/videos",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert (
            preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
        )
        allowed = client.post("/v1/videos", headers={"Origin": "https://app.example"}, data={"prompt": "x"})
        assert allowed.status_code == 422  # past the guard: the request itself is incomplete
        assert (
            client.post("/v1/videos", headers={"Origin": "https://other.example"}, data={"prompt": "x"}).status_code
            == 403
        )


@pytest.mark.parametrize("token", ["s3cret", "a+b/c=d;e f", "ü-ñ"])
def test_token_through_header_cookie_and_url(start_server, token):
    from urllib.parse import quote

    server = start_server(token=token)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        missing = client.get("/v1/videos")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        wrong = client.get("/v1/videos", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401 and "wrong token" in wrong.json()["error"]["message"]
        if token.isascii():  # header values are latin-1; the cookie and the URL carry any token
            for scheme in ("Bearer", "bearer", "BEARER"):
                assert client.get("/v1/videos", headers={"Authorization": f"{scheme} {token}"}).status_code == 200, (
                    scheme
                )
        # the page stores the cookie with encodeURIComponent (which quote(safe="") matches for these)
        cookie = f"other=1; liveavatar_token={quote(token, safe='')}"
        assert client.get("/v1/videos", headers={"Cookie": cookie}).status_code == 200
        assert client.get("/v1/videos", params={"token": token}).status_code == 200
        health = wait_for(lambda: (r := client.get("/healthz", params={"token": token})).status_code == 200 and r)
        assert health.json()["authorized"] is True and health.json()["engine"] == "preview"


def handshake_status(server, path: str, headers: dict) -> int:
    """The HTTP status a raw WebSocket handshake gets (any Host an attacker's page would send)."""
    import socket

    port = int(port_of(server))
    lines = [
        f"GET {path} HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


def test_websocket_routes_get_the_same_checks(start_server):
    """A WebSocket route added to the app (as live sessions add theirs) is guarded without doing anything."""
    pytest.importorskip("websockets")
    from websockets.sync.client import connect

    server = start_server(token="tok")

    @server.app.websocket("/test/ws")
    async def echo(ws: WebSocket):
        await ws.accept()
        await ws.send_text("hello")
        await ws.close()

    own = f"127.0.0.1:{port_of(server)}"
    for headers, query in (
        ({"Host": own, "Origin": "http://evil.example"}, "?token=tok"),
        ({"Host": own}, ""),
        ({"Host": own}, "?token=bad"),
        ({"Host": "evil.example"}, "?token=tok"),
    ):
        assert handshake_status(server, "/test/ws" + query, headers) == 403, (headers, query)
    assert handshake_status(server, "/test/ws?token=tok", {"Host": own, "Origin": server.url}) == 101
    with connect(
        server.url.replace("http", "ws") + "/test/ws?token=tok",
        additional_headers={"Origin": server.url},
        open_timeout=10,
    ) as ws:
        assert ws.recv(timeout=10) == "hello"
