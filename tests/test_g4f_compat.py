"""The seed-era public client (g4f 0.5.0.4), pointed at the stand-in, gets an answer.

It is one real client of the five sites' protocols: what it sends, the stand-in
must accept. Install (the package's own dependency list pulls far more than its
five chat classes import):

    .venv/bin/pip install requests pycryptodome && .venv/bin/pip install --no-deps g4f==0.5.0.4
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from chatmagic.sandbox import Sandbox, reply_text

with warnings.catch_warnings():
    # g4f subclasses aiohttp.ClientSession at import time, which aiohttp deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    g4f = pytest.importorskip("g4f")
    from g4f.Provider import ChatGptEs
    from g4f.Provider.deprecated import Opchatgpts
    from g4f.Provider.not_working import Chatgpt4Online, ChatgptFree, ChatGptt

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:g4f"),
    pytest.mark.filterwarnings(
        "ignore:Inheritance class .* from ClientSession is discouraged:DeprecationWarning"
    ),
]

MESSAGES = [{"role": "user", "content": "Hello from g4f"}]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # Its own thread: ChatGptEs makes blocking requests inside its async generator,
    # which would freeze a server sharing the test's loop.
    sb = Sandbox().start_in_thread()
    yield sb
    sb.stop()


async def collect(provider: Any, messages: list[dict[str, str]], **kwargs: Any) -> str:
    out = []
    model = getattr(provider, "default_model", None) or ""
    async for chunk in provider.create_async_generator(model, messages, **kwargs):
        if isinstance(chunk, str):
            out.append(chunk)
    return "".join(out)


async def test_chatgptt(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sandbox.base_url("chatgptt")
    monkeypatch.setattr(ChatGptt, "url", base)
    monkeypatch.setattr(ChatGptt, "api_endpoint", f"{base}/wp-admin/admin-ajax.php")
    assert await collect(ChatGptt, MESSAGES) == reply_text("chatgptt", "Hello from g4f", 0)
    form = sandbox.requests[-1].form
    assert form is not None and form["wpaicg_chat_history"] == "None"


async def test_chatgptt_history(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sandbox.base_url("chatgptt")
    monkeypatch.setattr(ChatGptt, "url", base)
    monkeypatch.setattr(ChatGptt, "api_endpoint", f"{base}/wp-admin/admin-ajax.php")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
    ]
    assert await collect(ChatGptt, messages) == reply_text("chatgptt", "Three", 3)


async def test_chatgptes(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sandbox.base_url("chatgptes")
    monkeypatch.setattr(ChatGptEs, "url", base)
    monkeypatch.setattr(ChatGptEs, "api_endpoint", f"{base}/wp-admin/admin-ajax.php")
    assert await collect(ChatGptEs, MESSAGES) == reply_text("chatgptes", "Hello from g4f", 0)


async def test_chatgptfree(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ChatgptFree, "url", sandbox.base_url("chatgptfree"))
    # It keeps tokens on the class forever; start from none.
    monkeypatch.setattr(ChatgptFree, "_nonce", None)
    monkeypatch.setattr(ChatgptFree, "_post_id", None)
    assert await collect(ChatgptFree, MESSAGES) == reply_text("chatgptfree", "Hello from g4f", 0)


async def test_chatgpt4online(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import ClientSession

    base = sandbox.base_url("chatgpt4online")

    # The client hard-codes the real site's start_session address in get_nonce.
    async def get_nonce(headers: dict[str, str]) -> str:
        async with (
            ClientSession(headers=headers) as session,
            session.post(f"{base}/wp-json/mwai/v1/start_session") as response,
        ):
            return (await response.json())["restNonce"]

    monkeypatch.setattr(Chatgpt4Online, "url", base)
    monkeypatch.setattr(Chatgpt4Online, "get_nonce", get_nonce)
    assert await collect(Chatgpt4Online, MESSAGES) == reply_text("chatgpt4online", "Hello from g4f", 0)
    assert "x-wp-nonce" in sandbox.requests[-1].headers


async def test_opchatgpts(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Opchatgpts, "url", sandbox.base_url("opchatgpts"))
    messages = [
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Ok"},
        {"role": "user", "content": "Hello from g4f"},
    ]
    assert await collect(Opchatgpts, messages) == reply_text("opchatgpts", "Hello from g4f", 2)
    assert sandbox.requests[-1].headers["accept"] == "*/*"
