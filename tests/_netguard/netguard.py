"""The test suite's network guard: nothing leaves 127.0.0.1.

Every test talks to the local stand-in (``chatmagic.sandbox``) on loopback. A code path
that lost its base URL would fall back to the provider's public site, so this module
refuses, before anything is sent:

- ``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex`` and ``gethostbyaddr``
  for any name or address that is not loopback (a DNS query is traffic too);
- ``socket.socket.connect``, ``connect_ex`` and ``sendto`` to any address that is not
  loopback (aiohttp, asyncio, urllib, tornado, the openai client all end up here);
- a curl_cffi transfer (libcurl resolves and connects in C, below the ``socket``
  module) whose first hop, the proxy if one is set or else the URL's host, is not
  loopback; patched when ``curl_cffi`` is imported, so interpreters that never use it do
  not pay for it.

A refusal raises :class:`NetworkGuardError`, an ``OSError``, as an unreachable network
would; libraries may wrap it (chatmagic reports it as a ``ProviderConnectionError`` with
this message inside). Each refusal is also recorded, in memory and, in a subprocess, as a
line of the file named by ``CHATMAGIC_NETGUARD_LOG``, so the test session fails even when
some code swallows the error.

The test session installs it in its own process (``tests/conftest.py``) and, through
``sitecustomize.py`` next to this file on ``PYTHONPATH``, in every Python process it
starts: notebook kernels, JupyterLab, the command-line stand-in.
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.machinery
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LOG_VARIABLE", "NetworkGuardError", "install", "is_loopback", "refusals", "uninstall"]

#: the file a guarded subprocess appends its refusals to, one line each
LOG_VARIABLE = "CHATMAGIC_NETGUARD_LOG"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_WHY = (
    "Tests talk to 127.0.0.1 only (the local stand-in, chatmagic.sandbox): a code path lost its "
    "base URL and would have gone to a real site. Give it the stand-in's address (Sandbox.base_url)."
)


class NetworkGuardError(OSError):
    """A test tried to reach beyond loopback; nothing was sent."""

    def __init__(self, what: str) -> None:
        # (errno, strerror): libraries that quote only strerror (aiohttp) still show the message
        super().__init__(errno.EPERM, f"Network guard refused {what}. {_WHY}")
        self.what = what


def is_loopback(host: object) -> bool:
    """True for a loopback address or name (and for no host at all: a local or passive lookup)."""
    if host is None:
        return True
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in ("", *_LOOPBACK_NAMES) or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name that only DNS could answer
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # 0.0.0.0 and :: as a destination are this machine
    return ip.is_loopback or ip.is_unspecified


_lock = threading.Lock()
_refused: list[str] = []
_log: str | None = None
_saved: list[tuple[Any, str, Any]] = []


def refusals() -> list[str]:
    """What this process was refused so far, oldest first."""
    with _lock:
        return list(_refused)


def _refuse(what: str) -> NetworkGuardError:
    with _lock:
        _refused.append(what)
        if _log:
            try:
                with open(_log, "a", encoding="utf-8") as f:
                    f.write(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}): {what}\n")
            except OSError:
                pass  # the raised error still says it
    return NetworkGuardError(what)


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    _saved.append((owner, name, original))
    setattr(owner, name, make(original))


# -- the socket module -------------------------------------------------------------------


def _host_of(address: object) -> object:
    # AF_INET (host, port), AF_INET6 (host, port, flow, scope); anything else (a Unix
    # socket path, netlink) stays on this machine
    if isinstance(address, tuple) and len(address) >= 2:
        return address[0]
    return None


def _address_text(address: tuple[Any, ...]) -> str:
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def _guard_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if not is_loopback(_host_of(address)):
            raise _refuse(f"a connection to {_address_text(address)}")
        return original(self, address)

    return connect


def _guard_sendto(original: Callable[..., Any]) -> Callable[..., Any]:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        address = args[-1] if args else None
        if not is_loopback(_host_of(address)):
            raise _refuse(f"a datagram to {_address_text(address)}")
        return original(self, data, *args)

    return sendto


def _lookup_text(host: Any, port: Any) -> str:
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return f"to look up {host!r} (a DNS query leaves this machine)"
    # an address needs no lookup: this is the first step of connecting to it
    return f"a connection to {_address_text((host, port))}" if port is not None else f"the address {host}"


def _guard_lookup(original: Callable[..., Any]) -> Callable[..., Any]:
    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise _refuse(_lookup_text(host, args[0] if args else kwargs.get("port")))
        return original(host, *args, **kwargs)

    return lookup


def _guard_reverse_lookup(original: Callable[..., Any]) -> Callable[..., Any]:
    def gethostbyaddr(host: Any) -> Any:
        if not is_loopback(host):
            raise _refuse(f"to look up the name of {host!r} (a DNS query leaves this machine)")
        return original(host)

    return gethostbyaddr


# -- curl_cffi ------------------------------------------------------------------------------

_CURL_HOPS = "_netguard_hops"


def _curl_first_hop(curl: Any) -> str | None:
    hops = getattr(curl, _CURL_HOPS, {})
    target = hops.get("proxy") or hops.get("url")
    if not target:
        return None
    text = target.decode("utf-8", "replace") if isinstance(target, (bytes, bytearray)) else str(target)
    return text if "://" in text else f"http://{text}"


def _check_curl(curl: Any) -> None:
    hop = _curl_first_hop(curl)
    if hop is not None and not is_loopback(urlsplit(hop).hostname):
        raise _refuse(f"a curl request to {hop}")


def _patch_curl(module: ModuleType) -> None:
    from curl_cffi.const import CurlOpt  # imported by curl_cffi.curl itself

    watched = {CurlOpt.URL: "url", CurlOpt.PROXY: "proxy"}

    def setopt(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, option: Any, value: Any) -> Any:
            if option in watched:
                hops = self.__dict__.setdefault(_CURL_HOPS, {})
                hops[watched[option]] = value
            return original(self, option, value)

        return wrapper

    def reset(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any) -> Any:
            self.__dict__.pop(_CURL_HOPS, None)
            return original(self)

        return wrapper

    def perform(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            _check_curl(self)
            return original(self, *args, **kwargs)

        return wrapper

    _patch(module.Curl, "setopt", setopt)
    _patch(module.Curl, "reset", reset)
    _patch(module.Curl, "perform", perform)


def _patch_curl_aio(module: ModuleType) -> None:
    def add_handle(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, curl: Any) -> Any:
            _check_curl(curl)
            return original(self, curl)

        return wrapper

    _patch(module.AsyncCurl, "add_handle", add_handle)


_ON_IMPORT: dict[str, Callable[[ModuleType], None]] = {
    "curl_cffi.curl": _patch_curl,
    "curl_cffi.aio": _patch_curl_aio,
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _ON_IMPORT.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader: Any = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            patch(module)

        loader.exec_module = exec_module
        return spec


_finder = _PatchOnImport()


# -- on and off ---------------------------------------------------------------------------


def install(log: str | None = None) -> None:
    """Guard this process (idempotent); ``log``: a file to append refusals to."""
    global _log
    _log = log
    if _saved:
        return
    for name in ("connect", "connect_ex"):
        _patch(socket.socket, name, _guard_connect)
    _patch(socket.socket, "sendto", _guard_sendto)
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        _patch(socket, name, _guard_lookup)
    _patch(socket, "gethostbyaddr", _guard_reverse_lookup)
    sys.meta_path.insert(0, _finder)
    for name, patch in _ON_IMPORT.items():
        if name in sys.modules:  # imported before the guard
            patch(sys.modules[name])


def uninstall() -> None:
    """Put everything back as it was."""
    while _saved:
        owner, name, original = _saved.pop()
        setattr(owner, name, original)
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
