"""The studio's front door: a token and Origin check in front of viser.

viser 1.1 serves its page and websocket with ``websockets`` and offers no hook for
authentication or an Origin check (its ``process_request`` is internal). So viser listens
on a loopback address on a port of its own, and :class:`Gate` listens on the user's
``host:port``: it checks every HTTP request and every websocket upgrade, forwards the
page's files (stdlib ``http.client``) and relays the websocket's messages (``websockets``,
the library viser itself serves with; no new dependency).

The checks:

* with a token (``--token-file``; required for a non-loopback ``--host``): a request must
  carry ``?token=TOKEN`` (then it is answered with a redirect to the same URL without the
  token and a cookie, HttpOnly and SameSite=Strict, that viser's own asset and websocket
  requests then carry) or that cookie; no token is 401, a wrong one 403, both without a page.
  Tokens and cookies are compared with :func:`hmac.compare_digest`.
* always, a websocket upgrade must come from the page itself: its ``Origin`` must name the
  same host and port as its ``Host`` (a page of another site, open in a browser of this
  machine, cannot drive the robots), else 403.
* without a token (a loopback bind): ``Host`` must be a loopback name or address, so a
  foreign site that re-points its DNS name at 127.0.0.1 (DNS rebinding) is refused too.
"""

import asyncio
import hashlib
import hmac
import http.client
import ipaddress
import logging
import random
import sys
import threading
from http.cookies import CookieError, SimpleCookie
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

log = logging.getLogger(__name__)

#: Largest websocket message relayed (bytes; viser's own limit).
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
#: Headers of viser's HTTP answers that are passed on (the rest are hop-by-hop or unused).
_FORWARDED_HEADERS = ("Content-Type", "Content-Encoding", "Content-Length", "Cache-Control", "ETag", "Last-Modified")
#: Added to every answer: the page must not be framed by another site (clickjacking).
_SECURITY_HEADERS = (("X-Frame-Options", "DENY"), ("Content-Security-Policy", "frame-ancestors 'none'"),
                     ("X-Content-Type-Options", "nosniff"))


def internal_host() -> str:
    """The loopback address viser listens on behind the gate.

    On Linux the whole 127.0.0.0/8 is routed to the loopback interface, so a random address
    there (plus a random port) is one a web page in a local browser cannot practically
    scan for; elsewhere only 127.0.0.1 is certain to exist.
    """
    if sys.platform.startswith("linux"):
        rng = random.SystemRandom()
        return f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}"
    return "127.0.0.1"


#: Host names that are this machine's loopback.
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_is_loopback(host_header: Optional[str]) -> bool:
    """True when a ``Host`` header (``name[:port]``) names this machine's loopback."""
    if not host_header:
        return False
    try:
        name = urlsplit("//" + host_header).hostname
    except ValueError:
        return False
    return name is not None and is_loopback(name)


def same_origin(origin: Optional[str], host_header: Optional[str]) -> bool:
    """True when a websocket's ``Origin`` (``http://name:port``) is the page's own ``Host``."""
    if not origin or not host_header:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme == "http" and parts.netloc.lower() == host_header.strip().lower()


