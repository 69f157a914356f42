"""The two HTTP transports providers use, and the one place foreign errors are mapped.

Providers speak to a :class:`Transport`: ``aiohttp`` for plain sites, ``curl_cffi``'s
async session where a site wants a browser's TLS fingerprint. Both are created lazily
on the running loop (a session is bound to the loop it was made on), keep their
connections and cookies across turns, and hand back raw bytes: lines are framed by
:mod:`chatmagic.providers._lines`, never by the library.

Each library's exceptions are mapped to chatmagic's by one context manager,
:func:`_aiohttp_errors` and :func:`_curl_errors` (as httpx's ``map_exceptions``), around
both the request and every read of the body. What a failure means depends on how far the
exchange got (no answer yet: could not connect; answered: the connection was lost), which
an :class:`_Exchange` records as it goes.

Timeouts bound the wait for the answer's head (connecting and sending included) and
each wait for the next bytes of the body, never the length of a long healthy stream.

Server text quoted in an error goes through :func:`excerpt` (secrets removed before the
cut) or, for a whole error body, :func:`body_summary` (an HTML page by its title).

A proxy's password is registered as a secret, with the base64 ``user:password`` a proxy
sees (``_secrets.register_credentials``), so no message shows either; and the library's
exception that stays chained (``__cause__``) loses its credentials too: its repr quotes
the request's headers, ``Proxy-Authorization`` among them, and a proxy may echo them back.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import io
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from .._secrets import register_credentials
from ..errors import (
    BotCheckError,
    HTTPStatusError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamInterrupted,
    redact,
)
from ..options import DEFAULT_TIMEOUT
from ._lines import valid_text

if sys.version_info >= (3, 11):
    from asyncio import timeout as _deadline
else:  # aiohttp depends on async-timeout before Python 3.11
    from async_timeout import timeout as _deadline

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


# -- aiohttp ---------------------------------------------------------------------------


@contextmanager
def _aiohttp_errors(transport: Transport, exchange: _Exchange) -> Iterator[None]:
    """aiohttp's exceptions, from the request or from a read of the body, as chatmagic's."""
    import aiohttp

    try:
        yield
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise transport._timeout_error(exchange.started) from exc
    except aiohttp.ClientHttpProxyError as exc:
        raise transport._proxy_refused(exc.status) from _without_credentials(exc)
    except (aiohttp.ClientError, OSError) as exc:
        if exchange.answered:
            raise transport._interrupted(exc) from exc
        raise transport._connect_error(exc) from exc


def _without_credentials(exc: Any) -> Any:
    """aiohttp's ``ClientResponseError`` as it may stay chained: the request's headers and the
    answer's (a proxy may echo them) without credentials, its message scrubbed."""
    from multidict import CIMultiDict, CIMultiDictProxy

    def clean(headers: Any) -> Any:
        if headers is None:
            return None
        kept: CIMultiDict[str] = CIMultiDict()
        for name, value in headers.items():
            secret = name.lower() in ("authorization", "proxy-authorization", "cookie", "set-cookie")
            kept.add(name, "***" if secret else redact(value))
        return CIMultiDictProxy(kept)

    info = getattr(exc, "request_info", None)
    if info is not None:
        exc.request_info = info._replace(headers=clean(info.headers))
        exc.args = (exc.request_info, *exc.args[1:])
    exc.headers = clean(getattr(exc, "headers", None))
    if isinstance(getattr(exc, "message", None), str):
        exc.message = redact(exc.message)
    return exc


class AiohttpTransport(Transport):
    """aiohttp client session with a cookie jar that also keeps cookies of IP hosts."""

    _session: Any = None

    def _get_session(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            connect = self.timeout
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                cookies=self.cookies,
                # unsafe=True: keep cookies of IP addresses too (mirrors, the local stand-in)
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                # total=None: a long healthy stream must not be killed by a global deadline
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=connect),
                trust_env=False,
            )
        return self._session

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
        session = self._get_session()
        sent = dict(headers or {})
        kwargs: dict[str, Any] = {"headers": sent}
        body = _encode_body(sent, data, json_body)
        if body is not None:
            # aiohttp warns (ResourceWarning) about a bytes or str body over 1 MiB, a long
            # conversation, and under -W error that warning is raised out of the request;
            # a BytesIO is sent in pieces that give the loop a turn, without a warning
            kwargs["data"] = io.BytesIO(body)
        if self._proxy:
            kwargs["proxy"] = self._proxy.url
            if self._proxy.username is not None:
                # credentials go in a header, never in the URL aiohttp puts in its errors
                # (aiohttp's BasicAuth is deprecated): for https the CONNECT carries them,
                # for plain http the request itself, which aiohttp sends to the proxy
                auth = self._proxy.basic_auth()
                kwargs["proxy_headers"] = {"Proxy-Authorization": auth}
                if url.startswith("http://"):
                    sent["Proxy-Authorization"] = auth
        exchange = _Exchange()
        with _aiohttp_errors(self, exchange):
            # sock_read alone misses a site that sends "100 Continue" and then nothing:
            # aiohttp waits for the final head without a deadline. A deadline in this task,
            # not wait_for's extra task: that turn of the loop is enough for a quick server
            # to send its reply and reset the connection, and aiohttp drops data it holds
            # once the connection has failed
            async with _deadline(self.timeout):
                resp = await session.request(method, url, **kwargs)
        exchange.answered = True
        try:
            yield _AiohttpAnswer(self, resp, exchange)
        except BaseException:
            # stopped or failed mid-body: drop the connection instead of draining it
            resp.close()
            raise
        else:
            resp.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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


