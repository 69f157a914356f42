"""Running an async server on its own event loop in a daemon thread.

Synchronous callers (IPython tests, notebooks whose own loop is busy) get a
server without touching their loop, the same way IPython's %%script does it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """Mixin: subclasses define ``async start()`` and ``async aclose()``."""

    _thread: threading.Thread | None = None
    _thread_loop: asyncio.AbstractEventLoop | None = None
    _stopped: bool = False

    async def start(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start_in_thread(self, timeout: float = 30.0) -> Any:
        """Serve from a private event loop on a daemon thread; returns self once listening."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread_loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            # As asyncio.run does: cancel what is left (handlers of connections
            # still open) and let it finish, or closing the loop reports
            # "Task was destroyed but it is pending".
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{type(self).__name__}-loop", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop a server started with start_in_thread (idempotent)."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        self._thread_loop = self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
