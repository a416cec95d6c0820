"""The exposure guard: an ASGI middleware in front of Gradio for an app that may be exposed."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from assistant.records import Answer
from settings import Settings

MAX_REQUEST_BYTES = 2 * 2**20  # a request body; history beyond the last few turns is never read
CLOSED_PATHS = (
    "/gradio_api/deep_link",
    "/gradio_api/upload",
    "/gradio_api/process_recording",
    "/gradio_api/stream/",
    "/gradio_api/run-history",
    "/gradio_api/vibe",
    "/gradio_api/undo-vibe",
)


def is_loopback(host: str) -> bool:
    """Is this bind address reachable only from this machine?"""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware in front of Gradio for an app that may be exposed.

    - Host must be a loopback name, an IP literal, this machine's name, or in RAG_ALLOWED_HOSTS
      (a made-up name means DNS rebinding); a browser's Origin must match the Host.
    - Request bodies are capped at MAX_REQUEST_BYTES.
    - Endpoints this app never uses are closed: deep links (shareable snapshots of any chat,
      forged or not), uploads, recordings, media streams, run history.
    """

    def __init__(
        self,
        app: Any,
        *,
        hosts: frozenset[str],
        origins: frozenset[str] = frozenset(),
        max_body: int = MAX_REQUEST_BYTES,
    ):
        self.app, self.hosts, self.max_body = app, hosts, max_body
        self.origins = origins  # names from RAG_ALLOWED_HOSTS: a reverse proxy's, for instance

    def origin_allowed(self, origin: str, host: str) -> bool:
        """A browser's page must come from this app (or a name it was told to serve)."""
        parts = urlsplit(origin)
        return parts.netloc.lower() == host.lower() or (parts.hostname or "") in self.origins

    def host_allowed(self, host: str) -> bool:
        """Is this Host header (with or without port) one we serve?"""
        name = urlsplit(f"//{host}").hostname or ""
        try:
            ipaddress.ip_address(name)
            return True  # an address can't be rebound to another machine
        except ValueError:
            return name.lower() in self.hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Refuse what the app must not serve; pass everything else to Gradio."""
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host", ""), headers.get("origin")
        path = scope.get("path", "")
        if not self.host_allowed(host):
            return await _refuse(scope, send, 400, f"Unknown host {host!r}: set RAG_ALLOWED_HOSTS.")
        if origin and origin != "null" and not self.origin_allowed(origin, host):
            return await _refuse(scope, send, 403, "Cross-origin request refused.")
        if path.startswith(CLOSED_PATHS) or "deep_link=" in scope.get("query_string", b"").decode(
            "latin-1"
        ):
            return await _refuse(scope, send, 404, "Not available in this app.")
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            return await _refuse(
                scope, send, 413, f"Request body too large (limit {self.max_body:,} bytes)."
            )
        seen = 0

        async def capped() -> dict:  # bodies without a length are counted as they arrive
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            return {"type": "http.disconnect"} if seen > self.max_body else message

        return await self.app(scope, capped if scope["type"] == "http" else receive, send)


async def _refuse(scope: dict, send: Any, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names served besides IP literals: loopback, this machine, RAG_ALLOWED_HOSTS."""
    names = {"localhost", socket.gethostname(), socket.getfqdn(), settings.host}
    return frozenset(n.lower() for n in names | settings.listed_hosts() if n)


_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)*[\w.@+-]+")


def without_paths(answer: Answer) -> Answer:
    """An error answer with server paths taken out (for visitors of an exposed app)."""
    if answer.status != "error":
        return answer
    text = _PATH.sub("[a server path]", answer.answer)
    error = None if answer.error is None else _PATH.sub("[a server path]", answer.error)
    return replace(answer, answer=text, error=error)


def client_of(request: Any) -> str:
    """The address a request came from ('' when unknown), for per-client limits."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")
