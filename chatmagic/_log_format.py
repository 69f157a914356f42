"""The exchange log as a person reads it: the entries ``%chat log`` lists, and the listing.

:class:`chatmagic.log.ExchangeLog` stores and finds exchanges; this module only shapes
what it found for a listing (each field on one line, shortened visibly with "…") and
writes the listing. It reads no file and imports nothing of chatmagic but the secrets'
scrubber: rows logged before replies were scrubbed (or by another tool) may hold a secret.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._secrets import scrub
from ._text import cut_end

__all__ = ["CONTROLS", "LogEntry", "entry", "format_entries", "one_line", "shorten"]

#: characters that would break a listing's line (and that a full-text query ignores)
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class LogEntry:
    """One exchange found by :meth:`chatmagic.log.ExchangeLog.search`, shortened for a listing."""

    #: when the reply finished (seconds since the epoch)
    when: float
    #: the notebook's absolute path, or None where the frontend did not tell it
    notebook: str | None
    conversation: str
    provider: str
    model: str
    #: the prompt on one line, shortened
    user: str
    #: the text around the match, marked «like this»; without search text, the reply's start
    snippet: str


def entry(row: tuple[Any, ...], snippet: str) -> LogEntry:
    """A row of :data:`chatmagic._log_search.ENTRY_COLUMNS` as an entry, with its snippet."""
    when, notebook, conversation, provider, model, user = row[:6]
    return LogEntry(
        when=when,
        notebook=notebook,
        conversation=conversation,
        provider=provider,
        model=model,
        user=shorten(user, 60),
        snippet=snippet,
    )


def one_line(text: str) -> str:
    return _SPACES.sub(" ", CONTROLS.sub(" ", text)).strip()


def shorten(text: str, width: int) -> str:
    return cut_end(one_line(text), width)


def format_entries(entries: Iterable[LogEntry], *, empty: str = "No exchanges found in the log.") -> str:
    """A plain-text listing for ``%chat log``: two lines an exchange, ``empty`` for none.

    ::

        2026-05-09 14:03  analysis.ipynb · default · chatgptt · gpt-4o  "How do I pivot…"
            …use «pivot_table» with the column as index…
    """
    lines = []
    for found in entries:
        try:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.when))
        except (OverflowError, OSError, ValueError):  # a time no calendar holds (a row edited by hand)
            when = "????-??-?? ??:??"
        where = Path(found.notebook).name if found.notebook else "(no notebook)"
        head = " · ".join(
            shorten(part, 40) for part in (where, found.conversation, found.provider, found.model) if part
        )
        lines.append(f'{when}  {head}  "{found.user}"')
        if found.snippet:
            lines.append(f"    {found.snippet}")
    # rows logged before replies were scrubbed (or by another tool) may hold a secret
    return scrub("\n".join(lines)) if lines else empty
