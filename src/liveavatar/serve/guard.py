"""Who may talk to the server: one ASGI middleware in front of every route, HTTP and WebSocket alike.

A route added to the app later (jobs, live sessions, WebRTC signalling) is covered without doing
anything: the checks run on the ASGI scope before any routing. In order:

1. ``Host`` must name this server (localhost, 127.0.0.1, [::1], the bound address, ``allowed_hosts``;
   any IP literal when bound to all interfaces). A DNS-rebinding page reaches us under its own
   name, so this is what keeps it out even without a token.
2. A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket handshake sent by a browser
   from another origin (its ``Origin`` header) is refused unless ``cors_origins`` lists it. Clients
   that send no ``Origin`` (curl, SDKs) are not browsers driven by a foreign page.
3. The token, when the server has one: ``Authorization: Bearer T`` (scheme in any case), the
   ``liveavatar_token`` cookie the page sets (URL-encoded by the page, decoded here), or
   ``?token=T`` (the URL the server prints). Public: the page itself; ``/healthz`` answers liveness
   only without it. The result is left in ``scope["liveavatar.authorized"]`` for such routes.
4. The size of a request body, counted as it arrives.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, unquote, urlsplit

from liveavatar.serve.uploads import Rejected

COOKIE = "liveavatar_token"
PUBLIC = frozenset({"/", "/favicon.ico"})
LIVENESS = frozenset({"/healthz"})  # answered without the token, with less in it
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
AUTHORIZED = "liveavatar.authorized"


@dataclass(frozen=True)
class Policy:
    """What the guard enforces; built once from the server's settings."""

    token: str | None
    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body: int = 100 * 1024 * 1024

    def host_allowed(self, host_header: str | None) -> bool:
        if "*" in self.allowed_hosts:
            return True
        if not host_header:
            return False
        name = _host_name(host_header)
        if name is None:
            return False
        names = (
            LOCAL_NAMES | {self.bound_host.lower().strip("[]")} | {h.lower().strip("[]") for h in self.allowed_hosts}
        )
        if name in names:
            return True
        # bound to every interface: the machine's own addresses are its names; an IP literal cannot be rebound
        return self.bound_host in ("0.0.0.0", "::", "") and _is_ip(name)

    def origin_allowed(self, origin: str | None, host_header: str | None, scheme: str) -> bool:
        if origin is None:
            return True
        if "*" in self.cors_origins or origin in self.cors_origins:
            return True
        if origin == "null" or not host_header:
            return False
        parts = urlsplit(origin)
        return (
            parts.scheme in (scheme, {"ws": "http", "wss": "https"}.get(scheme))
            and parts.netloc.lower() == host_header.lower()
        )

    def token_state(self, headers: dict[bytes, bytes], query: bytes) -> str:
        """'ok', 'missing' or 'wrong'."""
        if not self.token:
            return "ok"
        given = list(_offered_tokens(headers, query))
        if not given:
            return "missing"
        expected = self.token.encode()
        return "ok" if any(hmac.compare_digest(g.encode(), expected) for g in given) else "wrong"


def _host_name(host_header: str) -> str | None:
    """The name part of a Host header, lower-case, without port or IPv6 brackets."""
    text = host_header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _offered_tokens(headers: dict[bytes, bytes], query: bytes):
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        yield value.strip()
    raw = headers.get(b"cookie", b"").decode("latin-1")
    if raw:
        cookie = SimpleCookie()
        try:
            cookie.load(raw)
        except Exception:  # a malformed Cookie header carries no token of ours
            cookie = SimpleCookie()
        if COOKIE in cookie:
            yield unquote(cookie[COOKIE].value)  # the page stores it with encodeURIComponent
    for value in parse_qs(query.decode("latin-1")).get("token", []):
        yield value


class Guard:
    """The ASGI middleware enforcing ``policy`` (see the module's docstring) in front of ``app``."""

    def __init__(self, app, policy: Policy) -> None:
        self.policy = policy
        self.app = app
        if policy.cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            self.app = CORSMiddleware(
                app,
                allow_origins=list(policy.cors_origins),
                allow_methods=["*"],
                allow_headers=["authorization", "content-type"],
                allow_credentials=True,
            )

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await _refuse(scope, send, refusal)
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.policy.max_body:
                return await _refuse(scope, send, self._too_large())
            receive = self._counting(receive)
        return await self.app(scope, receive, send)

    def _refusal(self, scope) -> Rejected | None:
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1") or None
        if not self.policy.host_allowed(host):
            return Rejected(
                403,
                "host_not_allowed",
                f"this server does not answer to the host name {host!r}; "
                "open it as http://127.0.0.1:<port>/ or start it with --allowed_hosts NAME",
            )
        method = scope.get("method", "GET")
        if scope["type"] == "http" and method == "OPTIONS" and b"access-control-request-method" in headers:
            return (
                None
                if self.policy.cors_origins
                else Rejected(
                    403,
                    "origin_not_allowed",
                    "cross-origin requests are not allowed; start the server with --cors_origins ORIGIN",
                )
            )
        origin = headers.get(b"origin", b"").decode("latin-1") or None
        if (scope["type"] == "websocket" or method not in SAFE_METHODS) and not self.policy.origin_allowed(
            origin, host, scope.get("scheme", "http")
        ):
            return Rejected(
                403,
                "origin_not_allowed",
                f"requests from the page at {origin} are not allowed; "
                "start the server with --cors_origins ORIGIN to allow that site",
            )
        state = self.policy.token_state(headers, scope.get("query_string", b""))
        scope[AUTHORIZED] = state == "ok"
        if state == "ok" or scope["path"] in PUBLIC or (scope["path"] in LIVENESS and method in SAFE_METHODS):
            return None
        if state == "wrong":
            return Rejected(401, "wrong_token", "wrong token: use the token the server printed (or gave with --token)")
        return Rejected(
            401,
            "unauthorized",
            "a token is required: send 'Authorization: Bearer <token>' "
            "or open the URL with ?token=... the server printed",
        )

    def _too_large(self) -> Rejected:
        return Rejected(
            413, "request_too_large", f"the request is larger than the limit of {self.policy.max_body} bytes"
        )

    def _counting(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.policy.max_body:
                raise self._too_large()
            return message

        return counted


async def _refuse(scope, send, refusal: Rejected) -> None:
    if scope["type"] == "websocket":  # before the handshake is accepted: the client sees HTTP 403
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
        return
    data = json.dumps(refusal.body()).encode()
    extra = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": data})
