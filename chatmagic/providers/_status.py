"""Answers that are not 2xx, and server text quoted in an error.

:func:`status_error` is the error for an error status after a family looked for its own
refusals: a bot check (:func:`is_bot_check`), a proxy asking for credentials, a too-long
conversation, else the status with what the body says (:func:`body_summary`: its text, or
an HTML page by its title) and ``Retry-After`` (:func:`retry_after`). Every piece of server
text an error quotes goes through :func:`excerpt`: one line, secrets removed before the cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from .._text import cut_end
from ..errors import BotCheckError, HTTPStatusError, ProviderConnectionError, ProviderError, redact
from ._lines import valid_text

__all__ = ["TOO_LONG_HINT", "body_summary", "excerpt", "is_bot_check", "retry_after", "status_error"]

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
    return cut_end(clean, limit)


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
