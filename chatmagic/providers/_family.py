"""What both plugin families share: reading an answer's head and body, token retry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ProtocolError, TokenRefusedError
from ._http import Answer, status_error
from ._lines import Field, LineDecoder, event_fields


class NonceRefused(Exception):
    """Internal signal: the site refused the token; fetch a new one and send again."""


def content_type(answer: Answer) -> str:
    return answer.headers.get("content-type", "").split(";")[0].strip().lower()


async def fields(answer: Answer) -> AsyncIterator[Field]:
    """The answer's lines, framed incrementally, as data fields and other text."""
    decoder = LineDecoder()
    async for chunk in answer.chunks():
        for f in event_fields(decoder.feed(chunk)):
            yield f
    for f in event_fields(decoder.close()):
        yield f


async def fail_on_status(label: str, answer: Answer, is_refusal: Callable[[int, str], bool]) -> None:
    """Raise for a non-2xx answer; a token refusal becomes :class:`NonceRefused`."""
    if answer.status < 400:
        return
    body = (await answer.read()).decode("utf-8", "replace")
    if is_refusal(answer.status, body):
        raise NonceRefused(body)
    raise status_error(label, answer.status, answer.headers, body)


def parse_json(label: str, text: str, what: str, ctype: str) -> Any:
    """Decode a JSON answer, or say plainly what came instead."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    snippet = " ".join(text.split())[:100]
    if ctype == "text/html" or text.lstrip().startswith("<"):
        raise ProtocolError(
            label,
            f"the site answered with a web page ({ctype or 'no content type'}) instead of "
            f"{what}; it may be under maintenance or the address is wrong. "
            "Try again later or use another provider.",
        )
    raise ProtocolError(
        label,
        f"the answer is not {what} (broken JSON: {snippet!r}). The site may have changed; "
        "try another provider.",
    )


async def with_token_retry(
    label: str,
    send: Callable[[bool], AsyncIterator[str]],
    refused_hint: str,
) -> AsyncIterator[str]:
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
