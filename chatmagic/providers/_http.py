"""What the HTTP transports providers use have in common: the request a provider makes, the
answer it reads, the proxy, and the request body.

Providers speak to a :class:`Transport`: :class:`~._aiohttp.AiohttpTransport` for plain
sites, :class:`~._curl.CurlTransport` (curl_cffi's async session) where a site wants a
browser's TLS fingerprint, one module per library, each with its one error map. Both are
created lazily on the running loop (a session is bound to the loop it was made on), keep
their connections and cookies across turns, and hand back raw bytes: lines are framed by
:mod:`chatmagic.providers._lines`, never by the library.

Each library's exceptions are mapped to chatmagic's by one context manager (as httpx's
``map_exceptions``), around both the request and every read of the body. What a failure
means depends on how far the exchange got (no answer yet: could not connect; answered:
the connection was lost), which an :class:`_Exchange` records as it goes; the errors
themselves are worded here, once, by :class:`Transport`.

Timeouts bound the wait for the answer's head (connecting and sending included) and
each wait for the next bytes of the body, never the length of a long healthy stream.

Server text quoted in an error goes through :func:`~._status.excerpt` (secrets removed
before the cut) or, for a whole error body, :func:`~._status.body_summary`.

A proxy's password is registered as a secret, with the base64 ``user:password`` a proxy
sees (``_secrets.register_credentials``), so no message shows either; and the library's
exception that stays chained (``__cause__``) loses its credentials too: its repr quotes
the request's headers, ``Proxy-Authorization`` among them, and a proxy may echo them back.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from .._secrets import register_credentials
from ..errors import (
    ProviderConnectionError,
    ProviderTimeout,
    StreamInterrupted,
)
from ..options import DEFAULT_TIMEOUT
from ._status import excerpt

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # aiohttp depends on async-timeout before Python 3.11
    from async_timeout import timeout as deadline

__all__ = ["BROWSER_HEADERS", "Answer", "ProxySpec", "Transport", "deadline"]

BROWSER_HEADERS = {
    "user-agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
    "accept-language": "en-US,en;q=0.9",
}


class Answer(Protocol):
    """A response whose body has not been read yet."""

    status: int
    headers: Mapping[str, str]  # lower-case names

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


@dataclass(frozen=True)
class ProxySpec:
    """A proxy URL split into the address and its credentials, kept apart."""

    url: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, proxy: str | None) -> ProxySpec | None:
        if not proxy:
            return None
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        bare = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(bare, user, password)

    def basic_auth(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def with_credentials(self) -> str:
        if self.username is None:
            return self.url
        scheme, rest = self.url.split("://", 1)
        cred = quote(self.username, safe="")
        if self.password is not None:
            cred += ":" + quote(self.password, safe="")
        return f"{scheme}://{cred}@{rest}"


@dataclass
class _Exchange:
    """How far one request got; the error mapping reads it to say what failed."""

    answered: bool = False  # the response head has arrived
    started: bool = False  # body bytes have arrived


@dataclass
class Transport:
    """Base of both transports: the settings they share and the errors they raise."""

    provider: str
    proxy: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self._proxy = ProxySpec.parse(self.proxy)
        if self._proxy is not None:
            register_credentials(self._proxy.username, self._proxy.password, "proxy password")

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> AsyncIterator[Answer]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def aclose(self) -> None:
        raise NotImplementedError

    def _where(self) -> str:
        return f" through the proxy {self._proxy.url}" if self._proxy else ""

    def _timeout_error(self, started: bool) -> ProviderTimeout:
        what = "stopped sending" if started else "did not answer"
        return ProviderTimeout(
            self.provider,
            f"the site {what} for {self.timeout:g} s{self._where()}. "
            "Try again, raise --timeout, or use another provider (%chat providers).",
        )

    def _connect_error(self, exc: BaseException) -> ProviderConnectionError:
        return ProviderConnectionError(
            self.provider,
            f"could not connect{self._where()} ({_describe(exc)}). "
            "Check the address (--base-url) and --proxy, or use another provider.",
        )

    def _proxy_refused(self, status: int) -> ProviderConnectionError:
        return ProviderConnectionError(
            self.provider,
            f"the proxy {self._proxy.url if self._proxy else ''} refused the request "
            f"(HTTP {status}). Check the proxy address and its credentials.",
        )

    def _interrupted(self, exc: BaseException) -> StreamInterrupted:
        # what becomes of the text received so far is the session's to say, not ours
        return StreamInterrupted(
            self.provider,
            # the library's words ("TransferEncodingError: 400, message='Not enough data…'", where
            # 400 reads like an HTTP status) stay in __cause__: the user needs only what happened
            "the connection was cut in the middle of the reply. Run the cell again to retry.",
        )


def _describe(exc: BaseException) -> str:
    # a library's own words (host, port, the OS error) run to a few hundred characters;
    # the bound is for the text a server may have put in them
    text = excerpt(str(exc), 600)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _encode_body(headers: dict[str, str], data: Mapping[str, str] | None, json_body: Any) -> bytes | None:
    """The request body as bytes, its content type set in ``headers``: one encoding for both libraries."""
    if json_body is not None:
        headers.setdefault("content-type", "application/json")
        return json.dumps(json_body).encode()
    if data is not None:
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
        return b"&".join(_form_quote(str(k)) + b"=" + _form_quote(str(v)) for k, v in data.items())
    return None


def _form_quote(text: str) -> bytes:
    """``text`` form-encoded (as ``quote_plus``), by yarl's quoter in C where it is there.

    ``urlencode`` quotes a character at a time in Python: 5 ms for a 46,000-character prompt
    (what the history budget allows), which made a turn of a long conversation cost more
    than the first. yarl (aiohttp's own dependency) leaves a few more characters as they
    are (``*``, ``!``), which form decoding reads the same.
    """
    return _quote_form(text).encode("ascii")


def _quoter() -> Any:
    try:
        from yarl._quoting import _Quoter  # private, but aiohttp's own URL quoting

        quoter = _Quoter(qs=True, requote=False)
        if quoter("a b&c=d+é") == "a+b%26c%3Dd%2B%C3%A9":
            return quoter
    except (ImportError, TypeError):
        pass
    return quote_plus


_quote_form = _quoter()


class _BaseAnswer:
    """What both libraries' responses look like to the families."""

    def __init__(self, transport: Transport, resp: Any, status: int, exchange: _Exchange) -> None:
        self._t = transport
        self._resp = resp
        self._exchange = exchange
        self.status = status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in resp.headers.items()}

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])
