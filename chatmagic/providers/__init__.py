"""The provider registry.

Built-in providers are named by module path and imported on first use, so that
``%load_ext chatmagic`` stays fast. Third-party packages add providers through the
entry-point group ``chatmagic.providers`` (``name = "package.module:Class"``), or at
run time with :func:`register`. Named OpenAI-compatible endpoints (the presets ``ollama``,
``llamacpp``, ``vllm``, ``lmstudio`` and ``ChatMagics.endpoints``) are found by
:func:`get_provider` and listed by :func:`list_providers` too (:mod:`.endpoints`).

The registry is the top of the providers package: it imports the endpoints and, by path,
the provider modules; none of them imports it back (the ``providers-registry-on-top``
contract in pyproject.toml). The built-in paths are data in :mod:`._builtin`, which both
the registry and the endpoints' name check read.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, UnknownProviderError
from ._builtin import BUILTIN as _BUILTIN
from .endpoints import endpoint_names, find_endpoint

if TYPE_CHECKING:
    from .base import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "check_provider_names",
    "get_provider",
    "list_providers",
    "provider_names",
    "register",
]

ENTRY_POINT_GROUP = "chatmagic.providers"

_lock = threading.Lock()
_paths: dict[str, str] = dict(_BUILTIN)
_loaded: dict[str, type[Provider]] = {}
_entry_points_read = False


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    # at first need: importlib.metadata with what it imports took 44-52 ms here (-X importtime)
    from importlib.metadata import entry_points

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
        endpoint = find_endpoint(key)
        if endpoint is not None:
            return endpoint
        raise unknown_provider(name, {*provider_names(), *endpoint_names()})
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


def unknown_provider(name: str, known: set[str]) -> UnknownProviderError:
    """The error for a name no provider has, with the nearest known name first ("did you mean")."""
    names = ", ".join(sorted(known))
    near = difflib.get_close_matches(name.strip().lower(), sorted(known), n=1, cutoff=0.6)
    if near:
        return UnknownProviderError(
            f"No provider named {name!r}: did you mean {near[0]!r}? Known providers: {names}."
        )
    return UnknownProviderError(f"No provider named {name!r}. Known providers: {names}.")


def check_provider_names(names: list[str], also: Collection[str] = ()) -> None:
    """Raise :class:`UnknownProviderError` for the first name nothing provides, without importing
    any provider (``also``: endpoints about to be configured, e.g. in the same config file)."""
    known = {*provider_names(), *endpoint_names(), *also}
    for name in names:
        if name not in known:
            raise unknown_provider(name, known)


def list_providers() -> list[dict[str, Any]]:
    """Every provider with its models and flags (what ``%chat providers`` shows)."""
    rows = []
    for name in provider_names():
        try:
            rows.append(get_provider(name).describe())
        except ConfigurationError as exc:
            rows.append({"name": name, "error": str(exc)})
    rows += [get_provider(name).describe() for name in endpoint_names() if name not in provider_names()]
    return rows
