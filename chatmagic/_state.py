"""Process-wide state: the one ChatSession that the magics and panels share.

It lives here, not on the magics object, so ``%reload_ext chatmagic`` keeps the
conversations.
"""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Any

from ._logsink import LogSink
from .providers import _BUILTIN
from .providers.endpoints import PRESETS
from .session import STAND_IN_OTHERS, ChatSession

_lock = threading.Lock()
_session: ChatSession | None = None
_sandbox: Any = None


def get_session() -> ChatSession:
    """The kernel's session, with the loaded extension's settings (``%config ChatMagics``)."""
    global _session
    with _lock:
        if _session is None:
            _session = ChatSession()
            # the core hands each kept exchange to its sinks; the log's writer is the notebook's
            _session.sinks.append(LogSink(_session))
            # runs before the runner's own atexit (registered first): close connections cleanly
            atexit.register(_session.close)
        session = _session
    # the magics make the session at first use, not at load: whoever comes first (a panel
    # made from Python, a test) must still get their settings. Outside the lock: attaching
    # reads magics.session, which comes back here
    magics = _loaded_magics()
    if magics is not None:
        magics.attach(session)
    return session


def _loaded_magics() -> Any:
    """The shell's loaded ChatMagics (chatmagic._extension sets it), or None."""
    ipython = sys.modules.get("IPython")  # never imported here: no shell, no magics
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "_chatmagic_magics", None)


def running_sandbox() -> Any:
    """The stand-in started by ``%chat sandbox``, or None."""
    with _lock:
        return _sandbox


def start_sandbox(session: ChatSession) -> str:
    """Start the local stand-in (once) and point every built-in provider at it."""
    global _sandbox
    from .sandbox import Sandbox, SandboxSettings  # aiohttp.web: only when the stand-in starts

    with _lock:
        if _sandbox is None:
            # openai_api_key=None: the notebook flow needs no key (the user's environment is left alone)
            _sandbox = Sandbox(SandboxSettings(openai_api_key=None)).start_in_thread()
        sandbox = _sandbox
    urls = {name: sandbox.base_url(name) for name in (*_BUILTIN, *PRESETS)}
    # the user's own endpoints too: an OpenAI-compatible API, as the stand-in's openai
    urls[STAND_IN_OTHERS] = sandbox.base_url("openai")
    session.set_stand_in(urls)
    return str(sandbox.url)


def stop_sandbox(session: ChatSession) -> None:
    global _sandbox

    with _lock:
        sandbox, _sandbox = _sandbox, None
    session.set_stand_in(None)
    if sandbox is not None:
        sandbox.stop()