class _AiohttpAnswer(_BaseAnswer):
    def __init__(self, transport: AiohttpTransport, resp: Any, exchange: _Exchange) -> None:
        super().__init__(transport, resp, resp.status, exchange)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            with _aiohttp_errors(self._t, self._exchange):
                chunk = await self._resp.content.readany()
            if not chunk:  # end of the body
                return
            self._exchange.started = True
            yield chunk


# -- curl_cffi -------------------------------------------------------------------------


@contextmanager
def _curl_errors(transport: Transport, exchange: _Exchange) -> Iterator[None]:
    """curl_cffi's exceptions, from the request or from a read of the body, as chatmagic's."""
    from curl_cffi.curl import CurlError
    from curl_cffi.requests import exceptions as cx

    try:
        yield
    except (cx.Timeout, asyncio.TimeoutError) as exc:
        raise transport._timeout_error(exchange.started) from exc
    except CurlError as exc:  # RequestException and the rest of curl_cffi's tree
        if exchange.answered:
            raise transport._interrupted(exc) from exc
        raise transport._connect_error(exc) from exc


#: the curl handles a request in this context took from the session's pool, so that a
#: request given up before its head came can end its transfer (see ``_session_class``)
_taken_handles: ContextVar[list[Any] | None] = ContextVar("chatmagic_curl_handles", default=None)


@functools.cache
def _session_class(base: type) -> type:
    """curl_cffi's ``AsyncSession`` (``base``, imported by the caller), telling which handle each request takes.

    A streamed request waits for the response head inside curl_cffi; cancelled there
    (our timeout, the user's stop), it leaves the transfer running in the multi-handle
    until curl gives up on its own, and no response object exists to end it with. The
    handle is what ends it, and ``pop_curl`` is where a request takes it.
    """

    class _Session(base):
        async def pop_curl(self) -> Any:
            curl = await super().pop_curl()
            taken = _taken_handles.get()
            if taken is not None:
                taken.append(curl)
            return curl

    return _Session


class CurlTransport(Transport):
    """curl_cffi async session impersonating a browser's TLS and HTTP/2 fingerprint."""

    impersonate: str = "chrome110"
    _session: Any = None

    def _get_session(self) -> Any:
        if self._session is None:
            try:
                from curl_cffi.requests import AsyncSession
            except ImportError as exc:
                raise MissingDependencyError(
                    f"{self.provider} needs the curl_cffi package to pass the site's bot "
                    "check: pip install curl_cffi"
                ) from exc
            self._session = _session_class(AsyncSession)(
                impersonate=self.impersonate,
                headers=self.headers,
                cookies=self.cookies,
                proxy=self._proxy.with_credentials() if self._proxy else None,
                # with stream=True a number is an idle timeout (connect + low-speed limit);
                # the wait for the head and for each read are bounded here besides
                timeout=self.timeout if self.timeout is not None else 0,  # 0: no limit
                trust_env=False,
            )
        return self._session

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
        session = self._get_session()  # first: says clearly when curl_cffi is missing
        sent = dict(headers or {})
        body = _encode_body(sent, data, json_body)
        exchange = _Exchange()
        with _curl_errors(self, exchange):
            resp = await self._head(session, method, url, sent, body)
        exchange.answered = True
        try:
            yield _CurlAnswer(self, resp, exchange)
        finally:
            await _abort_curl(session, resp)

    async def _head(
        self, session: Any, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Any:
        """Send the request and wait for the response head, at most ``timeout`` seconds.

        curl's low-speed limit is not a deadline (it is curl's running estimate of the
        transfer speed, and was seen giving up seconds late), and a request stopped
        while curl_cffi waits for the head would leave its transfer running: both are
        handled here.
        """
        taken: list[Any] = []
        token = _taken_handles.set(taken)
        try:
            async with _deadline(self.timeout):
                return await session.request(method, url, headers=headers, data=body, stream=True)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            # given up while curl_cffi waited for the head: end the transfer it leaves
            # running; its own task then finishes and puts the handle back in the pool
            if taken:
                _remove_handle(session, taken[-1])
            raise
        finally:
            _taken_handles.reset(token)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _remove_handle(session: Any, curl: Any) -> None:
    """Take a transfer out of curl's multi-handle: it stops at once, its connection closed."""
    try:
        session.acurl.remove_handle(curl)
    except Exception:  # noqa: BLE001 - best effort: the transfer may have just ended by itself
        pass


async def _abort_curl(session: Any, resp: Any) -> None:
    """End a curl_cffi stream now.

    ``Response.aclose`` waits for the whole transfer to finish, and its ``quit_now``
    flag is only read when more bytes arrive, so a stalled or long stream would keep
    a stopped reply open. Removing the handle from the multi-handle aborts at once.
    """
    task = getattr(resp, "astream_task", None)
    if task is None or task.done():
        return
    if resp.quit_now is not None:
        resp.quit_now.set()
    _remove_handle(session, resp.curl)
    task.cancel()
    # asyncio.wait does not raise the task's CancelledError into this coroutine
    await asyncio.wait([task])


class _CurlAnswer(_BaseAnswer):
    def __init__(self, transport: CurlTransport, resp: Any, exchange: _Exchange) -> None:
        super().__init__(transport, resp, resp.status_code, exchange)

    async def chunks(self) -> AsyncIterator[bytes]:
        reads = self._resp.aiter_content()
        try:
            while True:
                with _curl_errors(self._t, self._exchange):
                    # curl's low-speed limit averages over several seconds, so a burst
                    # followed by silence is not caught in time: bound each read here
                    try:
                        async with _deadline(self._t.timeout):
                            chunk = await reads.__anext__()
                    except StopAsyncIteration:
                        return
                self._exchange.started = True
                yield chunk
        finally:
            await reads.aclose()


# -- status errors ---------------------------------------------------------------------

#: how much of a server's text is scrubbed for an excerpt: scrubbing is not linear in the
#: text, and an error body can be megabytes; a key straddling this bound still loses every
#: piece of 8 characters or more to the fragment scrubbing
_SCRUB_WINDOW = 2048
#: how far into a body its <title> or first <h1> is looked for
_HTML_WINDOW = 65536

# markup of any kind (HTML, XML): the first thing in the body is a tag
_HTML_START = re.compile(r"\s*<[!?a-zA-Z]")
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.IGNORECASE | re.DOTALL)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]*>")


