"""A small OpenAI-compatible chat server for tests that script what a reply streams.

The stand-in (chatmagic.sandbox) answers as the real servers do; a test that must choose each
chunk (a key echoed back, a secret split over many chunks) subclasses :class:`ChatServer` and
says what each request streams.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from chatmagic.sandbox._loop import ThreadedServer

__all__ = ["ChatServer"]


class ChatServer(ThreadedServer):
    """``POST /v1/chat/completions`` on 127.0.0.1 (a free port; :attr:`url` ends in ``/v1``),
    streaming one chunk per delta :meth:`deltas` yields, then ``finish_reason: stop``."""

    def __init__(self) -> None:
        self.url = ""

    def deltas(self, request: web.Request, body: Any) -> AsyncIterator[dict[str, str]]:
        """What the request (its JSON ``body``) streams: each a chunk's ``delta``."""
        raise NotImplementedError

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for delta in self.deltas(request, body):
            chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        return resp

    async def start(self) -> Any:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        await self._runner.cleanup()
