"""Token counts and context windows, as the stand-in's local servers report them.

A client that counts through the server's own endpoints (llama.cpp's ``/apply-template``
then ``/tokenize``; vLLM's ``/tokenize`` with ``messages``) gets exactly the
``usage.prompt_tokens`` of the chat answer; the window comes from ``/props``,
``max_model_len`` or ``/api/show``; a prompt over it gets the server's own 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from chatmagic.sandbox import Sandbox, SandboxSettings, count_prompt

KEY = "sk-sandbox"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there, what's 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And in Ukrainian — «чотири»? [[words:3]]"},
]


@pytest.fixture
async def small() -> AsyncIterator[Sandbox]:
    """A stand-in whose local servers have a 64-token window."""
    async with Sandbox(settings=SandboxSettings(context_window=64, openai_context_window=80), port=0) as sb:
        yield sb


async def call(sb: Sandbox, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, sb.url + path, json=body) as r:
        return r.status, await r.json(content_type=None)


async def usage_of(sb: Sandbox, site: str, messages: list[Any], tools: Any = None) -> Any:
    """The usage the chat answer reports, read by the official client from a stream."""
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    async with openai.AsyncOpenAI(base_url=sb.base_url(site), api_key=KEY, max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="llama3.2", messages=messages, stream=True, stream_options={"include_usage": True}, **extra
        )
        return [chunk async for chunk in stream][-1].usage


@pytest.mark.parametrize("tools", [None, TOOLS])
async def test_llama_cpp_counts_what_the_chat_reports(sandbox: Sandbox, tools: Any) -> None:
    status, templated = await call(
        sandbox, "POST", "/llamacpp/apply-template", {"messages": CONVERSATION, "tools": tools}
    )
    assert status == 200 and templated["prompt"].endswith("<|im_start|>assistant\n")
    status, counted = await call(
        sandbox, "POST", "/llamacpp/tokenize", {"content": templated["prompt"], "add_special": True}
    )
    usage = await usage_of(sandbox, "llamacpp", CONVERSATION, tools)
    assert len(counted["tokens"]) == usage.prompt_tokens == count_prompt(CONVERSATION, tools)
    # without the BOS, one fewer: what a client gets when it forgets add_special
    _, plain = await call(sandbox, "POST", "/llamacpp/tokenize", {"content": templated["prompt"]})
    assert len(plain["tokens"]) == usage.prompt_tokens - 1
    if tools:
        assert '"name": "lookup"' in templated["prompt"]  # the tool schemas count too


async def test_llama_cpp_pieces_and_round_trip(sandbox: Sandbox) -> None:
    text = "Hello, wörld!\n  <|im_end|> indivisibility"
    _, found = await call(sandbox, "POST", "/llamacpp/tokenize", {"content": text, "with_pieces": True})
    pieces = [t["piece"] for t in found["tokens"]]
    assert "".join(pieces) == text and "<|im_end|>" in pieces and len(pieces) > 8
    _, back = await call(
        sandbox, "POST", "/llamacpp/detokenize", {"tokens": [t["id"] for t in found["tokens"]]}
    )
    assert back == {"content": text}
    _, raw = await call(
        sandbox, "POST", "/llamacpp/tokenize", {"content": "<|im_end|>", "parse_special": False}
    )
    assert len(raw["tokens"]) > 1  # as plain text, the marker is several tokens
    assert await call(sandbox, "POST", "/llamacpp/tokenize", {}) == (200, {"tokens": []})


async def test_llama_cpp_props_and_models(small: Sandbox) -> None:
    status, props = await call(small, "GET", "/llamacpp/props")
    assert status == 200 and props["default_generation_settings"]["n_ctx"] == 64
    assert props["model_path"].endswith(".gguf") and "<|im_start|>" in props["chat_template"]
    assert props["chat_template_caps"]["supports_tool_calls"] is True and props["total_slots"] == 1
    _, models = await call(small, "GET", "/llamacpp/v1/models")
    assert models["data"][0]["meta"]["n_ctx_train"] > 64  # trained for more than it serves
    # a server of OpenAI's kind has none of these
    assert (await call(small, "GET", "/lmstudio/props"))[0] == 404


async def test_vllm_counts_what_the_chat_reports(small: Sandbox) -> None:
    status, counted = await call(
        small, "POST", "/vllm/tokenize", {"model": "llama3.2", "messages": CONVERSATION[:2]}
    )
    usage = await usage_of(small, "vllm", CONVERSATION[:2])
    assert status == 200 and counted["count"] == len(counted["tokens"]) == usage.prompt_tokens
    assert counted["max_model_len"] == 64 and counted["token_strs"] is None
    _, plain = await call(
        small, "POST", "/vllm/tokenize", {"prompt": "Hello world", "return_token_strs": True}
    )
    assert plain["token_strs"] == ["<s>", "Hello", " world"]
    _, back = await call(small, "POST", "/vllm/detokenize", {"tokens": plain["tokens"]})
    assert back == {"prompt": "<s>Hello world"}
    _, models = await call(small, "GET", "/vllm/v1/models")
    assert {m["max_model_len"] for m in models["data"]} == {64}


async def test_ollama_show(small: Sandbox) -> None:
    status, shown = await call(small, "POST", "/ollama/api/show", {"model": "llama3.2"})
    arch = shown["model_info"]["general.architecture"]
    assert status == 200 and shown["model_info"][f"{arch}.context_length"] == 64
    assert shown["details"]["family"] == "llama" and "tools" in shown["capabilities"]
    assert await call(small, "POST", "/ollama/api/show", {"model": "nope"}) == (
        404,
        {"error": "model 'nope' not found"},
    )


LONG = [{"role": "user", "content": "word " * 100}]


async def post_chat(sb: Sandbox, site: str, messages: list[Any], stream: bool = False) -> tuple[int, Any]:
    body = {"model": "llama3.2", "messages": messages, "stream": stream}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sb.base_url(site) + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as r,
    ):
        return r.status, await r.json(content_type=None) if r.status != 200 or not stream else await r.text()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_over_the_window_gets_each_servers_400(small: Sandbox, stream: bool) -> None:
    n = count_prompt(LONG)
    assert n > 80
    status, body = await post_chat(small, "llamacpp", LONG, stream)
    assert status == 400 and body == {
        "error": {
            "code": 400,
            "message": f"request ({n} tokens) exceeds the available context size (64 tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": n,
            "n_ctx": 64,
        }
    }
    status, body = await post_chat(small, "vllm", LONG, stream)
    assert status == 400 and body["error"]["type"] == "BadRequestError" and body["error"]["code"] == 400
    assert body["error"]["message"] == (
        f"This model's maximum context length is 64 tokens. However, your request has {n} input tokens. "
        "Please reduce the length of the input messages."
    )
    status, body = await post_chat(small, "openai", LONG, stream)
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert body["error"]["param"] == "messages" and f"resulted in {n} tokens" in body["error"]["message"]
    # Ollama cuts the prompt to its window and answers
    status, _ = await post_chat(small, "ollama", LONG, stream)
    assert status == 200


async def test_a_prompt_that_fits_is_answered(small: Sandbox) -> None:
    status, body = await post_chat(small, "llamacpp", [{"role": "user", "content": "hi"}])
    assert (
        status == 200
        and body["usage"]["prompt_tokens"] == count_prompt([{"role": "user", "content": "hi"}]) < 64
    )
