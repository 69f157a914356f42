"""chatmagic: chat models in Jupyter.

``%load_ext chatmagic`` registers ``%%chat`` and ``%chat``; no HTTP library, provider
or renderer is imported until the first chat. See ``%%chat?`` for the manual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ChatMagicError

__all__ = [
    "ChatMagicError",
    "__version__",
    "get_session",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


def load_ipython_extension(ipython: InteractiveShell) -> None:
    from ._extension import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from ._extension import unload

    unload(ipython)


def get_session() -> Any:
    """The kernel's shared :class:`chatmagic.session.ChatSession` (cells and panels use it)."""
    from ._state import get_session as _get

    return _get()


def __getattr__(name: str) -> Any:
    # public names that pull in heavier modules are imported on first access
    if name in ("ChatSession", "Conversation", "Turn", "TurnOptions"):
        from . import session

        return getattr(session, name)
    if name == "tool":  # @chatmagic.tool: the tool specs are imported only when used
        from .toolspec import tool

        return tool
    if name == "ChatPanel":
        from .panel import ChatPanel

        return ChatPanel
    raise AttributeError(f"module 'chatmagic' has no attribute {name!r}")
