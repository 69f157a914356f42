"""What a server sends cannot hurt the user: leaked keys, markup, huge or hostile bodies, silence.

Every provider is run against small local servers written here for answers the stand-in
never gives: a server that echoes the API key into its errors, pastes an HTML error page,
answers 413, nests JSON 100,000 levels deep, sends lone UTF-16 surrogates, or accepts a
connection and then says nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from chatmagic.errors import HTTPStatusError, ProtocolError, ProviderError, ProviderTimeout, ServiceError
from chatmagic.providers import get_provider
from chatmagic.sandbox import Sandbox

from .conftest import SITES

PROVIDERS = (*SITES, "openai")
BIG = 2 << 20  # 2 MiB: over aiohttp's 1 MiB thresholds, for requests and bodies alike

Respond = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- a server for every family ---------------------------------------------------------


class AnySite:
    """One local server that looks enough like each family's site for a turn.

    The chat page carries AI Power's tokens, ``start_session`` hands out AI Engine's
    nonce; what the chat endpoints answer is up to the test (``respond``), told which
    family asked.
    """

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.url = ""

    def base_url(self, provider: str) -> str:
        return f"{self.url}/v1" if provider == "openai" else self.url

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text='<div data-nonce="n0nce" data-post-id="7"></div>', content_type="text/html")

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "restNonce": "rest-n0nce"})

    def _chat(self, family: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.respond(request, family)

        return handle

    async def __aenter__(self) -> AnySite:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/{tail:.*}", self._page)
        app.router.add_post("/wp-json/mwai/v1/start_session", self._session)
        app.router.add_post("/wp-admin/admin-ajax.php", self._chat("wpaicg"))
        app.router.add_post("/wp-json/mwai-ui/v1/chats/submit", self._chat("mwai"))
        app.router.add_post("/v1/chat/completions", self._chat("openai"))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


def event(family: str, piece: str) -> bytes:
    """One piece of a reply, as the family streams it."""
    obj: Any = (
        {"type": "live", "data": piece}
        if family == "mwai"
        else {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    )
    return f"data: {json.dumps(obj)}\n\n".encode()


def end(family: str, whole: str) -> bytes:
    if family == "mwai":
        final = json.dumps({"success": True, "reply": whole})
        return f"data: {json.dumps({'type': 'end', 'data': final})}\n\n".encode()
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()


async def stream(request: web.Request, *lines: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for line in lines:
        await resp.write(line)
    return resp


async def ask(site: AnySite, provider: str, messages: list[dict[str, str]], **kwargs: Any) -> list[str]:
    async with get_provider(provider)(base_url=site.base_url(provider), **kwargs) as p:
        return [chunk async for chunk in p.stream(messages)]


# -- the API key never shows, nor any piece of it -------------------------------------

# a long key (OpenAI project keys are 164 characters), in a variable whose name does not
# look secret: only the provider saying where its key is can protect it
KEY_ENV = "LOCAL_LLM"
KEY = "sk-proj-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(156))


def shows_key(text: str) -> bool:
    return any(KEY[i : i + 8] in text for i in range(len(KEY) - 7))


def chain(exc: BaseException) -> list[BaseException]:
    """The error and every exception behind it (``__cause__`` and ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


async def echo_key(request: web.Request, family: str) -> web.StreamResponse:
    """Errors that quote the Authorization header, the key placed across every cut."""
    auth = request.headers.get("Authorization", "")
    prompt = (await request.json())["messages"][-1]["content"]
    pad = "x" * int(prompt.split(":")[1])
    if prompt.startswith("400"):
        return web.json_response({"error": {"message": f"{pad} bad header {auth}"}}, status=400)
    if prompt.startswith("401"):
        return web.json_response({"detail": f"{pad} {auth} is not valid"}, status=401)
    if prompt.startswith("500-json"):
        return web.json_response({"error": {"message": f"{pad} upstream refused {auth}"}}, status=500)
    if prompt.startswith("500-text"):
        return web.Response(text=f"{pad} upstream refused {auth}", status=500)
    if prompt.startswith("500-html"):
        page = f"<html><head><title>{pad} {auth}</title></head><body>{auth}</body></html>"
        return web.Response(text=page, status=500, content_type="text/html")
    if prompt.startswith("stream"):
        error = {"error": {"message": f"{pad} no {auth}"}}
        return await stream(request, event(family, "partial "), f"data: {json.dumps(error)}\n\n".encode())
    error_line = json.dumps({"code": 500, "message": f"{pad} {auth}"})
    return await stream(request, event(family, "partial "), f"error: {error_line}\n\n".encode())


@pytest.mark.parametrize("pad", [0, 90, 250, 290])
@pytest.mark.parametrize(
    "kind", ["400", "401", "500-json", "500-text", "500-html", "stream", "llama-error-line"]
)
async def test_a_key_echoed_by_the_server_never_shows(
    monkeypatch: pytest.MonkeyPatch, kind: str, pad: int
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    async with AnySite(echo_key) as site:
        with pytest.raises(ProviderError) as info:
            await ask(site, "openai", user(f"{kind}:{pad}"), api_key_env=KEY_ENV)
    assert isinstance(info.value, (HTTPStatusError, ServiceError))
    for exc in chain(info.value):
        assert not shows_key(str(exc)), (type(exc).__name__, str(exc))
        assert not shows_key(repr(exc.args))


# -- 413: the conversation is too long --------------------------------------------------


async def too_large(request: web.Request, family: str) -> web.StreamResponse:
    return web.Response(status=413, text="Request Entity Too Large")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_413_says_the_conversation_is_too_long(provider: str) -> None:
    async with AnySite(too_large) as site:
        with pytest.raises(HTTPStatusError) as info:
            await ask(site, provider, user("a long story"))
    message = str(info.value)
    assert info.value.status == 413
    assert "too long" in message and "--new" in message and "shorten the message" in message
    assert "may be down" not in message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (413, {"error": {"message": "Payload too large", "type": "invalid_request_error"}}),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens.",
                    "code": "context_length_exceeded",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size",
                    "type": "exceed_context_size_error",
                }
            },
        ),
    ],
)
async def test_a_full_context_on_an_openai_server_says_the_same(status: int, error: dict[str, Any]) -> None:
    async def full(request: web.Request, family: str) -> web.StreamResponse:
        return web.json_response(error, status=status)

    async with AnySite(full) as site:
        with pytest.raises(HTTPStatusError, match="too long for the server or the model .*--new"):
            await ask(site, "openai", user("hi"))


