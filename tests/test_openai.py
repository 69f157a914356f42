"""The OpenAI-compatible provider and the stand-in's chat-completions API.

First the stand-in is checked against the official ``openai`` client, so that it is
known to speak the real protocol; then our provider is run against it; then the magic.
Every address is 127.0.0.1: no test ever reaches api.openai.com.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from aiohttp import web

from chatmagic._state import get_session, start_sandbox, stop_sandbox
from chatmagic.errors import (
    BotCheckError,
    ConfigurationError,
    EmptyReplyError,
    HTTPStatusError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ServiceError,
    StreamInterrupted,
)
from chatmagic.providers import get_provider, list_providers
from chatmagic.providers.openai import OpenAICompatible
from chatmagic.sandbox import ForwardProxy, Sandbox, SandboxSettings, reply_text
from chatmagic.session import ChatSession, TurnOptions

from .conftest import SITES
from .test_magics import reply, run

KEY = "sk-sandbox"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def said(text: str) -> Any:
    """A user message for the official client (its parameters are TypedDicts)."""
    return user(text)


def said_all(messages: list[dict[str, str]]) -> Any:
    return messages


def echo(text: str, earlier: int = 0) -> str:
    return reply_text("openai", text, earlier)


def chat_posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.site == "openai" and r.path.endswith("/chat/completions")]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


async def ask(
    base_url: str, messages: list[dict[str, str]], model: str | None = None, **kwargs: Any
) -> list[str]:
    async with OpenAICompatible(base_url=base_url, **kwargs) as provider:
        return [chunk async for chunk in provider.stream(messages, model)]


# -- 1. the stand-in speaks the real protocol: the official client -------------------------


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=sandbox.base_url("openai"), api_key=KEY, max_retries=0)
    try:
        yield c
    finally:
        await c.close()


def test_base_url_is_the_api_root() -> None:
    sb = Sandbox(port=1234)
    assert sb.base_url("openai") == "http://127.0.0.1:1234/openai/v1"
    assert "openai" in sb.sites


async def test_official_client_plain_completion(client: openai.AsyncOpenAI) -> None:
    done = await client.chat.completions.create(model="gpt-4o-mini", messages=said("hi"))
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-")
    assert done.model == "gpt-4o-mini"
    (choice,) = done.choices
    assert choice.message.role == "assistant" and choice.message.content == echo("hi")
    assert choice.finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == 7


async def test_official_client_sees_the_whole_conversation(client: openai.AsyncOpenAI) -> None:
    done = await client.chat.completions.create(model="gpt-4o", messages=said_all(CONVERSATION))
    assert done.choices[0].message.content == echo("What is 2+2?", 3)


async def test_official_client_streams(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="llama3.2", messages=said("one two three"), stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(pieces) > 5 and "".join(p or "" for p in pieces) == echo("one two three")
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1


async def test_official_client_stream_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=said("[[words:4]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 4
    assert all(c.usage is None for c in body)
    assert "".join(c.choices[0].delta.content or "" for c in body) == "w1 w2 w3 w4 "


@pytest.mark.parametrize("fault", ["crlf", "cr", "tiny_writes"])
async def test_official_client_reads_any_framing(client: openai.AsyncOpenAI, fault: str) -> None:
    text = "Привет, мир — ✓ ünïcödé"
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=said(f"[[fault:{fault}]][[reply]]{text}"), stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == text


async def test_official_client_lists_models(client: openai.AsyncOpenAI) -> None:
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == ["gpt-4o-mini", "gpt-4o", "llama3.2"]
    assert all(m.object == "model" for m in models)
    assert (await client.models.retrieve("llama3.2")).id == "llama3.2"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-5")


async def test_official_client_wrong_key(sandbox: Sandbox) -> None:
    async with openai.AsyncOpenAI(
        base_url=sandbox.base_url("openai"), api_key="sk-wrong-secret-0123456789", max_retries=0
    ) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="gpt-4o-mini", messages=said("hi"))
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert "Incorrect API key provided: sk-****6789" in info.value.message
    assert "wrong-secret" not in info.value.message


async def test_official_client_unknown_model(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-5", messages=said("hi"))
    assert info.value.code == "model_not_found"
    assert info.value.message.endswith("The model `gpt-5` does not exist or you do not have access to it.")


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([], "empty_array"),
        ([{"role": "bot", "content": "x"}], "invalid_value"),
        ([{"role": "user"}], "missing_required_parameter"),
    ],
)
async def test_official_client_bad_request(client: openai.AsyncOpenAI, messages: Any, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert info.value.code == code and info.value.type == "invalid_request_error"


async def test_official_client_stream_options_need_stream(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="only allowed when 'stream' is enabled"):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=said("hi"), stream_options={"include_usage": True}
        )


async def test_official_client_rate_limit(client: openai.AsyncOpenAI, sandbox: Sandbox) -> None:
    sandbox.inject("openai", "http429")
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=said("hi"))
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize(("fault", "status"), [("http500", 500), ("http503", 503)])
async def test_official_client_server_errors(
    client: openai.AsyncOpenAI, sandbox: Sandbox, fault: str, status: int
) -> None:
    sandbox.inject("openai", fault)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=said("hi"))
    assert info.value.status_code == status and info.value.type == "server_error"


async def test_official_client_error_inside_the_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=said("[[fault:service_error]]one two three four"), stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="The server had an error"):
        async for c in stream:
            seen.append(c.choices[0].delta.content or "")
    assert "".join(seen) == "[openai] You said: "


async def test_no_key_needed_when_the_setting_is_none() -> None:
    async with (
        Sandbox(settings=SandboxSettings(openai_api_key=None)) as sb,
        openai.AsyncOpenAI(base_url=sb.base_url("openai"), api_key="anything", max_retries=0) as c,
    ):
        done = await c.chat.completions.create(model="llama3.2", messages=said("hi"))
    assert done.choices[0].message.content == echo("hi")


# -- 2. our provider against the stand-in ----------------------------------------------------


def test_registry_and_models() -> None:
    cls = get_provider("OpenAI")
    assert cls is OpenAICompatible and cls.label == "OpenAI"
    assert cls.get_model("") == cls.get_model(None) == "gpt-4o-mini"
    # the server has its own list: any name goes through
    assert cls.get_model("llama3.2") == "llama3.2"
    assert cls.get_model("qwen2.5-coder:7b-instruct") == "qwen2.5-coder:7b-instruct"
    row = next(r for r in list_providers() if r["name"] == "openai")
    assert row["system"] and row["history"] and "gpt-4o" in row["models"]


async def test_plain_turn(sandbox: Sandbox, key: str) -> None:
    chunks = await ask(sandbox.base_url("openai"), user("Hello, stand-in"))
    assert "".join(chunks) == echo("Hello, stand-in")
    (req,) = chat_posts(sandbox)
    assert req.path == "/openai/v1/chat/completions"
    assert req.json == {
        "model": "gpt-4o-mini",
        "messages": user("Hello, stand-in"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["accept"] == "text/event-stream"


async def test_multi_turn_sends_the_message_list(sandbox: Sandbox, key: str) -> None:
    chunks = await ask(sandbox.base_url("openai"), CONVERSATION)
    assert "".join(chunks) == echo("What is 2+2?", 3)
    (req,) = chat_posts(sandbox)
    assert req.json["messages"] == CONVERSATION


async def test_streams_in_several_chunks(sandbox: Sandbox, key: str) -> None:
    chunks = await ask(sandbox.base_url("openai"), user("[[words:50]]"))
    assert len(chunks) == 50 and chunks[0] == "w1 " and chunks[-1] == "w50 "


async def test_model_passes_through(sandbox: Sandbox, key: str) -> None:
    assert "".join(await ask(sandbox.base_url("openai"), user("hi"), "llama3.2")) == echo("hi")
    assert chat_posts(sandbox)[-1].json["model"] == "llama3.2"


async def test_unknown_model_names_the_servers_models(sandbox: Sandbox, key: str) -> None:
    with pytest.raises(HTTPStatusError) as info:
        await ask(sandbox.base_url("openai"), user("hi"), "mistral")
    assert info.value.status == 404
    assert "the server has no model 'mistral'" in str(info.value)
    assert "Its models: gpt-4o, gpt-4o-mini, llama3.2." in str(info.value)


async def test_one_session_across_turns(sandbox: Sandbox, key: str) -> None:
    async with OpenAICompatible(base_url=sandbox.base_url("openai")) as p:
        first = "".join([c async for c in p.stream(user("a"))])
        session = p._http._session
        second = "".join([c async for c in p.stream(user("b"))])
        assert p._http._session is session and not session.closed
        assert (first, second) == (echo("a"), echo("b"))
        assert await p.list_models() == ["gpt-4o", "gpt-4o-mini", "llama3.2"]
    assert session.closed


async def test_the_one_shot_class_method(sandbox: Sandbox, key: str) -> None:
    chunks = [
        c
        async for c in OpenAICompatible.create_async_generator(
            "", user("hey"), base_url=sandbox.base_url("openai")
        )
    ]
    assert "".join(chunks) == echo("hey")


# -- the key ---------------------------------------------------------------------------------


async def test_key_from_another_variable(
    sandbox: Sandbox, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    assert "".join(await ask(sandbox.base_url("openai"), user("hi"), api_key_env="MY_LLM_KEY")) == echo("hi")
    assert chat_posts(sandbox)[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_key_set_after_the_first_turn_is_used(
    sandbox: Sandbox, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with OpenAICompatible(base_url=sandbox.base_url("openai")) as p:
        with pytest.raises(HTTPStatusError, match="wants an API key"):
            [c async for c in p.stream(user("hi"))]
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        assert "".join([c async for c in p.stream(user("hi"))]) == echo("hi")


@pytest.mark.parametrize("env", ["OPENAI_API_KEY", "LOCAL_KEY"])
async def test_missing_key_when_the_server_wants_one(sandbox: Sandbox, no_key: None, env: str) -> None:
    with pytest.raises(HTTPStatusError) as info:
        await ask(sandbox.base_url("openai"), user("hi"), api_key_env=env)
    assert info.value.status == 401
    assert "the server wants an API key (HTTP 401: You didn't provide an API key." in str(info.value)
    assert f"set {env} in the environment" in str(info.value)
    assert "authorization" not in chat_posts(sandbox)[-1].headers


async def test_a_server_that_needs_no_key(no_key: None) -> None:
    async with Sandbox(settings=SandboxSettings(openai_api_key=None)) as sb:
        assert "".join(await ask(sb.base_url("openai"), user("hi"))) == echo("hi")
        assert "authorization" not in chat_posts(sb)[-1].headers


async def test_wrong_key_is_never_shown(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-wrong-secret-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with pytest.raises(HTTPStatusError) as info:
        await ask(sandbox.base_url("openai"), user("hi"))
    message = str(info.value)
    assert (
        "the server refused the API key in OPENAI_API_KEY (HTTP 401: Incorrect API key provided:" in message
    )
    assert secret not in message and "wrong-secret" not in message
    assert secret not in repr(info.value.args) and secret not in info.value.detail


async def test_missing_key_for_openai_itself_fails_before_any_request(no_key: None) -> None:
    # the proxy forwards to 127.0.0.1 only: even a broken check could not reach api.openai.com
    async with ForwardProxy() as proxy:
        for base in (None, "https://api.openai.com/v1/"):
            provider = OpenAICompatible(base_url=base, proxy=proxy.url)
            assert provider.is_official
            with pytest.raises(
                ConfigurationError, match="no API key. Set the environment variable OPENAI_API_KEY"
            ):
                async with provider:
                    [c async for c in provider.stream(user("hi"))]
            with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
                async with provider:
                    await provider.list_models()
        assert proxy.requests == []


async def test_a_key_with_a_line_break_is_refused_before_sending(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one\nsk-two")
    with pytest.raises(ConfigurationError, match="not an API key"):
        await ask(sandbox.base_url("openai"), user("hi"))
    assert chat_posts(sandbox) == []


# -- odd servers: what the stand-in does not do ------------------------------------------------


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """A tiny server for answers the stand-in never gives: echoed keys, other error shapes."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        auth = request.headers.get("Authorization", "")
        if prompt == "echo-key-400":
            return web.json_response({"error": {"message": f"bad header {auth!r}"}}, status=400)
        if prompt == "echo-key-stream":
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            chunk = {"choices": [{"index": 0, "delta": {"content": "partial "}, "finish_reason": None}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await resp.write(f"data: {json.dumps({'error': {'message': f'no {auth}'}})}\n\n".encode())
            return resp
        if prompt == "vllm-404":
            return web.json_response(
                {
                    "object": "error",
                    "message": "The model `x` does not exist.",
                    "type": "NotFoundError",
                    "code": 404,
                },
                status=404,
            )
        if prompt == "ollama-404":
            return web.json_response(
                {"error": {"message": 'model "x" not found, try pulling it first', "type": "api_error"}},
                status=404,
            )
        if prompt == "llama.cpp-error":
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b'error: {"code":500,"message":"the context is full","type":"server_error"}\n\n')
            return resp
        if prompt == "quota":
            return web.json_response(
                {"error": {"message": "You exceeded your current quota.", "code": "insufficient_quota"}},
                status=429,
            )
        if prompt == "refusal":
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
        # a server that ignores "stream": one chat.completion object
        message = {"role": "assistant", "content": f"whole: {prompt}"}
        return web.json_response(
            {
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "x-1", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_a_server_that_ignores_stream(odd_server: str, key: str) -> None:
    assert await ask(odd_server, user("hi")) == ["whole: hi"]


async def test_a_key_echoed_by_the_server_is_redacted(
    odd_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-very-secret-98765"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with pytest.raises(
        HTTPStatusError, match=r"HTTP 400: bad header 'Bearer \[redacted OPENAI_API_KEY\]'"
    ) as info:
        await ask(odd_server, user("echo-key-400"))
    assert secret not in str(info.value)
    with pytest.raises(ServiceError, match=r"no Bearer \[redacted OPENAI_API_KEY\]") as err:
        await ask(odd_server, user("echo-key-stream"))
    assert secret not in str(err.value) and err.value.partial == "partial "


@pytest.mark.parametrize(
    ("prompt", "error", "match"),
    [
        (
            "vllm-404",
            HTTPStatusError,
            "has no model 'gpt-4o-mini' .*The model `x` does not exist.*Its models: x-1",
        ),
        ("ollama-404", HTTPStatusError, "has no model 'gpt-4o-mini' .*try pulling it first"),
        ("llama.cpp-error", ServiceError, "reported an error: the context is full"),
        ("quota", ServiceError, "no quota left"),
        ("refusal", ServiceError, "the model refused: I can't help with that."),
    ],
)
async def test_other_servers_error_shapes(
    odd_server: str, key: str, prompt: str, error: type[ProviderError], match: str
) -> None:
    with pytest.raises(error, match=match):
        await ask(odd_server, user(prompt))


async def test_a_base_url_without_the_version(sandbox: Sandbox, key: str) -> None:
    with pytest.raises(HTTPStatusError, match="usually end in /v1"):
        await ask(f"{sandbox.url}/openai", user("hi"))


# -- faults ----------------------------------------------------------------------------------

FAULTS: list[tuple[str, type[ProviderError], str]] = [
    ("http500", HTTPStatusError, "HTTP 500: The server had an error while processing your request"),
    ("http503", HTTPStatusError, "HTTP 503: The engine is currently overloaded"),
    ("service_error", ServiceError, "reported an error: The server had an error"),
    ("broken_line", ProtocolError, "broken JSON"),
    ("missing_field", ProtocolError, "a chunk without 'choices'"),
    ("wrong_content_type", ProtocolError, "web page"),
    ("cloudflare", BotCheckError, "bot check \\(Cloudflare"),
    ("empty", EmptyReplyError, "empty"),
]


@pytest.mark.parametrize(("fault", "error", "match"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_gives_its_error(
    sandbox: Sandbox, key: str, fault: str, error: type[ProviderError], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        await ask(sandbox.base_url("openai"), user(f"[[fault:{fault}]]one two three four"))
    assert str(info.value).startswith("OpenAI: ")
    if fault in ("service_error", "broken_line"):
        assert info.value.partial.startswith("[openai] ")


async def test_faults_by_path_prefix_and_header(sandbox: Sandbox, key: str) -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 503"):
        await ask(f"{sandbox.url}/_fault/http503/openai/v1", user("hi"))
    with pytest.raises(HTTPStatusError, match="HTTP 500"):
        async with OpenAICompatible(base_url=f"{sandbox.url}/_fault/http500/openai/v1") as p:
            await p.list_models()


async def test_http429_carries_retry_after(sandbox: Sandbox, key: str) -> None:
    sandbox.inject("openai", "http429")
    with pytest.raises(HTTPStatusError, match="Rate limit reached for gpt-4o-mini") as info:
        await ask(sandbox.base_url("openai"), user("hi"))
    assert info.value.status == 429 and info.value.retry_after == 1


async def test_connection_lost_mid_stream_keeps_the_text(sandbox: Sandbox, key: str) -> None:
    with pytest.raises(StreamInterrupted, match="cut in the middle of the reply") as info:
        await ask(sandbox.base_url("openai"), user("[[fault:drop]]one two three four five six"))
    assert info.value.partial.startswith("[openai] You said:")


async def test_a_stream_without_done_after_finish_is_complete(sandbox: Sandbox, key: str) -> None:
    assert "".join(await ask(sandbox.base_url("openai"), user("[[fault:no_end]]bye"))) == echo("bye")


async def test_stalled_stream_times_out(key: str) -> None:
    async with Sandbox(settings=SandboxSettings(stall_seconds=5)) as sb:
        with pytest.raises(ProviderTimeout, match="for 0.5 s"):
            await ask(sb.base_url("openai"), user("[[fault:stall]]one two three"), timeout=0.5)


async def test_slow_first_byte_and_slow_stream_are_fine(key: str) -> None:
    async with Sandbox(settings=SandboxSettings(slow_seconds=0.6, slow_chunk_seconds=0.02)) as sb:
        text = "".join(
            await ask(sb.base_url("openai"), user("[[fault:slow_first_byte,slow_stream]]a b c"), timeout=5)
        )
    assert text == echo("a b c")


@pytest.mark.parametrize("fault", ["crlf", "cr", "tiny_writes"])
async def test_line_endings_and_reads_cut_anywhere(sandbox: Sandbox, key: str, fault: str) -> None:
    text = "Привет, мир — ✓ ünïcödé\u2028next"
    assert "".join(await ask(sandbox.base_url("openai"), user(f"[[fault:{fault}]][[reply]]{text}"))) == text


async def test_very_long_line(sandbox: Sandbox, key: str) -> None:
    text = "".join(await ask(sandbox.base_url("openai"), user("[[fault:long_line]]big")))
    assert text.count("x") >= 204800


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_nothing_listening(key: str) -> None:
    with pytest.raises(ProviderConnectionError, match="could not connect"):
        await ask(f"http://127.0.0.1:{_closed_port()}/v1", user("hi"), timeout=3)


async def test_through_the_proxy(sandbox: Sandbox, key: str) -> None:
    async with ForwardProxy(username="ann", password="s3cret-pw") as proxy:
        host = proxy.url.split("://", 1)[1]
        text = "".join(
            await ask(sandbox.base_url("openai"), user("via proxy"), proxy=f"http://ann:s3cret-pw@{host}")
        )
        assert text == echo("via proxy")
        assert chat_posts(sandbox)[-1].via_proxy
        assert any(target.endswith("/openai/v1/chat/completions") for _, target in proxy.requests)
        with pytest.raises(ProviderError) as info:
            await ask(sandbox.base_url("openai"), user("hi"), proxy=f"http://ann:wrong-pw@{host}")
        assert "wrong-pw" not in str(info.value) and KEY not in str(info.value)


# -- 3. through the magic --------------------------------------------------------------------


@pytest.fixture
def openai_magic(ip: Any, fresh: None, sandbox_thread: Sandbox, key: str) -> Iterator[None]:
    urls = {site: sandbox_thread.base_url(site) for site in SITES}
    before = dict(ip.magics_manager.registry["ChatMagics"].base_urls)
    ip.run_line_magic(
        "config", f"ChatMagics.base_urls = {{**{urls!r}, 'openai': {sandbox_thread.base_url('openai')!r}}}"
    )
    yield
    # what the shell had (every provider on the stand-in, openai included): a later test that
    # uses openai without this fixture must not find it pointed at the real API
    ip.run_line_magic("config", f"ChatMagics.base_urls = {before!r}")


@pytest.mark.usefixtures("openai_magic")
def test_magic_turn(ip: Any, sandbox_thread: Sandbox) -> None:
    text = reply(ip, "%%chat -p openai -m llama3.2\nhello")
    assert text.startswith(echo("hello"))
    assert "openai · llama3.2" in text
    text = reply(ip, "%%chat\nand again")  # the conversation keeps its provider and model
    assert text.startswith(echo("and again", 2))
    posted = chat_posts(sandbox_thread)
    assert posted[-1].json["model"] == "llama3.2"
    assert [m["role"] for m in posted[-1].json["messages"]] == ["user", "assistant", "user"]
    assert get_session().conversation().exchanges[0].provider == "openai"


@pytest.mark.usefixtures("openai_magic")
def test_magic_fallback_after_a_server_error(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.run_line_magic("config", "ChatMagics.retries = 0")
    sandbox_thread.inject("openai", "http500")
    text = reply(ip, "%%chat -p openai,opchatgpts\nhello")
    assert text.startswith("[opchatgpts] You said: hello")
    assert "(after openai failed)" in text


@pytest.mark.usefixtures("openai_magic")
def test_magic_error_is_one_line_without_the_key(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-0123456789")
    result, io = run(ip, "%%chat -p openai\nhello")
    assert isinstance(result.error_in_exec, HTTPStatusError)
    (line,) = [x for x in io.stdout.splitlines() if x.strip()]
    assert line.startswith("HTTPStatusError: OpenAI: the server refused the API key in OPENAI_API_KEY")
    assert "wrong-secret" not in io.stdout


def test_chat_sandbox_points_openai_at_the_stand_in_without_a_key(no_key: None) -> None:
    session = ChatSession()
    try:
        start_sandbox(session)
        assert (session.base_url_for("openai") or "").endswith("/openai/v1")
        turn = session.send("hello", options=TurnOptions(provider="openai", model="llama3.2"))
        assert turn.result(timeout=30) == echo("hello")
    finally:
        stop_sandbox(session)
