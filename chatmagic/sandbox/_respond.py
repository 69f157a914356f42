"""Writing answers: JSON bodies and event streams, bent by the request's faults.

Both families share the ways a body can go wrong on the wire (cut, stalled,
dribbled in tiny writes, odd line endings), so they live here once; the family
modules only decide what the pieces and end markers are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._state import SandboxSettings

__all__ = ["Ctx", "dumps", "front_door", "send_json", "send_text", "stream_events"]

JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream; charset=UTF-8"
HTML_TYPE = "text/html; charset=UTF-8"

CLOUDFLARE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><div class="main-wrapper"><h1>Checking if the site connection is secure</h1>
<noscript>Enable JavaScript and cookies to continue</noscript></div>
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1"></script></body></html>"""

MAINTENANCE_PAGE = """<!DOCTYPE html><html><head><title>Briefly unavailable for scheduled maintenance</title>
</head><body><p>Briefly unavailable for scheduled maintenance. Check back in a minute.</p></body></html>"""


def dumps(obj: Any) -> str:
    # Raw UTF-8 (not \\u escapes) so tiny_writes really cut inside characters.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Ctx:
    """One chat (or page) request as the handlers see it."""

    request: web.Request
    site: str
    faults: set[str]
    settings: SandboxSettings
    delay: float | None = None

    def has(self, fault: str) -> bool:
        return fault in self.faults


def send_text(
    status: int,
    text: str,
    content_type: str = "text/plain; charset=UTF-8",
    headers: dict[str, str] | None = None,
) -> web.Response:
    h = {"Content-Type": content_type, **(headers or {})}
    return web.Response(status=status, body=text.encode(), headers=h)


async def front_door(ctx: Ctx, *, chat: bool) -> web.StreamResponse | None:
    """Faults that answer before the site's code runs (CDN, web server, load)."""
    if ctx.has("slow_first_byte"):
        await asyncio.sleep(ctx.settings.slow_seconds)
    if ctx.has("cloudflare"):
        return send_text(
            403, CLOUDFLARE_PAGE, HTML_TYPE, {"cf-mitigated": "challenge", "Server": "cloudflare"}
        )
    if ctx.has("http500"):
        return send_text(500, "<html><body><h1>500 Internal Server Error</h1></body></html>", HTML_TYPE)
    if ctx.has("http503"):
        return send_text(503, "<html><body><h1>503 Service Unavailable</h1></body></html>", HTML_TYPE)
    if ctx.has("http429"):
        body = dumps({"code": "too_many_requests", "message": "Too many requests, slow down."})
        return send_text(429, body, JSON_TYPE, {"Retry-After": "1"})
    if chat and ctx.has("wrong_content_type"):
        return send_text(200, MAINTENANCE_PAGE, HTML_TYPE)
    return None


class _Writer:
    """Writes to a prepared response, honouring tiny_writes."""

    def __init__(self, ctx: Ctx, resp: web.StreamResponse) -> None:
        self.ctx = ctx
        self.resp = resp

    async def write(self, data: bytes) -> None:
        s = self.ctx.settings
        if not self.ctx.has("tiny_writes"):
            await self.resp.write(data)
            return
        size = max(1, s.tiny_write_size)
        for i in range(0, len(data), size):
            await self.resp.write(data[i : i + size])
            # A pause lets each write leave as its own packet instead of
            # being coalesced with the next one by the kernel.
            await asyncio.sleep(s.tiny_write_pause)

    def abort(self) -> None:
        # Abort (RST), not close: the client must see the connection die mid-body.
        transport = self.ctx.request.transport
        if transport is not None:
            transport.abort()


async def send_json(ctx: Ctx, obj: Any, status: int = 200) -> web.StreamResponse:
    """One JSON answer; broken_line, drop, stall and tiny_writes bend it."""
    body = dumps(obj).encode()
    resp = web.StreamResponse(status=status, headers={"Content-Type": JSON_TYPE})
    if ctx.has("broken_line"):
        body = body[: max(1, len(body) // 2)]
    # Content-Length always covers the whole body, so a cut is a protocol error.
    resp.content_length = len(body)
    await resp.prepare(ctx.request)
    w = _Writer(ctx, resp)
    if ctx.has("drop"):
        await w.write(body[: len(body) // 2])
        w.abort()
        return resp
    if ctx.has("stall"):
        await w.write(body[: min(len(body) // 2, 16)])
        await asyncio.sleep(ctx.settings.stall_seconds)
        w.abort()
        return resp
    await w.write(body)
    await resp.write_eof()
    return resp


def _eol(ctx: Ctx) -> str:
    if ctx.has("crlf"):
        return "\r\n"
    if ctx.has("cr"):
        return "\r"
    return "\n"


async def stream_events(
    ctx: Ctx,
    pieces: Sequence[str],
    piece_line: Callable[[str], str],
    *,
    end_lines: Sequence[str],
    bad_event: str,
    plain_tail: str | None = None,
) -> web.StreamResponse:
    """An event stream: one ``data:`` event per piece, then the end lines.

    ``bad_event`` is the family's event missing its required field
    (missing_field); ``plain_tail`` is written without the blank separator line
    (a final plain JSON object).
    """
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": SSE_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    await resp.prepare(ctx.request)
    w = _Writer(ctx, resp)
    eol = _eol(ctx)

    async def event(line: str) -> None:
        # One whole event per write: the seed-era clients decode each read alone.
        await w.write((line + eol + eol).encode())

    pause = (
        ctx.delay
        if ctx.delay is not None
        else (ctx.settings.slow_chunk_seconds if ctx.has("slow_stream") else 0.0)
    )

    if ctx.has("drop"):
        for piece in pieces[: max(2, len(pieces) // 2)]:
            await event(piece_line(piece))
        w.abort()
        return resp
    if ctx.has("stall"):
        if pieces:
            await event(piece_line(pieces[0]))
        await asyncio.sleep(ctx.settings.stall_seconds)
        w.abort()
        return resp

    broken_at = min(2, len(pieces))
    for i, piece in enumerate(pieces):
        if i and pause:
            await asyncio.sleep(pause)
        if i == broken_at and ctx.has("broken_line"):
            await event("data: {not json")
        await event(piece_line(piece))
        if i == 0 and ctx.has("missing_field"):
            await event(bad_event)
    if not pieces and ctx.has("missing_field"):
        await event(bad_event)
    if ctx.has("broken_line") and broken_at >= len(pieces):
        await event("data: {not json")
    for line in end_lines:
        await event(line)
    if plain_tail is not None:
        await w.write((plain_tail + eol).encode())
    await resp.write_eof()
    return resp
