"""The session's provider instances, and listing a provider's models.

A provider instance holds its connections, cookies, nonces and tokens: the pool keeps one
per (provider, address, proxy, timeout), across turns, and closes them all on the loop they
were made on. :func:`list_models` answers ``%chat models`` and the panel's model box.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from ..errors import ProviderTimeout
from ..runner import Runner

if TYPE_CHECKING:  # the type only: the HTTP layer comes with the first provider made
    from ..providers.base import Provider

#: how long %chat models and the panel wait for a server's list
LIST_MODELS_TIMEOUT = 10.0


class ProviderPool:
    """Provider instances kept across turns, one per (class, base URL, proxy, timeout)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[tuple[Any, ...], Provider] = {}

    def get(
        self, cls: type[Provider], base_url: str | None, proxy: str | None, timeout: float | None
    ) -> Provider:
        key = (cls, base_url, proxy, timeout)
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = cls(base_url=base_url, proxy=proxy, timeout=timeout)
        return provider

    def close(self, runner: Runner) -> None:
        """Close every provider's connections (on ``runner``'s loop, where they were made)."""
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
        if not providers:
            return

        async def close_all() -> None:
            await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)

        try:
            runner.run(close_all(), timeout=10)
        except Exception:  # noqa: BLE001 - closing is best effort at shutdown
            pass


def list_models(
    cls: type[Provider], base_url: str | None, proxy: str | None, runner: Runner, timeout: float
) -> list[str]:
    """The models ``cls`` offers: a server's own list (``GET /models`` at ``base_url``) when
    the provider can ask its server (OpenAI-compatible ones), else the models chatmagic knows
    for a web site's chat.

    Raises the provider's error (connection, key, ...) as one line, or ``ProviderTimeout``.
    """
    # a provider that can ask its server has list_models (chatmagic.providers.openai): asked
    # so, the core need not import that module (nor its HTTP layer) to tell them apart
    if not callable(getattr(cls, "list_models", None)):
        return sorted({cls.default_model, *cls.models, *cls.model_aliases})

    async def ask() -> list[str]:
        server: Any = cls(base_url=base_url, proxy=proxy, timeout=timeout)
        async with server:
            names: list[str] = await asyncio.wait_for(server.list_models(), timeout)
            return names

    try:
        return runner.run(ask(), timeout=timeout + 5)
    except (asyncio.TimeoutError, TimeoutError):
        raise ProviderTimeout(
            cls.label, f"the server did not list its models within {timeout:g} s."
        ) from None
