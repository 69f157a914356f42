"""The provider registry.

Built-in providers are named by module path and imported on first use, so that
``%load_ext chatmagic`` stays fast. Third-party packages add providers through the
entry-point group ``chatmagic.providers`` (``name = "package.module:Class"``), or at
run time with :func:`register`. Named OpenAI-compatible endpoints (the presets ``ollama``,
``llamacpp``, ``vllm``, ``lmstudio`` and ``ChatMagics.endpoints``) are found by
:func:`get_provider` and listed by :func:`list_providers` too (:mod:`.endpoints`).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, UnknownProviderError

if TYPE_CHECKING:
    from .base import Provider

__all__ = ["ENTRY_POINT_GROUP", "get_provider", "list_providers", "provider_names", "register"]

ENTRY_POINT_GROUP = "chatmagic.providers"

_BUILTIN: dict[str, str] = {
    "chatgptt": "chatmagic.providers.chatgptt:ChatGptt",
    "chatgptes": "chatmagic.providers.chatgptes:ChatGptEs",
    "chatgpt4online": "chatmagic.providers.chatgpt4online:Chatgpt4Online",
    "chatgptfree": "chatmagic.providers.chatgptfree:ChatgptFree",
    "opchatgpts": "chatmagic.providers.opchatgpts:Opchatgpts",
    "openai": "chatmagic.providers.openai:OpenAICompatible",
}

_lock = threading.Lock()
_paths: dict[str, str] = dict(_BUILTIN)
_loaded: dict[str, type[Provider]] = {}
_entry_points_read = False


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _paths.setdefault(ep.name.lower(), ep.value)


def register(cls: type[Provider], name: str | None = None) -> type[Provider]:
    """Add a provider class (usable as a decorator)."""
    key = (name or cls.name).lower()
    with _lock:
        _loaded[key] = cls
        _paths[key] = f"{cls.__module__}:{cls.__qualname__}"
    return cls


def provider_names() -> list[str]:
    with _lock:
        _read_entry_points()
        return sorted(_paths)


def get_provider(name: str) -> type[Provider]:
    """The provider class for ``name`` (case-insensitive)."""
    from .base import Provider

    key = name.strip().lower()
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key not in _paths:
            _read_entry_points()
        path = _paths.get(key)
    if path is None:
        from .endpoints import endpoint_names, find_endpoint

        endpoint = find_endpoint(key)
        if endpoint is not None:
            return endpoint
        known = sorted({*provider_names(), *endpoint_names()})
        raise UnknownProviderError(f"No provider named {name!r}. Known providers: {', '.join(known)}.")
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"The provider {name!r} could not be loaded from {path} ({exc}). Is its package installed?"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, Provider)):
        raise ConfigurationError(f"{path} is not a chatmagic Provider class.")
    with _lock:
        _loaded[key] = obj
    return obj


def list_providers() -> list[dict[str, Any]]:
    """Every provider with its models and flags (what ``%chat providers`` shows)."""
    from .endpoints import endpoint_names

    rows = []
    for name in provider_names():
        try:
            rows.append(get_provider(name).describe())
        except ConfigurationError as exc:
            rows.append({"name": name, "error": str(exc)})
    rows += [get_provider(name).describe() for name in endpoint_names() if name not in provider_names()]
    return rows
