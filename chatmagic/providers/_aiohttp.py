"""The aiohttp transport, for plain sites, and the one place aiohttp's exceptions are mapped
(:func:`_aiohttp_errors`, around the request and every read of the body).

Credentials never ride in a URL aiohttp puts in its errors: a proxy's go in a header, and
an error that stays chained loses them (:func:`_without_credentials`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from ..errors import redact
from ._http import Answer, Transport, _BaseAnswer, _encode_body, _Exchange, deadline

__all__ = ["AiohttpTransport"]


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
            async with deadline(self.timeout):
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
