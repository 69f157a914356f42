"""The curl_cffi transport, for sites that want a browser's TLS fingerprint, and the one place
curl_cffi's exceptions are mapped (:func:`_curl_errors`, around the request and every read).

A curl transfer does not stop when the task waiting on it is cancelled: a request given up
before its head came, or a stream stopped mid-body, takes its handle out of curl's
multi-handle here (:func:`_remove_handle`, :func:`_abort_curl`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from ..errors import MissingDependencyError
from ._http import Answer, Transport, _BaseAnswer, _encode_body, _Exchange, deadline

__all__ = ["CurlTransport"]


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
            async with deadline(self.timeout):
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
                        async with deadline(self._t.timeout):
                            chunk = await reads.__anext__()
                    except StopAsyncIteration:
                        return
                self._exchange.started = True
                yield chunk
        finally:
            await reads.aclose()
