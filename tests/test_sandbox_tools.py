"""Tool calls in the stand-in's OpenAI-compatible API, read by the official ``openai`` client.

The stand-in plays a model that calls tools as its prompt scripts (``[[tool:NAME ARGS]]``,
or by default the first offered tool), streams the calls as OpenAI, llama.cpp
(``--jinja``), vLLM and Ollama do, and answers with the tool results once it gets them,
so a whole loop runs offline. Every address is 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from chatmagic.sandbox import Sandbox, reply_text, tool_answer_text

from ._tool_schemas import CLOCK, KEY, WEATHER


def client_for(sb: Sandbox, site: str = "openai") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sb.base_url(site), api_key=KEY, max_retries=0)


async def streamed_calls(
    sb: Sandbox, text: str, *, site: str = "openai", tools: list[Any] | None = None, **extra: Any
) -> tuple[str, list[dict[str, Any]], list[Any], str | None]:
    """(content, calls reassembled from the deltas, the chunks, finish_reason) of a streamed reply."""
    async with client_for(sb, site) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            tools=tools if tools is not None else [WEATHER, CLOCK],  # type: ignore[arg-type]
            stream=True,
            **extra,
        )
        chunks = [chunk async for chunk in stream]
    content, calls, finish = "", {}, None
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        content += choice.delta.content or ""
        finish = choice.finish_reason or finish
        for d in choice.delta.tool_calls or []:
            call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": "", "firsts": 0})
            if d.id is not None:
                call["id"] = d.id
                call["firsts"] += 1
            if d.function is not None:
                call["name"] += d.function.name or ""
                call["arguments"] += d.function.arguments or ""
    return content, [calls[i] for i in sorted(calls)], chunks, finish


# -- the OpenAI shape -----------------------------------------------------------------------


async def test_a_scripted_call_streams_its_arguments_in_fragments(sandbox: Sandbox) -> None:
    content, calls, chunks, finish = await streamed_calls(
        sandbox, 'Weather? [[tool:get_weather {"city": "Paris", "days": 3}]]'
    )
    assert content == "" and finish == "tool_calls"
    (call,) = calls
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris", "days": 3}
    assert call["id"].startswith("call_") and len(call["id"]) == 29 and call["firsts"] == 1
    fragments = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(fragments) > 5  # the arguments came in many pieces
    # OpenAI's first chunk is the role and the call together, content null, arguments ""
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None and first.tool_calls is not None
    assert first.tool_calls[0].function is not None and first.tool_calls[0].function.arguments == ""
    assert chunks[-1].choices[0].delta.tool_calls is None


async def test_parallel_calls_have_their_own_indexes_and_ids(sandbox: Sandbox) -> None:
    _, calls, _, finish = await streamed_calls(
        sandbox, '[[tool:get_weather {"city": "Oslo"}]][[tool:get_weather {"city": "Rome"}]][[tool:now]]'
    )
    assert finish == "tool_calls"
    assert [c["name"] for c in calls] == ["get_weather", "get_weather", "now"]
    assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}, {}]
    assert len({c["id"] for c in calls}) == 3


async def test_without_a_directive_the_first_offered_tool_is_called(sandbox: Sandbox) -> None:
    _, calls, _, _ = await streamed_calls(sandbox, "What is it like in Lima?")
    (call,) = calls
    # the required arguments made from the schema: a string gets the user's words
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "What is it like in Lima?"}
    _, calls, _, _ = await streamed_calls(
        sandbox, "hi", tool_choice={"type": "function", "function": {"name": "now"}}
    )
    assert [c["name"] for c in calls] == ["now"]


async def test_text_and_calls_in_one_message(sandbox: Sandbox) -> None:
    content, calls, chunks, finish = await streamed_calls(
        sandbox, '[[tool:get_weather {"city": "Kyiv"}]][[reply]]Let me look that up.'
    )
    assert content == "Let me look that up." and finish == "tool_calls"
    assert [c["name"] for c in calls] == ["get_weather"]
    assert chunks[0].choices[0].delta.content == ""  # the role chunk of a message with text


async def test_no_call_when_the_client_says_none_or_offers_nothing(sandbox: Sandbox) -> None:
    content, calls, _, finish = await streamed_calls(sandbox, "hi", tool_choice="none")
    assert calls == [] and finish == "stop" and content == reply_text("openai", "hi", 0)
    async with client_for(sandbox) as c:
        done = await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert done.choices[0].message.tool_calls is None and done.choices[0].finish_reason == "stop"


async def test_fragments_survive_any_framing(sandbox: Sandbox) -> None:
    # 3-byte writes cut the events, and the arguments, across many TCP reads
    _, calls, _, _ = await streamed_calls(
        sandbox, '[[fault:tiny_writes]][[tool:get_weather {"city": "Zürich ✓"}]]'
    )
    assert json.loads(calls[0]["arguments"]) == {"city": "Zürich ✓"}


async def test_malformed_and_unoffered_calls_are_sent_as_scripted(sandbox: Sandbox) -> None:
    _, calls, _, _ = await streamed_calls(
        sandbox, '[[tool:get_weather {"city": "Par]][[tool:rm_rf {"path": "/"}]]'
    )
    assert calls[0]["arguments"] == '{"city": "Par'  # not JSON: a client must cope
    assert calls[1]["name"] == "rm_rf"  # a tool that was not offered


async def test_a_whole_loop_offline(sandbox: Sandbox) -> None:
    """Call, run, send the result back, and get an answer that uses it (not streamed)."""
    messages: list[Any] = [{"role": "user", "content": 'Weather? [[tool:get_weather {"city": "Oslo"}]]'}]
    async with client_for(sandbox) as c:
        first = await c.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls" and message.content is None
        assert message.tool_calls is not None
        (call,) = message.tool_calls
        assert call.type == "function" and call.function.name == "get_weather"  # type: ignore[union-attr]
        messages += [
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 °C"},
        ]
        second = await c.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content == tool_answer_text("openai", [("get_weather", "Sunny, 21 °C")])
    assert "Sunny, 21 °C" in (second.choices[0].message.content or "")


async def test_steps_make_the_model_call_again(sandbox: Sandbox) -> None:
    messages: list[Any] = [{"role": "user", "content": "[[steps:2]][[tool:now]]"}]
    async with client_for(sandbox) as c:
        for step in range(3):
            done = await c.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[CLOCK])  # type: ignore[list-item]
            message = done.choices[0].message
            if step < 2:
                assert message.tool_calls is not None
                messages += [
                    message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": f"12:0{step}"},
                ]
    assert message.tool_calls is None and message.content == tool_answer_text("openai", [("now", "12:01")])


# -- validation, in the server's words --------------------------------------------------------


async def bad_request(sb: Sandbox, **body: Any) -> openai.BadRequestError:
    async with client_for(sb) as c:
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model="gpt-4o-mini", **body)
    return info.value


async def test_a_tool_message_must_answer_a_call(sandbox: Sandbox) -> None:
    asked = {
        "role": "assistant",
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "now", "arguments": "{}"}}],
    }
    error = await bad_request(
        sandbox,
        messages=[
            {"role": "user", "content": "hi"},
            asked,
            {"role": "tool", "tool_call_id": "call_b", "content": "x"},
        ],
    )
    assert error.message.endswith(
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
    )
    assert error.param == "messages.[2].role" and error.code is None
    error = await bad_request(
        sandbox, messages=[{"role": "user", "content": "hi"}, asked, {"role": "user", "content": "?"}]
    )
    assert "The following tool_call_ids did not have response messages: call_a" in error.message
    error = await bad_request(
        sandbox, messages=[{"role": "user", "content": "hi"}, asked, {"role": "tool", "content": "x"}]
    )
    assert error.code == "missing_required_parameter" and error.param == "messages[2].tool_call_id"


@pytest.mark.parametrize(
    ("tools", "param", "code"),
    [
        ({"type": "function"}, "tools", "invalid_type"),
        ([{"function": {"name": "x"}}], "tools[0].type", "missing_required_parameter"),
        ([{"type": "retrieval", "function": {"name": "x"}}], "tools[0].type", "invalid_value"),
        ([{"type": "function", "function": {}}], "tools[0].function.name", "missing_required_parameter"),
        (
            [{"type": "function", "function": {"name": "no spaces"}}],
            "tools[0].function.name",
            "invalid_value",
        ),
        (
            [{"type": "function", "function": {"name": "x", "parameters": []}}],
            "tools[0].function.parameters",
            "invalid_type",
        ),
    ],
)
async def test_malformed_tools_are_refused(sandbox: Sandbox, tools: Any, param: str, code: str) -> None:
    error = await bad_request(sandbox, messages=[{"role": "user", "content": "hi"}], tools=tools)
    assert error.param == param and error.code == code and error.type == "invalid_request_error"


# -- how the other servers stream --------------------------------------------------------------


async def test_llama_cpp_ids_and_deltas(sandbox: Sandbox) -> None:
    content, calls, chunks, finish = await streamed_calls(
        sandbox, '[[tool:get_weather {"city": "Oslo"}]]', site="llamacpp"
    )
    (call,) = calls
    assert len(call["id"]) == 32 and call["id"].isalnum() and finish == "tool_calls"
    assert chunks[0].choices[0].delta.content is None and chunks[0].choices[0].delta.tool_calls is None
    head = chunks[1].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (
        head.function is not None and head.function.name == "get_weather" and head.function.arguments is None
    )


async def test_vllm_ids_and_deltas(sandbox: Sandbox) -> None:
    _, calls, chunks, _ = await streamed_calls(sandbox, '[[tool:get_weather {"city": "Oslo"}]]', site="vllm")
    assert calls[0]["id"].startswith("chatcmpl-tool-") and len(calls[0]["id"]) == 30
    assert chunks[0].choices[0].delta.content == ""
    head = chunks[1].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (
        head.function is not None and head.function.name == "get_weather" and head.function.arguments == "{"
    )
    # the mode gives the same shape on another site
    _, calls, _, _ = await streamed_calls(sandbox, "[[fault:vllm]][[tool:now]]")
    assert calls[0]["id"].startswith("chatcmpl-tool-")


async def test_ollama_and_whole_arguments(sandbox: Sandbox) -> None:
    _, calls, chunks, _ = await streamed_calls(
        sandbox, '[[tool:get_weather {"city": "Oslo"}]][[tool:now]]', site="ollama"
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) == 2 and all(d.content == "" and d.role == "assistant" for d in deltas)
    assert calls[0]["id"].startswith("call_") and len(calls[0]["id"]) == 13
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo"}
    _, calls, chunks, _ = await streamed_calls(
        sandbox, '[[fault:tool_args_whole]][[tool:get_weather {"city": "Oslo"}]]'
    )
    pieces = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(pieces) == 1 and json.loads(calls[0]["arguments"]) == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("site", "content"), [("openai", None), ("llamacpp", None), ("vllm", None), ("ollama", "")]
)
async def test_a_whole_answer_that_only_calls(sandbox: Sandbox, site: str, content: str | None) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url(site) + "/chat/completions",
            json={
                "model": "llama3.2",
                "messages": [{"role": "user", "content": "[[tool:now]]"}],
                "tools": [CLOCK],
            },
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r,
    ):
        body = await r.json()
    message = body["choices"][0]["message"]
    assert message["content"] == content and message["tool_calls"][0]["function"] == {
        "name": "now",
        "arguments": "{}",
    }
    assert body["choices"][0]["finish_reason"] == "tool_calls"


async def test_vllm_refuses_in_its_own_shape(sandbox: Sandbox) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url("vllm") + "/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "tools": {}},
        ) as r,
    ):
        body = await r.json()
    assert r.status == 400
    assert body == {
        "error": {
            "message": "Invalid type for 'tools': expected an array.",
            "type": "BadRequestError",
            "param": "tools",
            "code": 400,
        }
    }


@pytest.mark.parametrize(
    ("site", "status", "words"),
    [
        ("llamacpp", 500, "tools param requires --jinja flag"),
        ("ollama", 400, "registry.ollama.ai/library/llama3.2:latest does not support tools"),
        ("vllm", 400, '"auto" tool choice requires --enable-auto-tool-choice'),
        ("openai", 400, "Unsupported parameter: 'tools' is not supported with this model."),
    ],
)
async def test_a_server_that_takes_no_tools(sandbox: Sandbox, site: str, status: int, words: str) -> None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "[[fault:no_tools]]hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            sandbox.base_url(site) + "/chat/completions",
            json={**body, "tools": [CLOCK]},
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r:
            refused = await r.json()
        assert r.status == status and words in refused["error"]["message"]
        async with http.post(
            sandbox.base_url(site) + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r:
            assert r.status == 200  # without tools, the same server answers
