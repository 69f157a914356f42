"""Tool calls on the wire: the OpenAI-compatible provider offers tools, reads the calls the
stand-in streams as OpenAI, llama.cpp, vLLM and Ollama do, and sends the results back.

Every address is 127.0.0.1 (the stand-in, chatmagic.sandbox).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from chatmagic.errors import ConfigurationError, ProtocolError, ServiceError
from chatmagic.providers import get_provider
from chatmagic.providers._wire import (
    MAX_ARGUMENTS,
    ChunkReader,
    Ending,
    ToolCall,
    assistant_message,
    read_arguments,
    tool_message,
)
from chatmagic.providers.openai import OpenAICompatible
from chatmagic.sandbox import Sandbox, tool_answer_text

from ._tool_schemas import CLOCK, KEY, WEATHER

FLAVOURS = ("openai", "llamacpp", "vllm", "ollama")


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


async def reply(
    sb: Sandbox,
    messages: list[dict[str, Any]],
    site: str = "openai",
    tools: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> tuple[str, list[ToolCall], Ending]:
    """(text, calls, ending) of one reply, as the provider yields them."""
    text, calls, ending = "", [], None
    async with OpenAICompatible(base_url=sb.base_url(site)) as p:
        async for part in p.parts(
            messages, "llama3.2", tools=[WEATHER, CLOCK] if tools is None else tools, **kwargs
        ):
            if isinstance(part, str):
                text += part
            elif isinstance(part, ToolCall):
                assert ending is None  # every call comes before the ending
                calls.append(part)
            elif isinstance(part, Ending):
                ending = part
    assert ending is not None
    return text, calls, ending


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("site", FLAVOURS)
async def test_a_call_is_read_whole_in_every_flavour(sandbox: Sandbox, site: str) -> None:
    text, calls, ending = await reply(
        sandbox, user('Weather? [[tool:get_weather {"city": "Zürich ✓", "days": 3}]]'), site
    )
    assert text == "" and ending.finish_reason == "tool_calls"
    (call,) = calls
    assert call.name == "get_weather" and call.error is None and call.index == 0 and call.id
    assert json.loads(call.arguments) == {"city": "Zürich ✓", "days": 3}
    # the request offered the tools
    body = sandbox.requests[-1].json
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "now"]


@pytest.mark.parametrize("site", FLAVOURS)
async def test_parallel_calls_keep_their_order_and_ids(sandbox: Sandbox, site: str) -> None:
    _, calls, _ = await reply(
        sandbox,
        user('[[tool:get_weather {"city": "Oslo"}]][[tool:get_weather {"city": "Rome"}]][[tool:now]]'),
        site,
    )
    assert [(c.index, c.name) for c in calls] == [(0, "get_weather"), (1, "get_weather"), (2, "now")]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}, {}]
    assert len({c.id for c in calls}) == 3 and all(c.error is None for c in calls)


@pytest.mark.parametrize("site", ["openai", "llamacpp", "vllm"])
async def test_argument_fragments_across_tcp_reads(sandbox: Sandbox, site: str) -> None:
    _, calls, _ = await reply(
        sandbox,
        user('[[fault:tiny_writes]][[tool:get_weather {"city": "Zürich ✓ «quoted»"}]][[tool:now]]'),
        site,
    )
    assert json.loads(calls[0].arguments) == {"city": "Zürich ✓ «quoted»"}
    assert calls[1].name == "now"


async def test_whole_arguments_and_a_whole_answer(sandbox: Sandbox) -> None:
    _, calls, _ = await reply(
        sandbox, user('[[fault:tool_args_whole]][[tool:get_weather {"city": "Oslo"}]]'), "llamacpp"
    )
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    # a server that ignores "stream" answers message.tool_calls, read by the same reader
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url("openai") + "/chat/completions",
            json={
                "model": "llama3.2",
                "messages": user('[[tool:get_weather {"city": "Oslo"}]][[tool:now]]'),
                "tools": [WEATHER, CLOCK],
            },
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r,
    ):
        whole = await r.json()
    reader = ChunkReader(
        "OpenAI",
        lambda what: ProtocolError("OpenAI", what),
        lambda what: ServiceError("OpenAI", what),
        ["get_weather", "now"],
    )
    calls = [p for p in reader.read_completion(whole) if isinstance(p, ToolCall)]
    assert [c.name for c in calls] == ["get_weather", "now"] and reader.finish_reason == "tool_calls"
    assert (
        json.loads(calls[0].arguments) == {"city": "Oslo"}
        and calls[0].id == whole["choices"][0]["message"]["tool_calls"][0]["id"]
    )


@pytest.mark.parametrize("site", FLAVOURS)
async def test_text_and_calls_in_one_message(sandbox: Sandbox, site: str) -> None:
    text, calls, ending = await reply(
        sandbox, user('[[tool:get_weather {"city": "Kyiv"}]][[reply]]Let me look that up.'), site
    )
    assert text == "Let me look that up." and [c.name for c in calls] == ["get_weather"]
    assert ending.finish_reason == "tool_calls"


async def test_malformed_and_unoffered_calls_say_why_and_lose_nothing(sandbox: Sandbox) -> None:
    _, calls, _ = await reply(sandbox, user('[[tool:get_weather {"city": "Par]][[tool:rm_rf {"path": "/"}]]'))
    bad, unoffered = calls
    assert bad.arguments == '{"city": "Par' and bad.error is not None
    assert bad.error.startswith(
        "The model's call of 'get_weather' cannot run: its arguments are not valid JSON"
    )
    assert (
        unoffered.error
        == "The model called 'rm_rf', a tool that was not offered (offered: get_weather, now)."
    )
    assert json.loads(unoffered.arguments) == {"path": "/"}  # kept, to be shown


async def test_huge_arguments_are_capped(sandbox: Sandbox) -> None:
    huge = "x" * (MAX_ARGUMENTS + 5000)
    _, calls, _ = await reply(
        sandbox, user(f'[[fault:tool_args_whole]][[tool:get_weather {{"city": "{huge}"}}]]')
    )
    (call,) = calls
    assert len(call.arguments) == MAX_ARGUMENTS and call.size > MAX_ARGUMENTS
    assert call.error is not None and "too long" in call.error
    assert "\n" not in call.error


@pytest.mark.parametrize("site", FLAVOURS)
async def test_a_whole_loop_sends_calls_and_results_back(sandbox: Sandbox, site: str) -> None:
    messages = user('Weather? [[tool:get_weather {"city": "Oslo"}]][[tool:now]]')
    text, calls, _ = await reply(sandbox, messages, site)
    messages += [
        assistant_message(text, calls),
        tool_message(calls[0].id, "Sunny, 21 °C"),
        tool_message(calls[1].id, "12:00"),
    ]
    text, more, ending = await reply(sandbox, messages, site)
    assert more == [] and ending.finish_reason == "stop"
    assert text == tool_answer_text(site, [("get_weather", "Sunny, 21 °C"), ("now", "12:00")])
    sent = sandbox.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == calls[0].id and sent[1]["content"] is None
    assert [m["tool_call_id"] for m in sent[2:]] == [calls[0].id, calls[1].id]


async def test_tool_choice_is_sent(sandbox: Sandbox) -> None:
    _, calls, _ = await reply(
        sandbox, user("hi"), tool_choice={"type": "function", "function": {"name": "now"}}
    )
    assert [c.name for c in calls] == ["now"]
    text, calls, _ = await reply(sandbox, user("hi"), tool_choice="none")
    assert calls == [] and text


@pytest.mark.parametrize("site", FLAVOURS)
async def test_a_server_that_takes_no_tools_says_so(sandbox: Sandbox, site: str) -> None:
    with pytest.raises(ServiceError) as info:
        await reply(sandbox, user("[[fault:no_tools]]hi"), site)
    message = str(info.value)
    assert "the server takes no tools" in message and "--jinja" in message and "\n" not in message
    # the same server answers the same message without tools
    text, calls, _ = await reply(sandbox, user("[[fault:no_tools]]hi"), site, tools=[])
    assert text and calls == []


async def test_web_sites_refuse_tools_before_sending(sandbox: Sandbox) -> None:
    cls = get_provider("chatgptt")
    assert not cls.supports_tools and OpenAICompatible.supports_tools
    async with cls(base_url=sandbox.base_url("chatgptt")) as p:
        with pytest.raises(ConfigurationError, match="cannot call tools"):
            async for _ in p.parts(user("hi"), tools=[CLOCK]):
                pass
    assert sandbox.requests == []


async def test_without_tools_a_call_is_still_the_old_error(sandbox: Sandbox) -> None:
    # a request that offered no tools reads no calls (a reply of a call only is said to be empty)
    from chatmagic.errors import EmptyReplyError

    with pytest.raises(EmptyReplyError, match="runs no tools"):
        async with OpenAICompatible(base_url=sandbox.base_url("openai")) as p:
            async for _ in p.parts(user("[[tool:now]]"), "gpt-4o-mini"):
                pass


def test_read_arguments() -> None:
    assert read_arguments("") == ({}, None)
    assert read_arguments('{"a": 1}') == ({"a": 1}, None)
    assert read_arguments("[1]")[1] == "its arguments are not a JSON object (got list)"
    assert read_arguments('{"a": ')[1] is not None
    assert read_arguments("{}", MAX_ARGUMENTS + 1)[1] is not None
