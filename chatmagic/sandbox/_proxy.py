"""A tiny HTTP forward proxy for proxy tests, reaching 127.0.0.1 only.

It speaks absolute-form requests (``GET http://127.0.0.1:P/x HTTP/1.1``) and
``CONNECT`` tunnels. Each forwarded request gets its own upstream connection
and the answer is closed after it (``Connection: close``): simpler than
keep-alive bookkeeping and every client handles it.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from ._loop import ThreadedServer

__all__ = ["ForwardProxy", "came_through_proxy"]

_ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost"})
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
VIA = "1.1 chatmagic-sandbox-proxy"

# Local addresses of the proxy's upstream connections, so the sandbox (in the
# same process) can tell tunnelled requests came through a proxy.
_outgoing: set[tuple[str, int]] = set()
_outgoing_lock = threading.Lock()


def came_through_proxy(peer: object) -> bool:
    if not isinstance(peer, tuple) or len(peer) < 2:
        return False
    with _outgoing_lock:
        return (peer[0], peer[1]) in _outgoing


class ForwardProxy(ThreadedServer):
    """``async with ForwardProxy() as proxy: ... proxy=proxy.url``; or ``start_in_thread()``."""

    def __init__(
        self, username: str | None = None, password: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.requests: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except asyncio.CancelledError:
            # Our own aclose() cancelled it; ending normally keeps asyncio's
            # start_server callback from logging the cancellation as an error.
            writer.transport.abort()
        finally:
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self.username is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return any(
            k.lower() == "proxy-authorization" and v.strip() == f"Basic {expected}" for k, v in headers
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await _answer(writer, 400, "Bad Request")
            return
        headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
        self.requests.append((method, target))
        if not self._authorized(headers):
            await _answer(
                writer,
                407,
                "Proxy Authentication Required",
                ['Proxy-Authenticate: Basic realm="chatmagic-sandbox"'],
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            if host not in _ALLOWED_HOSTS or not port.isdigit():
                await _answer(writer, 403, "Forbidden: this proxy reaches 127.0.0.1 only")
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
            return
        url = urlsplit(target)
        if url.scheme != "http" or url.hostname not in _ALLOWED_HOSTS:
            await _answer(writer, 403, "Forbidden: this proxy reaches http://127.0.0.1 only")
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", url.port or 80)
        async with _upstream(up_writer):
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            out = [f"{method} {path} {version}"]
            out += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_HEADERS]
            out += ["Connection: close", f"Via: {VIA}"]
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            await _copy_body(reader, up_writer, headers)
            await up_writer.drain()
            await _relay_response(up_reader, writer)


async def _answer(
    writer: asyncio.StreamWriter, status: int, text: str, extra: list[str] | None = None
) -> None:
    body = text.encode()
    head = [
        f"HTTP/1.1 {status} {text.split(':')[0]}",
        "Content-Type: text/plain; charset=UTF-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(extra or []),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _copy_body(
    reader: asyncio.StreamReader, up: asyncio.StreamWriter, headers: list[tuple[str, str]]
) -> None:
    lowered = {k.lower(): v for k, v in headers}
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        while True:  # relay chunks verbatim up to the last (zero) chunk and its trailers
            size_line = await reader.readuntil(b"\r\n")
            up.write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    up.write(trailer)
                    if trailer == b"\r\n":
                        return
            up.write(await reader.readexactly(size + 2))
    length = int(lowered.get("content-length", "0") or 0)
    if length:
        up.write(await reader.readexactly(length))


async def _relay_response(up: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await up.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        writer.transport.abort()
        return
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [
        ln for ln in lines[1:] if ln and ln.split(":")[0].strip().lower() not in ("connection", "keep-alive")
    ]
    kept.append("Connection: close")
    writer.write(("\r\n".join(kept) + "\r\n\r\n").encode("latin-1"))
    try:
        while data := await up.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        # The upstream died mid-body (the sandbox's drop fault): pass the death on.
        writer.transport.abort()
        return
    await writer.drain()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        dst.transport.abort()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async with _upstream(up_writer):
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@asynccontextmanager
async def _upstream(up_writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """While a connection to the target is open, requests from its port came through us."""
    sock = up_writer.get_extra_info("sockname")
    with _outgoing_lock:
        _outgoing.add((sock[0], sock[1]))
    try:
        yield
    finally:
        with _outgoing_lock:
            _outgoing.discard((sock[0], sock[1]))
        up_writer.close()
        try:
            await up_writer.wait_closed()
        except (ConnectionError, OSError):
            pass
