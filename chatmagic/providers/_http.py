"""The two HTTP transports providers use, and the one place foreign errors are mapped.

Providers speak to a :class:`Transport`: ``aiohttp`` for plain sites, ``curl_cffi``'s
async session where a site wants a browser's TLS fingerprint. Both are created lazily
on the running loop (a session is bound to the loop it was made on), keep their
connections and cookies across turns, and hand back raw bytes: lines are framed by
:mod:`chatmagic.providers._lines`, never by the library.

Timeouts bound connecting and the wait for the next bytes, never the length of a
long healthy stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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

DEFAULT_TIMEOUT = 120.0

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
class Transport:
    """Base of both transports: the settings they share and the error mapping."""

    provider: str
    proxy: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self._proxy = ProxySpec.parse(self.proxy)

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

    def _timeout_error(self, exc: BaseException, started: bool) -> ProviderTimeout:
        what = "stopped sending" if started else "did not answer"
        return ProviderTimeout(
            self.provider,
            f"the site {what} for {self.timeout:g} s{self._where()}. "
            "Try again, raise --timeout, or use another provider (%chat providers).",
        )

    def _connect_error(self, exc: BaseException) -> ProviderConnectionError:
        return ProviderConnectionError(
            self.provider,
            f"could not connect{self._where()} ({redact(_describe(exc))}). "
            "Check the address (--base-url) and --proxy, or use another provider.",
        )

    def _interrupted(self, exc: BaseException) -> StreamInterrupted:
        return StreamInterrupted(
            self.provider,
            f"the connection was lost in the middle of the reply ({redact(_describe(exc))}). "
            "The text received so far is kept; run the cell again to retry.",
        )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        import aiohttp

        session = self._get_session()
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if data is not None:
            kwargs["data"] = dict(data)
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            kwargs["headers"].setdefault("content-type", "application/json")
        if self._proxy:
            kwargs["proxy"] = self._proxy.url
            if self._proxy.username is not None:
                # credentials go in a header, never in the URL aiohttp puts in its errors
                # (aiohttp's BasicAuth is deprecated): for https the CONNECT carries them,
                # for plain http the request itself, which aiohttp sends to the proxy
                auth = self._proxy.basic_auth()
                kwargs["proxy_headers"] = {"Proxy-Authorization": auth}
                if url.startswith("http://"):
                    kwargs["headers"]["Proxy-Authorization"] = auth
        try:
            resp = await session.request(method, url, **kwargs)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise self._timeout_error(exc, started=False) from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise ProviderConnectionError(
                self.provider,
                f"the proxy {self._proxy.url if self._proxy else ''} refused the request "
                f"(HTTP {exc.status}). Check the proxy address and its credentials.",
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._connect_error(exc) from exc
        try:
            yield _AiohttpAnswer(self, resp)
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

    def __init__(self, transport: Transport, resp: Any, status: int) -> None:
        self._t = transport
        self._resp = resp
        self.status = status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in resp.headers.items()}

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


class _AiohttpAnswer(_BaseAnswer):
    def __init__(self, transport: AiohttpTransport, resp: Any) -> None:
        super().__init__(transport, resp, resp.status)

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        started = False
        try:
            async for chunk in self._resp.content.iter_any():
                started = True
                yield chunk
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise self._t._timeout_error(exc, started=started) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._t._interrupted(exc) from exc


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
            self._session = AsyncSession(
                impersonate=self.impersonate,
                headers=self.headers,
                cookies=self.cookies,
                proxy=self._proxy.with_credentials() if self._proxy else None,
                # with stream=True a number is an idle timeout (connect + low-speed limit)
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
        from curl_cffi.requests import exceptions as cx

        try:
            resp = await session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=dict(data) if data is not None else None,
                json=json_body,
                stream=True,
            )
        except cx.Timeout as exc:
            raise self._timeout_error(exc, started=False) from exc
        except cx.RequestException as exc:
            raise self._connect_error(exc) from exc
        try:
            yield _CurlAnswer(self, resp)
        except BaseException:
            await _abort_curl(session, resp)
            raise
        else:
            await _abort_curl(session, resp)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


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
    try:
        session.acurl.remove_handle(resp.curl)
    except Exception:  # noqa: BLE001 - best effort; the task is cancelled below anyway
        pass
    task.cancel()
    # asyncio.wait does not raise the task's CancelledError into this coroutine
    await asyncio.wait([task])


class _CurlAnswer(_BaseAnswer):
    def __init__(self, transport: CurlTransport, resp: Any) -> None:
        super().__init__(transport, resp, resp.status_code)

    async def chunks(self) -> AsyncIterator[bytes]:
        from curl_cffi.requests import exceptions as cx

        started = False
        reads = self._resp.aiter_content()
        try:
            while True:
                # curl's low-speed limit averages over several seconds, so a burst
                # followed by silence is not caught in time: bound each read here
                try:
                    chunk = await asyncio.wait_for(reads.__anext__(), self._t.timeout)
                except StopAsyncIteration:
                    return
                started = True
                yield chunk
        except (cx.Timeout, asyncio.TimeoutError) as exc:
            raise self._t._timeout_error(exc, started=started) from exc
        except cx.RequestException as exc:
            raise self._t._interrupted(exc) from exc
        finally:
            await reads.aclose()


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
    hint = {
        404: "The address may be wrong: check --base-url.",
        429: "The site is rate-limiting: wait a little, or use another provider.",
    }.get(status, "The site may be down: try again later, or use another provider.")
    snippet = " ".join(body.split())[:120]
    return HTTPStatusError(
        provider,
        f"the site answered HTTP {status}{f' ({snippet})' if snippet else ''}. {hint}",
        status=status,
        retry_after=retry_after(headers),
    )