class Gate:
    """The token and Origin check on ``host:port``, in front of viser on ``upstream_host:upstream_port``.

    Args:
        host, port: where users connect (``port`` 0: any free port, see :attr:`port`).
        upstream_host, upstream_port: viser's own listener (loopback).
        token: the shared secret (bytes from the token file), or None (no token: only for a
            loopback ``host``; the Origin and Host checks still apply).
    """

    def __init__(self, host: str, port: int, upstream_host: str, upstream_port: int, token: Optional[bytes] = None):
        if token is not None and not token:
            raise ValueError("the token must not be empty")
        self.host, self.port = host, port
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.token = token
        self.cookie_name = ""
        self._cookie_value = hmac.new(token, b"dofbot-rl studio cookie", hashlib.sha256).hexdigest() if token else ""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopped: Optional[asyncio.Event] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------------------
    # Life
    # ------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve on a thread of its own.

        Raises:
            OSError: ``host:port`` cannot be bound (in use, no such address).
        """
        ready = threading.Event()
        outcome = {}
        self._thread = threading.Thread(target=self._serve, args=(ready, outcome), name="studio-gate", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in outcome:
            self._thread.join()
            raise outcome["error"]

    def stop(self) -> None:
        """Close the listener and every relayed connection (idempotent)."""
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # the loop is already closed
                pass
            self._thread.join(10)

    def url(self, shown_host: Optional[str] = None) -> str:
        """The address to open in a browser (with ``?token=`` when a token is set)."""
        host = shown_host or self.host
        if ":" in host:
            host = f"[{host}]"
        url = f"http://{host}:{self.port}/"
        if self.token is not None:
            url += "?" + urlencode({"token": self.token.decode("utf-8", "replace")})
        return url

    def _serve(self, ready: threading.Event, outcome: dict) -> None:
        import websockets.asyncio.server

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def main():
            self._stopped = asyncio.Event()
            try:
                server = await websockets.asyncio.server.serve(
                    self._relay, self.host, self.port, process_request=self._check, max_size=MAX_MESSAGE_BYTES,
                    compression=None, select_subprotocol=lambda _c, offered: next(
                        (p for p in offered if p.startswith("viser-v")), None))
            except OSError as exc:
                outcome["error"] = exc
                ready.set()
                return
            self.port = server.sockets[0].getsockname()[1]
            self.cookie_name = f"dofbot_studio_{self.port}"  # cookies ignore ports: one name per studio
            self._loop = loop
            ready.set()
            await self._stopped.wait()
            server.close()
            await server.wait_closed()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    # ------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------
    async def _check(self, connection, request):
        """websockets' ``process_request``: a refusal, a redirect, a forwarded file, or None
        (a websocket upgrade that passed: :meth:`_relay` takes it)."""
        headers = request.headers
        path, _, query = request.path.partition("?")
        upgrade = headers.get("Upgrade", "").lower() == "websocket"
        host = headers.get("Host")
        if self.token is None and not host_is_loopback(host):
            return self._refuse(connection, 403, f"Host {host!r} is not this machine's loopback", request)
        if self.token is not None:
            params = parse_qsl(query, keep_blank_values=True)
            given = [v for k, v in params if k == "token"]
            if given:
                if not hmac.compare_digest(given[-1].encode("utf-8"), self.token):
                    return self._refuse(connection, 403, "wrong token", request)
                if not upgrade:  # keep the token out of the address bar: a cookie carries it from now on
                    rest = urlencode([(k, v) for k, v in params if k != "token"])
                    response = connection.respond(303, "")
                    response.headers["Location"] = path + ("?" + rest if rest else "")
                    response.headers["Set-Cookie"] = (f"{self.cookie_name}={self._cookie_value}; Path=/; HttpOnly; "
                                                      "SameSite=Strict")
                    self._secure(response)
                    return response
            else:
                cookie = self._cookie(headers.get_all("Cookie"))
                if cookie is None:
                    return self._refuse(connection, 401, "this page needs the studio's token: open the address "
                                                         "the studio printed (it ends in ?token=...)", request)
                if not hmac.compare_digest(cookie.encode("utf-8"), self._cookie_value.encode("utf-8")):
                    return self._refuse(connection, 403, "wrong token", request)
        if upgrade:
            if not same_origin(headers.get("Origin"), host):
                return self._refuse(connection, 403, f"websocket from another origin ({headers.get('Origin')!r})",
                                    request)
            return None
        return await self._forward(connection, request.path, headers.get("Accept-Encoding", ""))

    def _cookie(self, values) -> Optional[str]:
        for value in values:
            try:
                jar = SimpleCookie(value)
            except CookieError:
                continue
            if self.cookie_name in jar:
                return jar[self.cookie_name].value
        return None

    @staticmethod
    def _secure(response) -> None:
        for name, value in _SECURITY_HEADERS:
            if name in response.headers:
                del response.headers[name]
            response.headers[name] = value

    def _refuse(self, connection, status: int, why: str, request):
        log.warning("studio: refused %s %s: %s", "websocket" if request.headers.get("Upgrade") else "GET",
                    request.path.partition("?")[0], why)
        response = connection.respond(status, f"dofbot-rl studio: {why}\n")
        self._secure(response)
        return response

    async def _forward(self, connection, path: str, accept_encoding: str):
        """viser's answer to ``GET path`` (its page and assets), with the security headers."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        def fetch():
            conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
            try:
                conn.request("GET", path, headers={"Accept-Encoding": accept_encoding} if accept_encoding else {})
                answer = conn.getresponse()
                return answer.status, answer.reason, answer.getheaders(), answer.read()
            finally:
                conn.close()

        try:
            status, reason, upstream_headers, body = await asyncio.to_thread(fetch)
        except (OSError, http.client.HTTPException) as exc:
            log.error("studio: viser did not answer GET %s: %s", path.partition("?")[0], exc)
            return connection.respond(502, "dofbot-rl studio: the page server did not answer\n")
        headers = Headers([(k, v) for k, v in upstream_headers if k.title() in _FORWARDED_HEADERS])
        response = Response(status, reason, headers, body)
        self._secure(response)
        return response

    # ------------------------------------------------------------------------------
    # Websocket relay
    # ------------------------------------------------------------------------------
    async def _relay(self, downstream) -> None:
        """Pass messages both ways between a checked browser websocket and viser's."""
        import websockets.asyncio.client
        import websockets.exceptions

        subprotocol = downstream.subprotocol
        try:
            upstream = await websockets.asyncio.client.connect(
                f"ws://{self.upstream_host}:{self.upstream_port}/", subprotocols=[subprotocol] if subprotocol else None,
                max_size=MAX_MESSAGE_BYTES, compression=None, open_timeout=30)
        except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError) as exc:
            log.error("studio: cannot reach viser's websocket: %s", exc)
            await downstream.close(1011, "page server unavailable")
            return

        async def pump(source, sink):
            try:
                async for message in source:
                    await sink.send(message)
            except websockets.exceptions.ConnectionClosed:
                pass

        try:
            tasks = [asyncio.ensure_future(pump(downstream, upstream)), asyncio.ensure_future(pump(upstream, downstream))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        finally:
            await upstream.close()
            await downstream.close()
