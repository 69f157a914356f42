"""What the provider families share: reading an answer's head and body, JSON, token retry,
and a site's refusal that comes dressed as a reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from ..errors import ProtocolError, ServiceError, TokenRefusedError
from ._http import Answer
from ._status import excerpt
from ._wire import Ending, Part

T = TypeVar("T")


class NonceRefused(Exception):
    """Internal signal: the site refused the token; fetch a new one and send again.

    It carries no server text: it ends up as the ``__context__`` of the error that is
    shown, and nothing a server said may ride along unscrubbed.
    """


def content_type(answer: Answer) -> str:
    return answer.headers.get("content-type", "").split(";")[0].strip().lower()


class _NotJSON(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _decode(text: str) -> Any:
    """The one place server text is decoded as JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        # json's C scanner recurses once per nesting level: a line of "[[[[..." from a
        # broken or hostile server must be a protocol error, not a crash
        raise _NotJSON("nested too deeply") from None
    except ValueError:
        raise _NotJSON("broken JSON") from None


def try_json(text: str) -> Any:
    """``text`` decoded as JSON, or None when it is not JSON (for optional shapes: error bodies)."""
    try:
        return _decode(text)
    except _NotJSON:
        return None


def parse_json(label: str, text: str, what: str, ctype: str) -> Any:
    """Decode a JSON answer, or say plainly what came instead."""
    try:
        return _decode(text)
    except _NotJSON as exc:
        why = exc.why
    if ctype == "text/html" or text.lstrip().startswith("<"):
        raise ProtocolError(
            label,
            f"the site answered with a web page ({ctype or 'no content type'}) instead of "
            f"{what}; it may be under maintenance or the address is wrong. "
            "Try again later or use another provider.",
        )
    raise ProtocolError(
        label,
        f"the answer is not {what} ({why}: {excerpt(text, 100)!r}). The site may have changed; "
        "try another provider.",
    )


def event_objects(label: str, data: str, what: str) -> list[Any]:
    """The JSON of one event's data: one object, or (a server that leaves out the blank line
    between events) one per line; else the protocol error ``parse_json`` words."""
    obj = try_json(data)
    if obj is not None or "\n" not in data:
        return [obj] if obj is not None else [parse_json(label, data, what, "")]
    lines = [try_json(line) for line in data.split("\n")]
    if all(x is not None for x in lines):
        return lines
    return [parse_json(label, data, what, "")]


async def with_token_retry(
    label: str,
    send: Callable[[bool], AsyncIterator[T]],
    refused_hint: str,
) -> AsyncIterator[T]:
    """Send once; when the token is refused, fetch a fresh one and send once more."""
    for fresh in (False, True):
        try:
            async for chunk in send(fresh):
                yield chunk
            return
        except NonceRefused:
            if fresh:
                raise TokenRefusedError(
                    label,
                    f"the site refused its security token even after a fresh one was fetched. {refused_hint}",
                ) from None


class ReplyRefusal:
    """A site's refusal that comes as an ordinary reply (AI Power's consent box: the whole
    reply is ``text``). The one rule, whole or streamed: a reply that is exactly the
    refusal is a :class:`ServiceError`, never the model's words, so it never joins a
    conversation. A streamed reply is held back only while it could still be the refusal,
    which a real reply stops being within its first words."""

    def __init__(self, text: str, why: str) -> None:
        self.text = text
        self.why = why

    def check(self, label: str, reply: str) -> str:
        """``reply``, or the error when it is the refusal."""
        if reply.strip() == self.text:
            raise ServiceError(label, f"the site refused with {self.why}")
        return reply

    async def guard(self, label: str, parts: AsyncIterator[Part]) -> AsyncIterator[Part]:
        """``parts``, with the refusal raised instead of streamed."""
        held: list[str] = []
        deciding = True
        async for part in parts:
            if not deciding:
                yield part
            elif isinstance(part, str):
                held.append(part)
                if not self.text.startswith("".join(held).lstrip()):
                    deciding = False  # not the refusal: what was held goes on
                    for kept in held:
                        yield kept
            elif isinstance(part, Ending):
                self.check(label, "".join(held))
                deciding = False
                for kept in held:
                    yield kept
                yield part
            else:  # reasoning is never the refusal
                yield part
        if deciding:
            self.check(label, "".join(held))
            for kept in held:
                yield kept