# -- an HTML error page is named by its title -----------------------------------------

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
PAGES = [
    (NGINX_502, "502 Bad Gateway"),
    (
        "<!DOCTYPE html><html><body><h1>Service &amp; site down</h1><p>later</p></body></html>",
        "Service & site down",
    ),
    ("<html><body><script>var x = '<b>';</script><p>Upstream   gone</p></body></html>", "Upstream gone"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("page", "said"), PAGES, ids=["title", "h1", "text"])
async def test_an_html_error_page_is_summarized(provider: str, page: str, said: str) -> None:
    async def broken(request: web.Request, family: str) -> web.StreamResponse:
        return web.Response(status=502, text=page, content_type="text/html")

    async with AnySite(broken) as site:
        with pytest.raises(HTTPStatusError) as info:
            await ask(site, provider, user("hi"))
    message = str(info.value)
    assert "HTTP 502" in message and said in message
    assert "<" not in message and ">" not in message


@pytest.mark.parametrize("site", SITES)
async def test_the_stand_ins_503_page_is_summarized(sandbox: Sandbox, site: str) -> None:
    cls = get_provider(site)
    with pytest.raises(HTTPStatusError) as info:
        async with cls(base_url=sandbox.base_url(site)) as p:
            [c async for c in p.stream(user("[[fault:http503]]hi"))]
    assert "HTTP 503 (503 Service Unavailable)" in str(info.value)
    assert "<" not in str(info.value)


# -- bodies over 1 MiB, both ways ---------------------------------------------------


async def count_bytes(request: web.Request, family: str) -> web.StreamResponse:
    size = len(await request.read())
    text = f"got {size} bytes"
    return await stream(request, event(family, text), end(family, text))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_message_over_1_mib_is_sent(provider: str) -> None:
    async with AnySite(count_bytes) as site:
        text = "".join(await ask(site, provider, user("q" * BIG)))
    assert text.startswith("got ") and int(text.split()[1]) > BIG


async def huge(request: web.Request, family: str) -> web.StreamResponse:
    prompt = (await request.json())["messages"][-1]["content"]
    if prompt == "error":
        return web.json_response({"error": {"message": "e" * BIG}}, status=500)
    if prompt == "page":
        return web.Response(status=500, text="<html><body>" + "<" * BIG, content_type="text/html")
    if prompt == "whole":
        message = {"role": "assistant", "content": "w" * BIG}
        return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    return await stream(request, event(family, "s" * BIG), end(family, ""))


@pytest.mark.parametrize("kind", ["error", "page", "whole", "stream"])
async def test_an_answer_over_1_mib_is_read(kind: str) -> None:
    async with AnySite(huge) as site:
        started = time.monotonic()
        try:
            text = "".join(await ask(site, "openai", user(kind)))
        except HTTPStatusError as exc:
            text = str(exc)
            assert len(text) < 600  # quoted, not pasted
        assert time.monotonic() - started < 10
    if kind in ("whole", "stream"):
        assert len(text) == BIG


# -- a site that accepts and then says nothing --------------------------------------


class Silent:
    """Accepts connections, reads the request and says nothing more (after ``first``, if given).

    Notes when the client hangs up, to show a transfer given up on is ended, not left running.
    """

    def __init__(self, first: bytes = b"") -> None:
        self.first = first
        self.connections = 0
        self.closed = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await reader.read(65536)
            writer.write(self.first)
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.closed += 1

    async def __aenter__(self) -> Silent:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()
        self._server.close()
        await self._server.wait_closed()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("first", [b"", b"HTTP/1.1 100 Continue\r\n\r\n"], ids=["silent", "100-continue"])
async def test_timeout_bounds_the_wait_for_the_first_byte(provider: str, first: bytes) -> None:
    timeout = 1.0
    async with Silent(first) as silent:
        base = f"{silent.url}/v1" if provider == "openai" else silent.url
        async with get_provider(provider)(base_url=base, timeout=timeout) as p:
            started = time.monotonic()
            with pytest.raises(ProviderTimeout, match="did not answer for 1 s"):
                # a hang must fail this test, not stall the run
                await asyncio.wait_for(ask_provider(p), timeout + 10)
            waited = time.monotonic() - started
            # the transfer is ended, not left running: the site sees the connection closed
            for _ in range(40):
                if silent.closed == silent.connections:
                    break
                await asyncio.sleep(0.05)
            assert silent.connections >= 1 and silent.closed == silent.connections
    assert timeout <= waited < timeout + 3


async def ask_provider(p: Any) -> list[str]:
    return [c async for c in p.stream(user("hi"))]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stopping_before_the_site_answers_ends_the_transfer(provider: str) -> None:
    async with Silent() as silent:
        base = f"{silent.url}/v1" if provider == "openai" else silent.url
        async with get_provider(provider)(base_url=base, timeout=30) as p:
            turn = asyncio.ensure_future(ask_provider(p))
            for _ in range(100):
                if silent.connections:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # the request is sent; the head is awaited
            turn.cancel()  # the user's Stop
            with pytest.raises(asyncio.CancelledError):
                await turn
            for _ in range(40):
                if silent.closed == silent.connections:
                    break
                await asyncio.sleep(0.05)
            # within two seconds, not when curl's own 30 s limit would have fired
            assert silent.connections == 1 and silent.closed == 1


# -- JSON nested too deeply ---------------------------------------------------------


async def deep(request: web.Request, family: str) -> web.StreamResponse:
    return await stream(request, b"data: " + b"[" * 100_000 + b"\n\n")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_nested_too_deeply_is_a_protocol_error(provider: str) -> None:
    async with AnySite(deep) as site:
        with pytest.raises(ProtocolError, match="nested too deeply"):
            await ask(site, provider, user("hi"))


async def test_an_error_body_nested_too_deeply_is_still_an_http_error() -> None:
    async def deep_error(request: web.Request, family: str) -> web.StreamResponse:
        return web.Response(status=500, text="[" * 100_000, content_type="application/json")

    async with AnySite(deep_error) as site:
        with pytest.raises(HTTPStatusError, match="HTTP 500"):
            await ask(site, "openai", user("hi"))


# -- lone surrogates ----------------------------------------------------------------


async def surrogates(request: web.Request, family: str) -> web.StreamResponse:
    # json.dumps writes them as \\ud83d escapes, as a JavaScript server cutting UTF-16 would
    pieces = ["lone \ud800 high, ", "\udc00 lone low, pair cut: \ud83d", "\ude00, end \ud83d"]
    return await stream(request, *[event(family, p) for p in pieces], end(family, "".join(pieces)))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_lone_surrogates_become_replacement_characters(provider: str) -> None:
    async with AnySite(surrogates) as site:
        chunks = await ask(site, provider, user("hi"))
    for chunk in chunks:
        chunk.encode("utf-8")  # every chunk can be stored and exported
    assert "".join(chunks) == "lone \ufffd high, \ufffd lone low, pair cut: \U0001f600, end \ufffd"


async def test_the_text_kept_by_a_failed_reply_is_valid_too() -> None:
    async def cut(request: web.Request, family: str) -> web.StreamResponse:
        error = {"error": {"message": "overloaded"}}
        return await stream(
            request, event(family, "so far \ud83d"), f"data: {json.dumps(error)}\n\n".encode()
        )

    async with AnySite(cut) as site:
        with pytest.raises(ServiceError) as info:
            await ask(site, "openai", user("hi"))
    assert info.value.partial == "so far \ufffd"
