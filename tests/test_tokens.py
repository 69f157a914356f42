"""Counting a request's tokens: the server's count is exact, the offline BPE matches OpenAI's cookbook."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from chatmagic.providers.window import discover_window, forget, server_count
from chatmagic.sandbox import Sandbox
from chatmagic.tokens import (
    IMAGE_TOKENS,
    Count,
    count_messages,
    count_text,
    encoding_for,
    estimate_tokens,
    versus_usage,
)

# OpenAI cookbook, "How to count tokens with tiktoken": its example and the API's own counts
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more time to touch base on opportunities for increased "
        "leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

CONVERSATION = [
    {"role": "system", "content": "You are a careful data scientist. Answer briefly."},
    {"role": "user", "content": "How do I read a CSV with pandas, skipping the first 3 rows?"},
    {"role": "assistant", "content": "Use `pd.read_csv('data.csv', skiprows=3)`.\n\nThat skips lines 0-2."},
    {"role": "user", "content": "And only the columns 'a' and 'b' — é, ü, 日本語 included?"},
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4", 129), ("gpt-3.5-turbo", 129)],
)
def test_the_cookbook_example_counts_as_the_api_did(model: str, expected: int) -> None:
    count = count_messages(COOKBOOK, model)
    assert count == Count(expected, "bpe")
    assert str(count) == str(expected)  # exact: no "≈"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("llama3.2", None),
        ("qwen2.5:7b", None),
        ("gpt-4o-like-but-not", "o200k_base"),
        ("omni", None),
    ],
)
def test_a_model_is_counted_with_its_familys_bpe(model: str, encoding: str | None) -> None:
    assert encoding_for(model) == encoding


def test_a_model_without_a_known_tokenizer_is_an_estimate_and_says_so() -> None:
    text = "x" * 401
    assert estimate_tokens(text) == 101
    count = count_text(text, "llama3.2")
    assert count == Count(101, "≈")
    assert str(count) == "≈101"
    whole = count_messages([{"role": "user", "content": text}], "llama3.2")
    assert whole.how == "≈" and whole.tokens == 101 + 3 + 3 + estimate_tokens("user")


def test_text_that_looks_like_a_special_token_counts_as_text() -> None:
    # the API never lets a message's text close the message; counting must not crash on it
    assert count_text("<|endoftext|>", "gpt-4o").tokens > 1


def test_tool_schemas_and_images_make_the_count_approximate() -> None:
    plain = count_messages(CONVERSATION, "gpt-4o")
    with_tools = count_messages(CONVERSATION, "gpt-4o", TOOLS)
    assert plain.how == "bpe" and with_tools.how == "bpe≈"
    assert with_tools.tokens > plain.tokens + 20
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this plot?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    counted = count_messages(image, "gpt-4o")
    assert counted.how == "≈"
    assert counted.tokens == 3 + 3 + 1 + count_text("What is in this plot?", "gpt-4o").tokens + IMAGE_TOKENS


def test_counting_is_not_imported_at_load() -> None:
    # the BPE library is a 74 MB extension: %load_ext must not pay for it
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'chatmagic')\n"
        "import chatmagic.tokens, chatmagic.anatomy, chatmagic.budget, chatmagic.trim\n"
        "assert 'bpe_openai' not in sys.modules, 'bpe_openai imported at load'\n"
        "chatmagic.tokens.count_text('hello', 'gpt-4o')\n"
        "assert 'bpe_openai' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


async def _prompt_tokens(sb: Sandbox, site: str, body: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{sb.base_url(site)}/chat/completions", json={"model": "llama3.2", **body}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return int((await resp.json())["usage"]["prompt_tokens"])


@pytest.mark.parametrize("site", ["llamacpp", "vllm"])
@pytest.mark.parametrize("tools", [None, TOOLS])
async def test_the_servers_own_count_is_exactly_its_reported_usage(
    sandbox: Sandbox, site: str, tools: list[dict[str, Any]] | None
) -> None:
    forget()
    window = await discover_window(sandbox.base_url(site), "llama3.2")
    assert window.kind == site
    counted = await server_count(sandbox.base_url(site), "llama3.2", window.kind, CONVERSATION, tools)
    body: dict[str, Any] = {"messages": CONVERSATION, **({"tools": tools} if tools else {})}
    usage = await _prompt_tokens(sandbox, site, body)
    assert counted == usage
    kept = versus_usage(Count(counted, "server"), usage)
    assert kept == {"estimate": usage, "how": "server", "usage": usage, "difference": 0}
    guessed = versus_usage(count_messages(CONVERSATION, "llama3.2", tools), usage)
    assert guessed["how"] == "≈" and guessed["difference"] == guessed["estimate"] - usage != 0


@pytest.mark.parametrize("site", ["ollama", "lmstudio"])
async def test_a_server_without_a_tokenizer_endpoint_cannot_count(sandbox: Sandbox, site: str) -> None:
    forget()
    window = await discover_window(sandbox.base_url(site), "llama3.2")
    assert await server_count(sandbox.base_url(site), "llama3.2", window.kind, CONVERSATION) is None
    # even told it is llama.cpp, a server that 404s leaves the count unknown, quietly
    assert await server_count(sandbox.base_url(site), "llama3.2", "llamacpp", CONVERSATION) is None
