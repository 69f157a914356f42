"""What a conversation knows of its history between turns: each exchange's size, the history
budget's replay over them (:class:`chatmagic.trim.Replay`), and where each key is.

Core: no IPython, no widgets, no HTML. A turn at exchange 1,000 must not read the 1,000
exchanges again (issue 15: the budget's full replay measured each one at every turn, and
finding a cell's exchange by its key walked the list three times a turn). A
:class:`~chatmagic.session.conversation.Conversation` owns one :class:`HistoryIndex` and
tells it where its list changed (:meth:`HistoryIndex.cut`: an exchange replaced, the history
adopted, cleared, a kept message scrubbed again to another length); before each answer the
index catches up with the list (:meth:`HistoryIndex.sync`), reading only the exchanges added
since. A list changed from outside those methods shows there (the list is shorter, or the
exchange at the end of what the index holds is another one) and is indexed again; a key read
is checked against the exchange it names. The answers are those of reading the whole list
(tests/test_trim_replay.py compares them across re-runs, restores, compactions and secrets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..trim import Replay, exchange_chars

__all__ = ["HistoryIndex"]


class HistoryIndex:
    """The first exchanges of a conversation as read at the last turn (the same objects), their
    sizes and the budget's replay, and where each key is (in order: a merged history may hold a
    cell's text twice)."""

    def __init__(self) -> None:
        self.held: list[Any] = []
        self.replay = Replay(0)
        self.keys: dict[str, list[int]] = {}
        #: the tokens the servers reported (prompt and completion) for the first k exchanges
        self.used = [0]

    def sync(self, exchanges: Sequence[Any]) -> None:
        """Catch up with ``exchanges``: read those added since the last call, only them."""
        held = self.held
        n = len(held)
        if n > len(exchanges) or (n and exchanges[n - 1] is not held[-1]):
            self.cut(0)  # changed from outside the conversation's methods: read it again
        for i in range(len(held), len(exchanges)):
            ex = exchanges[i]
            self.replay.add(exchange_chars(ex))
            usage = ex.usage or {}
            self.used.append(
                self.used[-1] + usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            )
            if ex.key is not None:
                self.keys.setdefault(ex.key, []).append(i)
            held.append(ex)

    def cut(self, index: int) -> None:
        """The exchanges from ``index`` on changed: they are read again when next needed."""
        self.replay.cut(index)
        del self.used[index + 1 :]
        if index == 0:
            self.keys.clear()
        else:  # the keys of those read again: a cell re-run near the end touches a few, not every key
            for ex in self.held[index:]:
                at = None if ex.key is None else self.keys.get(ex.key)
                if at:
                    at[:] = [i for i in at if i < index]
                    if not at:
                        del self.keys[ex.key]
        del self.held[index:]

    def positions(self, exchanges: Sequence[Any], key: str) -> list[int]:
        """Where the exchanges with ``key`` are, oldest first."""
        self.sync(exchanges)
        at = self.keys.get(key, [])
        if any(i >= len(exchanges) or exchanges[i].key != key for i in at):  # changed since: read again
            self.cut(0)
            self.sync(exchanges)
            at = self.keys.get(key, [])
        return list(at)

    def forget(self, key: str) -> None:
        """No exchange holds ``key`` any more (the conversation took it back from all of them)."""
        self.keys.pop(key, None)

    def start(self, exchanges: Sequence[Any], n: int, max_chars: int) -> int:
        """The index of the oldest of the first ``n`` exchanges a history budget of ``max_chars``
        sends: :func:`chatmagic.trim.stable_window`'s choice."""
        if self.replay.max_chars != max_chars:  # a new budget: the sizes stay, the steps are new
            replay = Replay(max_chars)
            for size in self.replay.sizes:
                replay.add(size)
            self.replay = replay
        self.sync(exchanges)
        return self.replay.start(n)
