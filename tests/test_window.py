"""The context window: from the server where it says, from the endpoint's settings otherwise."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from chatmagic.errors import ConfigurationError
from chatmagic.providers.endpoints import check_endpoints, configure_endpoints, find_endpoint
from chatmagic.providers.window import Window, check_context_window, discover_window, forget, server_root
from chatmagic.sandbox import Sandbox, SandboxSettings


@pytest.fixture(autouse=True)
def _no_cache() -> None:
    forget()


@pytest.mark.parametrize(
    ("site", "source"),
    [("llamacpp", "llama.cpp /props"), ("vllm", "vLLM /v1/models"), ("ollama", "Ollama /api/show")],
)
async def test_each_local_server_says_its_window(site: str, source: str) -> None:
    async with Sandbox(SandboxSettings(context_window=4096)) as sb:
        window = await discover_window(sb.base_url(site), "llama3.2", configured=999)
    # the server's word wins over the configuration; llama.cpp's n_ctx_train (131072) is not the window
    assert window == Window(4096, source, site)


@pytest.mark.parametrize("site", ["lmstudio", "openai"])
async def test_a_server_that_does_not_say_uses_the_configuration_or_is_unknown(
    sandbox: Sandbox, site: str
) -> None:
    assert await discover_window(sandbox.base_url(site), "gpt-4o") == Window(None, "unknown")
    forget()
    assert await discover_window(sandbox.base_url(site), "gpt-4o", configured=128000) == Window(
        128000, "config"
    )


async def test_an_unknown_model_on_ollama_falls_back(sandbox: Sandbox) -> None:
    window = await discover_window(sandbox.base_url("ollama"), "no-such-model", configured=8192)
    assert window == Window(8192, "config")


async def test_a_window_is_asked_once_per_endpoint_and_model(sandbox: Sandbox) -> None:
    base = sandbox.base_url("vllm")
    first = await discover_window(base, "llama3.2")
    asked = len(sandbox.requests)
    assert await discover_window(base, "llama3.2") == first
    assert len(sandbox.requests) == asked
    await discover_window(base, "gpt-4o")  # another model: asked again
    assert len(sandbox.requests) > asked


async def test_a_server_that_is_not_there_is_quietly_unknown() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    window = await discover_window(f"http://127.0.0.1:{port}/v1", "llama3.2")
    assert window == Window(None, "unknown")
    assert time.monotonic() - started < 3.5


def test_the_servers_root_is_the_base_url_without_v1() -> None:
    assert server_root("http://localhost:8080/v1") == "http://localhost:8080"
    assert server_root("http://localhost:8080/v1/") == "http://localhost:8080"
    assert server_root("http://host/llm") == "http://host/llm"


@pytest.mark.parametrize("bad", [0, -5, 1.5, "32k", True, None])
def test_a_malformed_configured_window_is_refused_in_one_line(bad: object) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_context_window(bad, "ChatMagics.endpoints['work'].context_window")
    assert "\n" not in str(refused.value) and "whole number of tokens" in str(refused.value)
    assert check_context_window(32768) == 32768


def test_an_endpoint_may_say_its_window() -> None:
    try:
        configure_endpoints({"work": {"base_url": "https://llm.example.com/v1", "context_window": 8192}})
        work = find_endpoint("work")
        assert work is not None and work.context_window == 8192
        assert getattr(find_endpoint("ollama"), "context_window", None) is None
    finally:
        configure_endpoints({})
    with pytest.raises(ConfigurationError) as refused:
        check_endpoints({"work": {"base_url": "https://llm.example.com/v1", "context_window": "8k"}})
    assert str(refused.value) == (
        "Endpoint 'work': context_window must be a whole number of tokens above 0, e.g. 32768 (got '8k')."
    )


def test_a_window_set_by_config_is_checked_there(ip: Any) -> None:
    magics = ip.magics_manager.registry["ChatMagics"]
    assert magics.session is not None  # the registry takes the settings from the session (made at first use)
    ip.run_line_magic("config", "ChatMagics.endpoints = {}")
    ip.run_line_magic(
        "config", "ChatMagics.endpoints = {'w': {'base_url': 'http://x/v1', 'context_window': 0}}"
    )
    assert magics.endpoints == {}  # refused: the old value stays
    try:
        ip.run_line_magic(
            "config", "ChatMagics.endpoints = {'w': {'base_url': 'http://x/v1', 'context_window': 4096}}"
        )
        w = find_endpoint("w")
        assert w is not None and w.context_window == 4096
    finally:
        ip.run_line_magic("config", "ChatMagics.endpoints = {}")


async def test_ollama_with_num_ctx_in_its_modelfile_serves_that_window() -> None:
    from aiohttp import web

    async def show(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "parameters": 'stop                           "<|im_end|>"\nnum_ctx                        8192',
                "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
                "model": body["model"],
            }
        )

    app = web.Application()
    app.router.add_post("/api/show", show)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        window = await discover_window(f"http://127.0.0.1:{port}/v1", "qwen2.5")
    finally:
        await runner.cleanup()
    assert window == Window(8192, "Ollama /api/show num_ctx", "ollama")
