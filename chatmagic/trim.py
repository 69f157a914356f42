"""The history budget, trimmed the cache-friendly way: drop in steps, at stable boundaries.

Core layer, pure functions. Before (:func:`within_budget`) a turn sent the newest whole
exchanges whose text fits ``max_history_chars``: once the budget binds, every new turn drops
the oldest exchange or two, so each request's messages differ from the previous request's
right after the system prompt, and a provider's prompt cache (which matches a request's
longest common prefix with an earlier one) misses on every turn.

The rule here, :func:`stable_window`: replay the conversation from its first exchange,
adding one exchange at a time; whenever what is kept passes the budget, drop the oldest
exchanges until it is at or under the low-water mark (``low_water`` x the budget, 30% by
default). The start of what is sent therefore only moves in steps, and between steps each
request begins with the previous request's messages (system prompt, the same earlier
exchanges, the previous prompt, now followed by its reply): a cache hit on all of it.
The price is that a turn sends between ``low_water`` and all of the budget, not always all.

It takes what ``within_budget`` takes (the earlier exchanges, oldest first, and the budget
in characters, ``<= 0`` for no limit), keeps whole exchanges, never passes the budget, and is
a function of those alone, so a re-run cell, a restored notebook and a replay all choose
the same start. A conversation keeps its replay (:class:`Replay`, the same answers) so that
a turn does not replay every exchange again. ``measure`` is how an exchange's size is
read (:func:`exchange_chars`: the user's and the reply's text, and its tool calls), so this
module needs nothing from the session.

Where it is used: ``ChatSession._context`` (what a turn sends); ``%chat context`` and the glass
box (:mod:`chatmagic.preflight`) list the exchanges left out as "left out: history budget".
A step keeps the newest exchange when it fits the budget by itself, so the model never loses
the last word of the conversation. ``bench/prefix_stability.py`` measures the old rule
(``within_budget``), this one, and what the session sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["DEFAULT_LOW_WATER", "Replay", "exchange_chars", "stable_start", "stable_window", "within_budget"]

T = TypeVar("T")

#: after a step, what is kept is at most this share of the budget. The lower, the more turns
#: between steps (each one a cache miss) and the less history sent on average:
#: bench/prefix_stability.py at the default 40,000-char budget, 50 turns, exchanges of 3,300
#: chars: 30% -> 91% of requests extend the previous one (sending 22,000 chars of history on
#: average), 50% -> 89% (25,600); with 2,300-char exchanges 94% and 92%. main: 38% and 44%.
DEFAULT_LOW_WATER = 0.3


def exchange_chars(exchange: Any) -> int:
    """The characters an exchange counts against the history budget: the user's and the reply's
    text, and each tool call's arguments and answer (sent with it: chatmagic.session.toolhistory)."""
    size = len(exchange.user.content) + len(exchange.assistant.content)
    for step in getattr(exchange, "tools", None) or ():
        size += len(step.arguments) + len(step.result)
    return size


def stable_start(sizes: Sequence[int], max_chars: int, low_water: float = DEFAULT_LOW_WATER) -> int:
    """The index of the oldest exchange sent, given each exchange's size (oldest first)."""
    replay = Replay(max_chars, low_water)
    for size in sizes:
        replay.add(size)
    return replay.start(len(sizes))


class Replay:
    """:func:`stable_start`'s replay, kept: each exchange's size and the window after each one.

    A conversation keeps one, so that a turn at exchange 1,000 takes one step for its newest
    exchange instead of replaying the 1,000 (each read and measured again); the start of any
    first ``n`` exchanges (a re-run cell sends those before it) is then read, not replayed.
    Its owner says when its exchanges changed (:meth:`cut` from the first that did: an
    exchange replaced, the history adopted, restored, compacted or scrubbed again), so the
    answers stay the full replay's (tests/test_trim_replay.py compares them across those events).
    """

    def __init__(self, max_chars: int, low_water: float = DEFAULT_LOW_WATER) -> None:
        if not 0 <= low_water <= 1:
            raise ValueError(f"low_water is a share of the budget, from 0 to 1 (got {low_water!r})")
        self.max_chars = max_chars
        self.low_water = low_water
        self.sizes: list[int] = []
        # the replay's state after the first k exchanges: the start, and what is kept from it
        self._starts = [0]
        self._totals = [0]

    def __len__(self) -> int:
        return len(self.sizes)

    def add(self, size: int) -> None:
        """One more exchange, the newest, of ``size`` characters."""
        sizes = self.sizes
        end = len(sizes)
        sizes.append(size)
        start, total = self._starts[-1], self._totals[-1] + size
        if self.max_chars > 0 and total > self.max_chars:
            # one step: drop the oldest down to the low-water mark, so the next turns keep this
            # start; the newest exchange stays if it fits by itself (the model keeps the last word)
            floor = self.max_chars * self.low_water
            while start < end and total > floor:
                total -= sizes[start]
                start += 1
            if total > self.max_chars:
                total -= sizes[start]
                start += 1
        self._starts.append(start if self.max_chars > 0 else 0)
        self._totals.append(total)

    def start(self, n: int) -> int:
        """The index of the oldest exchange sent when the history is the first ``n`` (at most ``len``)."""
        return self._starts[n]

    def cut(self, n: int) -> None:
        """Forget the exchanges from index ``n`` on (they changed): they are added again."""
        del self.sizes[n:]
        del self._starts[n + 1 :]
        del self._totals[n + 1 :]


def stable_window(
    exchanges: Sequence[T],
    max_chars: int,
    *,
    low_water: float = DEFAULT_LOW_WATER,
    measure: Callable[[T], int] = exchange_chars,
) -> list[T]:
    """The earlier exchanges to send under a budget of ``max_chars`` (0: all), dropped in steps."""
    start = stable_start([measure(ex) for ex in exchanges], max_chars, low_water)
    return list(exchanges[start:])


def within_budget(exchanges: Sequence[T], max_chars: int) -> list[T]:
    """The newest exchanges whose text fits in ``max_chars``, whole (0: all of them): the rule
    before issue 19, kept as the reference ``bench/prefix_stability.py`` measures against."""
    if max_chars <= 0:
        return list(exchanges)
    total = 0
    start = len(exchanges)
    for i in range(len(exchanges) - 1, -1, -1):
        ex: Any = exchanges[i]
        total += len(ex.user.content) + len(ex.assistant.content)
        if total > max_chars:
            break
        start = i
    return list(exchanges[start:])
