"""Family A: the "AI Power" WordPress plugin (``wpaicg``), form POST to admin-ajax.php.

The chat page carries a nonce and a post id; the message goes as a form to
``/wp-admin/admin-ajax.php``; the answer is one JSON object or a stream of OpenAI-style
``data:`` chunks (a stream may also end with a plain JSON object). Tokens are kept
across turns (WordPress nonces live 12-24 h) and fetched again once when refused.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ProtocolError, ServiceError
from ._family import NonceRefused, ReplyRefusal, event_objects, parse_json, with_token_retry
from ._lines import sse_events
from ._messages import format_prompt
from ._status import excerpt, status_error
from ._wire import ChunkReader, Part
from .base import HTTPProvider

if TYPE_CHECKING:
    from ..attachments import Attachment

ACTION = "wpaicg_chat_shortcode_message"
CONSENT_REFUSAL = "Du musst das Kästchen anklicken!"
#: the consent box's refusal comes as a reply, whole (ChatGptt, ChatGptEs) or streamed (ChatgptFree)
CONSENT = ReplyRefusal(
    CONSENT_REFUSAL,
    f"its consent check ({CONSENT_REFUSAL!r}: 'you must tick the box'). It wants a browser; "
    "use another provider.",
)
SECURITY_CHECK = "Security check"


class Tokens:
    __slots__ = ("nonce", "post_id", "fallback")

    def __init__(self, nonce: str, post_id: str, fallback: bool = False) -> None:
        self.nonce = nonce
        self.post_id = post_id
        self.fallback = fallback


def first_match(patterns: tuple[re.Pattern[str], ...], html: str) -> str | None:
    for pattern in patterns:
        m = pattern.search(html)
        if m:
            return m.group(1)
    return None


class WpaicgProvider(HTTPProvider):
    """A site running AI Power. Subclasses give constants and token patterns."""

    api_path = "/wp-admin/admin-ajax.php"
    #: the page whose HTML carries the tokens, and the referer sent with it
    page_path: ClassVar[str] = "/"
    referer_path: ClassVar[str] = "/"
    nonce_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (
        re.compile(r"""data-nonce\s*=\s*["']([^"']+)["']"""),
    )
    post_id_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (
        re.compile(r"""data-post-id\s*=\s*["']([^"']+)["']"""),
    )
    #: used when the page has no tokens (ChatGptEs); None means missing tokens are an error
    fallback_tokens: ClassVar[tuple[str, str] | None] = None
    #: fields beyond the six every site requires
    send_identity: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tokens: Tokens | None = None
        self._client_id = secrets.token_hex(5)

    # -- what a site may change ----------------------------------------------------

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return format_prompt(messages)

    def history(self, messages: list[dict[str, str]]) -> str | None:
        """``wpaicg_chat_history``: earlier turns as ``Human:``/``AI:`` strings."""
        names = {"user": "Human", "assistant": "AI", "system": "System"}
        return json.dumps([f"{names[m['role']]}: {m['content']}" for m in messages[:-1]])

    # -- protocol ------------------------------------------------------------------

    async def tokens(self, fresh: bool = False) -> Tokens:
        if self._tokens is not None and not fresh:
            return self._tokens
        headers = {"referer": self.endpoint(self.referer_path), "accept": "text/html,*/*"}
        async with self._http.request("GET", self.endpoint(self.page_path), headers=headers) as page:
            html = (await page.read()).decode("utf-8", "replace")
            if page.status >= 400:
                raise status_error(self.label, page.status, page.headers, html)
        nonce = first_match(self.nonce_patterns, html)
        post_id = first_match(self.post_id_patterns, html)
        if nonce and post_id:
            self._tokens = Tokens(nonce, post_id)
        elif self.fallback_tokens is not None:
            self._tokens = Tokens(nonce or self.fallback_tokens[0], post_id or self.fallback_tokens[1], True)
        else:
            missing = " and ".join(n for n, v in (("nonce", nonce), ("post id", post_id)) if not v)
            raise ProtocolError(
                self.label,
                f"the chat page has no {missing}: the site has changed or is not an AI Power "
                "chat. Check --base-url, or use another provider.",
            )
        return self._tokens

    def form(self, messages: list[dict[str, str]], tokens: Tokens) -> dict[str, str]:
        form = {
            "_wpnonce": tokens.nonce,
            "post_id": tokens.post_id,
            "url": self.site,
            "action": ACTION,
            "message": self.prompt(messages),
            "bot_id": "0",
        }
        if self.send_identity:
            form["chatbot_identity"] = "shortcode"
            form["wpaicg_chat_client_id"] = self._client_id
            history = self.history(messages)
            if history is not None:
                form["wpaicg_chat_history"] = history
        return form

    def _reply(
        self,
        messages: list[dict[str, str]],
        model: str,
        params: dict[str, Any],
        images: tuple[Attachment, ...],
    ) -> AsyncIterator[Part]:
        hint = (
            "The page carried no token and the built-in fallback was refused; the site has "
            "changed. Use another provider."
            if self.fallback_tokens
            else "Try again later, or use another provider."
        )
        return CONSENT.guard(
            self.label, with_token_retry(self.label, lambda fresh: self._send(messages, fresh), hint)
        )

    async def _send(self, messages: list[dict[str, str]], fresh: bool) -> AsyncIterator[Part]:
        tokens = await self.tokens(fresh)
        headers = {
            "referer": self.endpoint(self.referer_path),
            "accept": "application/json, text/event-stream, */*",
            "x-requested-with": "XMLHttpRequest",
        }
        async for part in self._exchange(
            "POST",
            self.api_path,
            headers=headers,
            data=self.form(messages, tokens),
            events=self._read_stream,
            whole=lambda text, ctype: [
                self._answer(parse_json(self.label, text, "the chat's JSON answer", ctype))
            ],
        ):
            yield part

    async def _refused(self, status: int, headers: Mapping[str, str], body: str) -> BaseException:
        # WordPress' own nonce check in admin-ajax answers 403 with body "-1"
        if status == 403 and body.strip() == "-1":
            return NonceRefused()
        return status_error(self.label, status, headers, body)

    async def _read_stream(self, answer: Any, ctype: str) -> AsyncIterator[Part]:
        """OpenAI-style chunks (read as the openai provider reads them), or a plain answer object."""
        leftover: list[str] = []
        reader = ChunkReader(self.label, self._broken, self._site_error)
        async for field in sse_events(answer):
            if not field.is_data:
                leftover.append(field.data)
                continue
            if field.data == "[DONE]":
                yield reader.ending()
                return
            for obj in event_objects(self.label, field.data, "a stream chunk"):
                if isinstance(obj, dict) and "choices" not in obj and "status" in obj:
                    # a plain answer object inside the stream (errors come this way)
                    yield self._answer(obj)
                    return
                for part in reader.feed(obj):
                    yield part
        if leftover:
            yield self._answer(parse_json(self.label, "\n".join(leftover), "the chat's JSON answer", ""))

    def _broken(self, what: str) -> ProtocolError:
        return ProtocolError(
            self.label,
            f"the stream is not the chat's protocol ({what}): the site has changed. Try another provider.",
        )

    def _site_error(self, message: str) -> ServiceError:
        return ServiceError(
            self.label,
            f"the site reported an error: {excerpt(message, 200)!r}. Try again later, or use another provider.",
        )

    def _answer(self, obj: Any) -> str:
        if not isinstance(obj, dict):
            raise ProtocolError(self.label, "the answer is not a JSON object. Try another provider.")
        if obj.get("status") == "error" or ("data" not in obj and obj.get("msg")):
            msg = str(obj.get("msg") or "unknown error")
            if msg == SECURITY_CHECK:
                raise NonceRefused
            raise ServiceError(
                self.label,
                f"the site reported an error: {excerpt(msg, 200)!r}. Try again later, or use another provider.",
            )
        data = obj.get("data")
        if not isinstance(data, str):
            raise ProtocolError(
                self.label,
                "the answer has no 'data' text: the site's protocol has changed. Try another provider.",
            )
        return CONSENT.check(self.label, data)
