"""The five providers against the local stand-in: turns, history, models, tokens, faults."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

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
    TokenRefusedError,
    UnknownModelError,
    UnknownProviderError,
)
from chatmagic.providers import get_provider, list_providers, provider_names
from chatmagic.providers.chatgptes import INSTRUCTION
from chatmagic.sandbox import ForwardProxy, Sandbox, SandboxSettings

from .conftest import SITES

FAMILY_A = ("chatgptt", "chatgptes", "chatgptfree")
STREAMING = ("chatgptfree", "chatgpt4online", "opchatgpts")

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
]
FORMATTED = "System: Be brief.\nUser: Hi there\nAssistant: Hello!\nUser: What is 2+2?\nAssistant:"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def ask(sb: Sandbox, site: str, messages: list[dict[str, str]], **kwargs: Any) -> list[str]:
    cls = get_provider(site)
    async with cls(base_url=sb.base_url(site), **kwargs) as provider:
        return [chunk async for chunk in provider.stream(messages, kwargs.pop("model", None))]


def chat_requests(sb: Sandbox, site: str) -> list[Any]:
    return [r for r in sb.requests if r.site == site and r.method == "POST" and "start_session" not in r.path]


# -- registry and models ---------------------------------------------------------------


def test_registry_is_case_insensitive_and_lists_known_names() -> None:
    assert provider_names() == sorted((*SITES, "openai"))
    assert get_provider("ChatGptt").label == "ChatGptt"
    with pytest.raises(UnknownProviderError, match="Known providers: chatgpt4online, chatgptes"):
        get_provider("bard")
    rows = {r["name"]: r for r in list_providers()}
    assert rows["chatgptfree"]["aliases"] == {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    assert rows["chatgptes"]["system"] is False


def test_model_selection() -> None:
    cls = get_provider("chatgptfree")
    assert cls.get_model("") == cls.get_model(None) == "gpt-4o-mini-2024-07-18"
    assert cls.get_model("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert get_provider("chatgptt").get_model("gpt-4") == "gpt-4"
    with pytest.raises(UnknownModelError, match="Choose one of: gpt-4, gpt-4o, gpt-4o-mini"):
        get_provider("chatgptt").get_model("claude")


async def test_unknown_model_fails_before_any_request(sandbox: Sandbox) -> None:
    with pytest.raises(UnknownModelError):
        await ask(sandbox, "opchatgpts", user("hi"), model="gpt-5")
    assert sandbox.requests == []


async def test_bad_messages_are_a_clear_error(sandbox: Sandbox) -> None:
    with pytest.raises(ConfigurationError, match="no user message"):
        await ask(sandbox, "chatgptt", [{"role": "system", "content": "x"}])
    with pytest.raises(ConfigurationError, match="must be a dict with 'role'"):
        await ask(sandbox, "chatgptt", [{"role": "bot", "content": "x"}])


# -- turns -----------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
async def test_plain_turn(sandbox: Sandbox, site: str) -> None:
    chunks = await ask(sandbox, site, user("Hello, stand-in"))
    assert "".join(chunks) == f"[{site}] You said: Hello, stand-in\n\nEarlier messages: 0."


@pytest.mark.parametrize("site", SITES)
async def test_multi_turn_history_is_formatted_exactly(sandbox: Sandbox, site: str) -> None:
    chunks = await ask(sandbox, site, CONVERSATION)
    assert "".join(chunks) == f"[{site}] You said: What is 2+2?\n\nEarlier messages: 3."
    (req,) = chat_requests(sandbox, site)
    if site == "opchatgpts":
        assert req.json["messages"] == CONVERSATION
        assert req.json["newMessage"] == "What is 2+2?"
    elif site == "chatgpt4online":
        assert req.json == {"botId": "default", "newMessage": FORMATTED, "stream": True}
    elif site == "chatgptes":
        assert req.form["message"] == f"{INSTRUCTION} {FORMATTED}"
        assert json.loads(req.form["wpaicg_chat_history"]) == [f"Human: {FORMATTED}"]
    else:
        assert req.form["message"] == FORMATTED


async def test_chatgptt_sends_history_as_human_and_ai_lines(sandbox: Sandbox) -> None:
    await ask(sandbox, "chatgptt", CONVERSATION)
    (req,) = chat_requests(sandbox, "chatgptt")
    assert json.loads(req.form["wpaicg_chat_history"]) == [
        "System: Be brief.",
        "Human: Hi there",
        "AI: Hello!",
    ]
    assert req.form["action"] == "wpaicg_chat_shortcode_message"
    assert req.form["bot_id"] == "0" and req.form["chatbot_identity"] == "shortcode"
    assert len(req.form["wpaicg_chat_client_id"]) == 10


async def test_chatgptfree_sends_only_the_required_fields(sandbox: Sandbox) -> None:
    await ask(sandbox, "chatgptfree", user("hi"))
    (req,) = chat_requests(sandbox, "chatgptfree")
    assert set(req.form) == {"_wpnonce", "post_id", "url", "action", "message", "bot_id"}


@pytest.mark.parametrize("site", STREAMING)
async def test_streams_in_several_chunks(sandbox: Sandbox, site: str) -> None:
    chunks = await ask(sandbox, site, user("one two three four five"))
    assert len(chunks) > 5
    assert "".join(chunks).startswith(f"[{site}] You said: one two")


@pytest.mark.parametrize("site", ("chatgptt", "chatgptes"))
async def test_json_sites_also_read_a_stream_when_the_site_streams(site: str) -> None:
    async with Sandbox(settings=SandboxSettings(stream_sites={site})) as sb:
        chunks = await ask(sb, site, user("[[words:50]]"))
    assert len(chunks) == 50 and chunks[0] == "w1 " and chunks[-1].strip() == "w50"


@pytest.mark.parametrize("site", SITES)
async def test_the_one_shot_class_method_streams_and_closes(sandbox: Sandbox, site: str) -> None:
    cls = get_provider(site)
    chunks = [c async for c in cls.create_async_generator("", user("hey"), base_url=sandbox.base_url(site))]
    assert "".join(chunks).endswith("Earlier messages: 0.")


# -- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("site", STREAMING)
@pytest.mark.parametrize("fault", ["crlf", "cr", "tiny_writes"])
async def test_line_endings_and_reads_cut_anywhere(sandbox: Sandbox, site: str, fault: str) -> None:
    text = "Привет, мир — ✓ ünïcödé"
    chunks = await ask(sandbox, site, user(f"[[fault:{fault}]][[reply]]{text}"))
    assert "".join(chunks) == text


@pytest.mark.parametrize("site", SITES)
async def test_very_long_line(sandbox: Sandbox, site: str) -> None:
    text = "".join(await ask(sandbox, site, user("[[fault:long_line]]big")))
    assert text.count("x") >= 204800


@pytest.mark.parametrize("site", ("chatgptfree", "chatgpt4online", "opchatgpts"))
async def test_stream_that_ends_with_a_plain_json_answer(sandbox: Sandbox, site: str) -> None:
    text = "".join(await ask(sandbox, site, user("[[fault:no_end]]bye")))
    assert text == f"[{site}] You said: bye\n\nEarlier messages: 0."


# -- tokens ----------------------------------------------------------------------------


def token_fetches(sb: Sandbox, site: str) -> int:
    return sum(1 for r in sb.requests if r.site == site and (r.method == "GET" or "start_session" in r.path))


@pytest.mark.parametrize("site", ("chatgptt", "chatgptes", "chatgptfree", "chatgpt4online"))
async def test_tokens_are_reused_and_fetched_again_once_when_refused(sandbox: Sandbox, site: str) -> None:
    cls = get_provider(site)
    async with cls(base_url=sandbox.base_url(site)) as provider:
        for _ in range(2):
            assert "".join([c async for c in provider.stream(user("a"))]).endswith("0.")
        assert token_fetches(sandbox, site) == 1
        sandbox.expire_tokens()
        text = "".join([c async for c in provider.stream(user("after expiry"))])
        assert "after expiry" in text
        assert token_fetches(sandbox, site) == 2
        assert len(chat_requests(sandbox, site)) == 4  # the refused one was sent again


@pytest.mark.parametrize("site", ("chatgptt", "chatgptfree", "chatgpt4online"))
async def test_token_refused_twice_is_reported(sandbox: Sandbox, site: str) -> None:
    sandbox.inject(site, "bad_token", times=2)
    with pytest.raises(TokenRefusedError, match="refused its security token"):
        await ask(sandbox, site, user("hi"))


async def test_chatgptes_falls_back_when_the_page_has_no_tokens(sandbox: Sandbox) -> None:
    cls = get_provider("chatgptes")
    with pytest.raises(TokenRefusedError, match="fallback was refused"):
        async with cls(base_url=f"{sandbox.url}/_fault/no_tokens/chatgptes") as p:
            [c async for c in p.stream(user("hi"))]
    posted = chat_requests(sandbox, "chatgptes")
    assert posted and posted[-1].form["post_id"] == "106"


@pytest.mark.parametrize("site", ("chatgptt", "chatgptfree"))
async def test_missing_tokens_are_an_error(sandbox: Sandbox, site: str) -> None:
    cls = get_provider(site)
    with pytest.raises(ProtocolError, match="chat page has no nonce and post id"):
        async with cls(base_url=f"{sandbox.url}/_fault/no_tokens/{site}") as p:
            [c async for c in p.stream(user("hi"))]


# -- faults ----------------------------------------------------------------------------

FAULTS: list[tuple[str, type[ProviderError], str]] = [
    ("http500", HTTPStatusError, "HTTP 500"),
    ("http503", HTTPStatusError, "HTTP 503"),
    ("cloudflare", BotCheckError, "bot check \\(Cloudflare"),
    ("service_error", ServiceError, "Missing API Setting"),
    ("broken_line", ProtocolError, "protocol|broken JSON"),
    ("wrong_content_type", ProtocolError, "web page"),
    ("missing_field", ProtocolError, "protocol"),
    ("empty", EmptyReplyError, "empty"),
]


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize(("fault", "error", "match"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_gives_its_error(
    sandbox: Sandbox, site: str, fault: str, error: type[ProviderError], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        await ask(sandbox, site, user(f"[[fault:{fault}]]hi"))
    assert info.value.provider == get_provider(site).label
    assert str(info.value).startswith(get_provider(site).label + ": ")


@pytest.mark.parametrize("site", SITES)
async def test_http429_carries_retry_after(sandbox: Sandbox, site: str) -> None:
    with pytest.raises(HTTPStatusError) as info:
        await ask(sandbox, site, user("[[fault:http429]]hi"))
    assert info.value.status == 429 and info.value.retry_after == 1


@pytest.mark.parametrize("site", ("chatgptt", "chatgptes", "chatgptfree"))
async def test_consent_refusal(sandbox: Sandbox, site: str) -> None:
    """One rule, whole or streamed (chatgptfree streams it): the refusal is an error, and
    not a word of it reaches the reply."""
    got: list[str] = []
    with pytest.raises(ServiceError, match="consent"):
        async with get_provider(site)(base_url=sandbox.base_url(site)) as p:
            async for chunk in p.stream(user("[[fault:consent]]hi")):
                got.append(chunk)
    assert got == []


@pytest.mark.parametrize("site", ("chatgptt", "chatgptfree"))
async def test_a_reply_that_begins_like_the_refusal_is_a_reply(sandbox: Sandbox, site: str) -> None:
    text = "Du musst das Kästchen nicht anklicken, sagt die Seite."
    assert "".join(await ask(sandbox, site, user(f"[[reply]]{text}"))) == text


@pytest.mark.parametrize("site", SITES)
async def test_bot_check_on_the_page_itself(sandbox: Sandbox, site: str) -> None:
    cls = get_provider(site)
    with pytest.raises(BotCheckError, match="Try --proxy"):
        async with cls(base_url=f"{sandbox.url}/_fault/cloudflare/{site}") as p:
            [c async for c in p.stream(user("hi"))]


@pytest.mark.parametrize("site", SITES)
async def test_connection_lost_mid_stream_keeps_the_text(sandbox: Sandbox, site: str) -> None:
    with pytest.raises(StreamInterrupted, match="cut in the middle of the reply") as info:
        await ask(sandbox, site, user("[[fault:drop]]one two three four five six"))
    # what happened and what to do; what became of the text is for the display to say
    assert (
        str(info.value)
        == f"{info.value.provider}: the connection was cut in the middle of the reply. Run the cell again to retry."
    )
    assert "Error" not in str(info.value)  # no library's internals (TransferEncodingError: 400, ...)
    assert "kept" not in str(info.value)
    if site in STREAMING:
        assert info.value.partial.startswith(f"[{site}] ")


@pytest.mark.parametrize("site", SITES)
async def test_stalled_stream_times_out(site: str) -> None:
    async with Sandbox(settings=SandboxSettings(stall_seconds=5)) as sb:
        with pytest.raises(ProviderTimeout, match="for 0.5 s"):
            await ask(sb, site, user("[[fault:stall]]one two three"), timeout=0.5)


@pytest.mark.parametrize("site", SITES)
async def test_slow_first_byte_and_slow_stream_are_fine(site: str) -> None:
    settings = SandboxSettings(slow_seconds=0.6, slow_chunk_seconds=0.02)
    async with Sandbox(settings=settings) as sb:
        text = "".join(await ask(sb, site, user("[[fault:slow_first_byte,slow_stream]]a b c"), timeout=5))
    assert text.endswith("Earlier messages: 0.")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("site", SITES)
async def test_nothing_listening(site: str) -> None:
    cls = get_provider(site)
    with pytest.raises(ProviderConnectionError, match="could not connect"):
        async with cls(base_url=f"http://127.0.0.1:{_closed_port()}/{site}", timeout=3) as p:
            [c async for c in p.stream(user("hi"))]


# -- proxy -----------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
async def test_every_request_goes_through_the_proxy(sandbox: Sandbox, site: str) -> None:
    async with ForwardProxy() as proxy:
        text = "".join(await ask(sandbox, site, user("via proxy"), proxy=proxy.url))
        assert "via proxy" in text
        site_requests = [r for r in sandbox.requests if r.site == site]
        assert len(proxy.requests) >= len(site_requests) >= 1
        assert all(f"/{site}" in target for _, target in proxy.requests)


@pytest.mark.parametrize("site", SITES)
async def test_proxy_credentials_work_and_never_show_in_errors(sandbox: Sandbox, site: str) -> None:
    async with ForwardProxy(username="ann", password="s3cret-pw") as proxy:
        host = proxy.url.split("://", 1)[1]
        text = "".join(await ask(sandbox, site, user("auth"), proxy=f"http://ann:s3cret-pw@{host}"))
        assert "auth" in text
        with pytest.raises(ProviderError) as info:
            await ask(sandbox, site, user("auth"), proxy=f"http://ann:wrong-pw@{host}")
        assert "wrong-pw" not in str(info.value)
        assert "s3cret" not in str(info.value)


def test_timeout_and_base_url_are_checked() -> None:
    cls = get_provider("chatgptt")
    with pytest.raises(ConfigurationError, match="timeout"):
        cls(timeout=0)
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        cls(base_url="127.0.0.1:8000")
