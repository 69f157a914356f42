"""Shared fixtures: the local stand-in (in the test's loop, or on a thread) and a shell."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

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
