"""Reading a compacted conversation (``%chat compact``): what a summary stands for, its label,
every original in its place, and the compacted view rebuilt from records.

Core layer, and light: nothing here imports the session at run time (the look draws with it
when the extension loads, before any session exists). Making and undoing a summary is
:mod:`chatmagic.compact`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Conversation, Exchange

__all__ = ["count", "fold", "label", "originals", "renumber", "sent_note", "summary_label"]

#: how deep summaries of summaries are followed (a record from a file could loop)
MAX_DEPTH = 50


def count(ex: Exchange, depth: int = 0) -> int:
    """How many exchanges ``ex`` stands for: 1, or the originals of a summary (of summaries)."""
    if not ex.summarizes or depth > MAX_DEPTH:
        return 1
    return sum(count(o, depth + 1) for o in ex.summarizes)


def label(ex: Exchange) -> str:
    """ "Summary of 5 earlier exchanges" for a summary; "" for any other exchange."""
    if not ex.summarizes:
        return ""
    n = count(ex)
    return f"Summary of {n} earlier exchange{'' if n == 1 else 's'}"


def originals(exchanges: Iterable[Exchange], depth: int = 0) -> list[Exchange]:
    """The exchanges as they were before any compaction (``%chat history --all``): each
    summary's originals in its place, followed by the summary itself, marked as such."""
    out: list[Exchange] = []
    for ex in exchanges:
        if ex.summarizes and depth <= MAX_DEPTH:
            out += originals(ex.summarizes, depth + 1)
        out.append(ex)
    return out


def _ident(ex: Exchange) -> tuple[str | None, float]:
    return (ex.key, ex.finished_at)


def fold(exchanges: Sequence[Exchange]) -> tuple[list[Exchange], int]:
    """Restored exchanges with each summary's originals moved into it: the compacted view
    again. Returns the list and how many exchanges went into summaries.

    A summary read from a record holds :func:`placeholder` originals (an earlier summary it
    folded in, whole: that one's own record may be gone, its cell re-run); each is replaced by
    the exchange of the same identity among ``exchanges`` (itself folded, for a summary of
    summaries), which then leaves the top level.
    """
    by_id = {_ident(ex): ex for ex in exchanges}
    inside: set[tuple[str | None, float]] = set()

    def name_inside(ex: Exchange, depth: int) -> None:
        for o in ex.summarizes:  # a summary of summaries names theirs too
            inside.add(_ident(o))
            if depth < MAX_DEPTH:
                name_inside(by_id.get(_ident(o), o), depth + 1)
                name_inside(o, depth + 1)

    for ex in exchanges:
        name_inside(ex, 0)

    def resolved(ex: Exchange, depth: int) -> Exchange:
        if not ex.summarizes or depth > MAX_DEPTH:
            return ex
        found = tuple(resolved(by_id.get(_ident(o), o), depth + 1) for o in ex.summarizes)
        return dataclasses.replace(ex, summarizes=found)

    top = [resolved(ex, 0) for ex in exchanges if _ident(ex) not in inside]
    return top, len(exchanges) - len(top)


def sent_note(conv: Conversation, sent: int, total: int) -> str:
    """What the status line says of a turn sent with a summary: "history: summary of 5
    earlier exchanges + 2" ("" when no summary went with it)."""
    with conv.lock:
        first = conv.exchanges[0] if conv.exchanges else None
    # the summary is the oldest exchange: it goes when every earlier exchange goes
    if first is None or not first.summarizes or sent == 0 or sent < total:
        return ""
    return f"history: {label(first).lower()} + {sent - 1}"


def summary_label(conv: Conversation, user: str) -> str:
    """ "summary of 5 earlier exchanges" when ``user`` is the message of the conversation's
    summary (its oldest exchange), as the glass box names that part; "" otherwise."""
    with conv.lock:
        first = conv.exchanges[0] if conv.exchanges else None
    if first is None or not first.summarizes or first.user.content != user:
        return ""
    return label(first).lower()


def renumber(exchanges: Sequence[Exchange]) -> list[Exchange]:
    """The exchanges with their places (``seq``) counted afresh, a summary's originals
    included, in the order they were asked: a summary takes the place of its last original
    (as :func:`chatmagic.compact.finish` gives it), so that undoing it leaves every place once."""
    place = -1

    def numbered(ex: Exchange, depth: int) -> Exchange:
        nonlocal place
        if ex.summarizes and depth <= MAX_DEPTH:
            inner = tuple(numbered(o, depth + 1) for o in ex.summarizes)
            changed = any(a is not b for a, b in zip(inner, ex.summarizes, strict=True))
            ex = dataclasses.replace(ex, summarizes=inner) if changed else ex
        else:
            place += 1
        return ex if ex.seq == place else dataclasses.replace(ex, seq=place)

    return [numbered(ex, 0) for ex in exchanges]
