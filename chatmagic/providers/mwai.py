"""Family B: the "AI Engine" WordPress plugin (``mwai``), JSON to the WP REST API.

The message goes as JSON to ``/wp-json/mwai-ui/v1/chats/submit``; the answer streams
``data: {"type": "live"|"end"|"error", "data": ...}`` events. A site that wants a REST
nonce hands one out at ``/wp-json/mwai/v1/start_session``; it is kept across turns and
fetched again once when refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ProtocolError, ServiceError, StreamInterrupted
from ._family import NonceRefused, content_type, event_objects, parse_json, try_json, with_token_retry
from ._lines import sse_events
from ._status import excerpt, status_error
from ._wire import Part
from .base import HTTPProvider

if TYPE_CHECKING:
    from ..attachments import Attachment

SESSION_PATH = "/wp-json/mwai/v1/start_session"


class MwaiProvider(HTTPProvider):
    """A site running AI Engine. Subclasses say whether it wants a nonce and build the body."""

    api_path = "/wp-json/mwai-ui/v1/chats/submit"
    referer_path: ClassVar[str] = "/"
    uses_nonce: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._nonce: str | None = None

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        raise NotImplementedError

    async def nonce(self, fresh: bool = False) -> str:
        if self._nonce is not None and not fresh:
            return self._nonce
        async with self._http.request("POST", self.endpoint(SESSION_PATH)) as answer:
            text = (await answer.read()).decode("utf-8", "replace")
            if answer.status >= 400:
                raise status_error(self.label, answer.status, answer.headers, text)
            obj = parse_json(self.label, text, "the session's JSON", content_type(answer))
        nonce = obj.get("restNonce") if isinstance(obj, dict) else None
        if not isinstance(nonce, str) or not nonce:
            raise ProtocolError(
                self.label,
                "the session answer has no restNonce: the site has changed. Use another provider.",
            )
        self._nonce = nonce
        return nonce

    def _reply(
        self,
        messages: list[dict[str, str]],
        model: str,
        params: dict[str, Any],
        images: tuple[Attachment, ...],
    ) -> AsyncIterator[Part]:
        return with_token_retry(
            self.label,
            lambda fresh: self._send(messages, fresh),
            "Try again later, or use another provider.",
        )

    async def _send(self, messages: list[dict[str, str]], fresh: bool) -> AsyncIterator[Part]:
        headers = {"accept": "text/event-stream", "referer": self.endpoint(self.referer_path)}
        if self.uses_nonce:
            headers["x-wp-nonce"] = await self.nonce(fresh)
        async for part in self._exchange(
            "POST",
            self.api_path,
            headers=headers,
            json_body=self.body(messages),
            events=lambda answer, ctype: self._read_events(answer),
            whole=lambda text, ctype: [
                self._final(parse_json(self.label, text, "the chat's JSON answer", ctype))
            ],
        ):
            yield part

    async def _refused(self, status: int, headers: Mapping[str, str], body: str) -> BaseException:
        if _is_refusal(status, body):
            return NonceRefused()
        return status_error(self.label, status, headers, body)

    async def _read_events(self, answer: Any) -> AsyncIterator[str]:
        leftover: list[str] = []
        streamed = False
        async for field in sse_events(answer):
            if not field.is_data:
                leftover.append(field.data)
                continue
            for event in event_objects(self.label, field.data, "an AI Engine event"):
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "live":
                    piece = event.get("data")
                    if not isinstance(piece, str):
                        raise self._broken("a live event without text")
                    streamed = True
                    yield piece
                elif kind == "end":
                    final = event.get("data")
                    obj = (
                        parse_json(self.label, final, "the end event's JSON", "")
                        if isinstance(final, str)
                        else final
                    )
                    reply = self._final(obj)
                    if not streamed:
                        yield reply
                    return
                elif kind == "error":
                    raise ServiceError(
                        self.label,
                        f"the site reported an error: {excerpt(str(event.get('data')), 200)!r}. Try again "
                        "later, or use another provider.",
                    )
                else:
                    raise self._broken(f"an event of unknown shape ({excerpt(field.data, 60)!r})")
        if leftover:
            # the plugin's page script reads what is left as one JSON answer
            reply = self._final(parse_json(self.label, "\n".join(leftover), "the chat's JSON answer", ""))
            if not streamed:
                yield reply
            return
        raise StreamInterrupted(
            self.label,
            "the stream ended without its end event: the reply may be cut short. "
            "Run the cell again to retry.",
        )

    def _final(self, obj: Any) -> str:
        if not isinstance(obj, dict):
            raise self._broken("an answer that is not a JSON object")
        if obj.get("success") is False:
            raise ServiceError(
                self.label,
                f"the site reported an error: {excerpt(str(obj.get('message')), 200)!r}. Try again later, "
                "or use another provider.",
            )
        reply = obj.get("reply")
        if not isinstance(reply, str):
            raise self._broken("an answer without its 'reply' text")
        return reply

    def _broken(self, what: str) -> ProtocolError:
        return ProtocolError(
            self.label,
            f"the stream is not AI Engine's protocol: {what}. The site may have changed; "
            "try another provider.",
        )


def _is_refusal(status: int, body: str) -> bool:
    if status != 403:
        return False
    obj = try_json(body)
    return isinstance(obj, dict) and obj.get("code") == "rest_cookie_invalid_nonce"