def excerpt(text: str, limit: int = 120) -> str:
    """Server text as an error may quote it: one line, secrets removed, at most ``limit`` characters.

    Secrets are removed before the cut: a cut through an echoed API key would leave a
    piece the scrubber no longer sees as the key.
    """
    line = " ".join(valid_text(text[:_SCRUB_WINDOW]).split())
    clean = redact(line)
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


def body_summary(body: str, limit: int = 120) -> str:
    """What an error says about an error body: its text, or an HTML page by its title.

    A web page (a proxy's or a CDN's error page) is named by its ``<title>`` or first
    ``<h1>``; its markup is never pasted into a message.
    """
    if not _HTML_START.match(body[:1024]):
        return excerpt(body, limit)
    head = body[:_HTML_WINDOW]
    for pattern in (_TITLE, _H1):
        m = pattern.search(head)
        if m:
            text = excerpt(html.unescape(_TAG.sub(" ", m.group(1))), limit)
            if text:
                return text
    text = html.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", head[:_SCRUB_WINDOW])))
    return excerpt(text, limit) or "a web page"


def is_bot_check(status: int, headers: Mapping[str, str], body: str) -> bool:
    """Cloudflare's challenge: 403/503, ``cf-mitigated: challenge`` or its page title."""
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    return status in (403, 429, 503) and (
        "Just a moment..." in body or "challenge-platform" in body or "cf-chl" in body
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


TOO_LONG_HINT = "Start a new conversation with --new, or shorten the message."


def status_error(provider: str, status: int, headers: Mapping[str, str], body: str) -> ProviderError:
    """The error for an answer that is not 2xx (after the family looked for its own refusals)."""
    if is_bot_check(status, headers, body):
        return BotCheckError(
            provider,
            f"the site's bot check (Cloudflare, HTTP {status}) answered instead of the chat. "
            "Try --proxy, or another provider: %chat providers",
            status=status,
        )
    if status == 407:
        return ProviderConnectionError(
            provider,
            "the proxy asked for credentials or refused them (HTTP 407). "
            "Check the user and password in --proxy.",
        )
    snippet = body_summary(body)
    said = f"HTTP {status}{f': {snippet}' if snippet else ''}"
    if status == 413:
        return HTTPStatusError(
            provider,
            f"the conversation is too long for the site ({said}). {TOO_LONG_HINT}",
            status=status,
        )
    hint = {
        404: "The address may be wrong: check --base-url.",
        429: "The site is rate-limiting: wait a little, or use another provider.",
    }.get(status, "The site may be down: try again later, or use another provider.")
    return HTTPStatusError(
        provider,
        f"the site answered HTTP {status}{f' ({snippet})' if snippet else ''}. {hint}",
        status=status,
        retry_after=retry_after(headers),
    )
