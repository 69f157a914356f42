"""Shared fixtures: the local stand-in (in the test's loop, or on a thread) and a shell."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chatmagic._state import get_session
from chatmagic.sandbox import Sandbox

SITES = ("chatgptt", "chatgptes", "chatgpt4online", "chatgptfree", "opchatgpts")


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """The stand-in, serving on the test's own event loop."""
    async with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_thread() -> Iterator[Sandbox]:
    """The stand-in on its own thread, for synchronous code (IPython shells, sessions)."""
    sb = Sandbox().start_in_thread()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def ip(sandbox_thread: Sandbox) -> Iterator[Any]:
    """A real IPython shell with chatmagic loaded, its providers pointed at the stand-in."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "chatmagic")
    # every provider, openai included, talks to the stand-in: no test can reach a real site
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai")}
    shell.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")
    yield shell
    shell.run_line_magic("unload_ext", "chatmagic")
    get_session().close()


@pytest.fixture
def fresh(ip: Any, sandbox_thread: Sandbox) -> Iterator[None]:
    """No conversations, default settings, an empty request log."""
    session = get_session()
    session.conversations.clear()
    ip.run_line_magic("config", "ChatMagics.default_provider = 'chatgptt'")
    ip.run_line_magic("config", "ChatMagics.default_model = ''")
    ip.run_line_magic("config", "ChatMagics.retries = 0")
    sandbox_thread.clear()
    yield
