"""Whether a local server's model takes images, as the server says (for ``--context plots``).

Providers layer, quiet like :mod:`chatmagic.providers.window` (whose probes it shares): a server
that does not say, refuses or times out gives ``None`` ("unknown": the images go, and the
server has the last word).

=========== ====================================================== =====================
server      where                                                  says
=========== ====================================================== =====================
llama.cpp   ``GET {root}/props`` → ``modalities.vision``            ``true`` / ``false``
Ollama      ``POST {root}/api/show {"model"}`` → ``capabilities``   ``"vision"`` among them
=========== ====================================================== =====================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .window import _dig, _json, _with_session, server_root

if TYPE_CHECKING:
    import aiohttp

__all__ = ["sees_images"]


async def sees_images(base_url: str, model: str, *, headers: Mapping[str, str] | None = None) -> bool | None:
    """True or False when the server behind ``base_url`` says whether ``model`` takes images; else None."""
    root = server_root(base_url)

    async def ask(s: aiohttp.ClientSession) -> bool | None:
        vision = _dig(await _json(s, "GET", f"{root}/props"), "modalities", "vision")
        if isinstance(vision, bool):
            return vision
        if not model:  # Ollama describes a model it is named
            return None
        shown = await _json(s, "POST", f"{root}/api/show", {"model": model})
        capabilities = shown.get("capabilities") if isinstance(shown, dict) else None
        return "vision" in capabilities if isinstance(capabilities, list) else None

    result: bool | None = await _with_session(None, headers, ask)
    return result
