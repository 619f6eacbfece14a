"""The rating server's defences at the HTTP level, below the routes: a header timeout and a cap
on open connections in uvicorn's h11 protocol, a cap on requests being handled, and the security
headers on every response (see ``harness.human.server``'s docstring for why each exists)."""

from __future__ import annotations

HEADER_TIMEOUT_S = 10.0
MAX_OPEN_CONNECTIONS = 4096  # idle ones included; each costs a socket and a few kB
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # The form is one page: inline script and style, images from this server (or data: URIs),
    # requests only back to this server. frame-ancestors only works as a header, not in <meta>.
    (b"content-security-policy",
     b"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
]


def raise_file_limit(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def guarded_protocol() -> type:
    """uvicorn's h11 protocol with a header timeout and a cap on open connections (see the
    module's docstring). Built on first use: uvicorn is imported only by a server."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._awaited_cycle = None
            self._header_timer = None
            if len(self.connections) > MAX_OPEN_CONNECTIONS:
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            # The request after this point must have its headers in within HEADER_TIMEOUT_S.
            self._awaited_cycle = self.cycle
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete  # not mid-request
            if waiting and self.cycle is self._awaited_cycle and not self.transport.is_closing():
                self.transport.close()  # nothing (or half a header) arrived in time

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._awaited_cycle:
                self._cancel_header_timer()  # a request's headers are complete

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()  # the keep-alive timer stops at the next byte; this not

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

    return _GuardedH11Protocol


class ActiveRequestLimit:
    """ASGI middleware: 503 when more than ``limit`` requests are being handled at once. Idle
    connections are not requests, so they never count."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-length", b"0"), *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b""})
            return None
        self.active += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.active -= 1


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, whatever produced it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message, headers=[*message.get("headers", []),
                                                 *[h for h in SECURITY_HEADERS if h[0] not in names]])
            await send(message)

        await self.app(scope, receive, send_with_headers)
