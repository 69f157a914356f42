"""Merging the exchanges saved in a notebook (or the log) into those a conversation holds.

The rules (:func:`chatmagic.restore.restore` says when each applies): an exchange is
matched by its key, or without one by its prompt and reply; of two versions the one that
finished later stays, in the place of the one it replaces; the rest are added; nothing the
kernel holds is ever lost (a merge may keep a duplicate, never drop an exchange). The
merged history is ordered by place (``seq``), then time.

This module only works lists out: :mod:`chatmagic.restore` installs the result and
reports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from ._text import is_text_key
from .session import ChatSession, Exchange

__all__ = ["held_by", "identity", "in_order", "merge", "same_list", "unique"]


def held_by(session: ChatSession) -> set[tuple[Any, ...]]:
    """Each exchange the session's conversations hold, as :func:`identity` names it."""
    held: set[tuple[Any, ...]] = set()
    for conv in session:
        with conv.lock:
            held.update(identity(conv.name, ex) for ex in conv.exchanges)
    return held


def identity(conversation: str, ex: Exchange) -> tuple[Any, ...]:
    # this version of this exchange, wherever it stands now: a restore moves a restarted
    # kernel's exchanges after the notebook's, into the notebook's epoch, and the log still
    # has them in their first place
    return (conversation, ex.key, ex.finished_at)


def merge(held: list[Exchange], saved: list[Exchange]) -> tuple[list[Exchange], list[Exchange], int]:
    """The kernel's exchanges (with newer versions from the notebook), those it lacked, and
    how many of its exchanges a newer version replaced."""
    kept = list(held)
    added = []
    replaced = 0
    place = {id(ex): i for i, ex in enumerate(held)}
    for i, mine in _pair(held, saved):
        theirs = saved[i]
        if mine is None:
            added.append(theirs)
        elif theirs.finished_at > mine.finished_at:
            # the newer version takes the place of the one it replaces, as a re-run does
            kept[place[id(mine)]] = dataclasses.replace(theirs, seq=mine.seq)
            replaced += 1
    return kept, added, replaced


def in_order(exchanges: list[Exchange]) -> list[Exchange]:
    """In conversation order: by place (``seq``), then, for two in one place, by time."""
    return sorted(exchanges, key=lambda ex: (ex.seq, ex.finished_at))


def _pair(held: list[Exchange], saved: list[Exchange]) -> Iterator[tuple[int, Exchange | None]]:
    """Each saved exchange's index with the held exchange it is a version of (or None).

    A cell's exchange matches by its cell key. The others can be asked more than once
    in one conversation: a panel's (no key) match by prompt and reply, those keyed by a
    cell's text by that key; of several candidates, an identical one is the match, else
    the one in the same place (``seq``). A cell's text asked again takes the key from
    the earlier exchange (ChatSession.start), whose record in the notebook still has it:
    that record matches the keyless exchange with everything else the same. Any other is
    a different exchange, never one to replace: a merge may keep a duplicate, but must
    not lose an exchange.
    """
    candidates: dict[tuple[str, ...], list[Exchange]] = {}
    for ex in held:
        candidates.setdefault(_match_id(ex), []).append(ex)

    def group(ex: Exchange, by_text: bool = False) -> list[Exchange]:
        return candidates.get(_match_id(ex, by_text=by_text), [])

    mates: dict[int, Exchange | None] = {}
    for i, ex in enumerate(saved):
        mates[i] = _take(group(ex), ex, "same")
    for i, ex in enumerate(saved):
        if mates[i] is None:
            mates[i] = _take(group(ex), ex, "any" if _is_cell_key(ex.key) else "place")
    for i, ex in enumerate(saved):
        if mates[i] is None and ex.key is not None and not _is_cell_key(ex.key):
            mates[i] = _take(group(ex, by_text=True), ex, "same but key")
    return iter(mates.items())


def _take(group: list[Exchange], ex: Exchange, how: str) -> Exchange | None:
    """Remove and return the first of ``group`` that is ``ex`` (``how``), or None."""
    for n, other in enumerate(group):
        if (
            how == "any"
            or (how == "place" and other.seq == ex.seq)
            or (how == "same" and _same(other, ex))
            or (how == "same but key" and _same(other, ex, but=("seq", "key")))
        ):
            return group.pop(n)
    return None


def unique(exchanges: Iterable[Exchange]) -> list[Exchange]:
    """One version of each exchange saved more than once (a re-run, two panels): the newest.

    The same exchange has the same cell key or, without one, the same key or text and
    the same place.
    """
    newest: dict[tuple[Any, ...], Exchange] = {}
    for ex in exchanges:
        ident = _match_id(ex) if _is_cell_key(ex.key) else (*_match_id(ex), ex.seq)
        old = newest.get(ident)
        if old is None or ex.finished_at >= old.finished_at:
            newest[ident] = ex
    return list(newest.values())


def _is_cell_key(key: str | None) -> bool:
    """A key that one exchange of a conversation holds at most (a cell's id)."""
    return key is not None and not is_text_key(key)


def _match_id(ex: Exchange, *, by_text: bool = False) -> tuple[str, ...]:
    if ex.key is not None and not by_text:
        return ("key", ex.key)
    return ("text", ex.user.content, ex.assistant.content)


def _same(a: Exchange, b: Exchange, *, but: tuple[str, ...] = ("seq",)) -> bool:
    """The same version of an exchange (as saved), wherever it stands."""
    mine, theirs = a.to_dict(), b.to_dict()
    return all(mine[name] == theirs.get(name) for name in mine if name not in but)


def same_list(a: list[Exchange], b: list[Exchange]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
