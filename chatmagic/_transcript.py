"""What the chat panel sends the browser: its transcript, kept in step by splices and patches.

:class:`Transcript` is the half of :class:`chatmagic.panel.ChatPanel` that the browser
sees: which exchanges are shown, the replies streaming into them, and the messages that
bring the views (``static/panel.js``) up to date. The panel owns one and calls it with its
lock held; the drawing itself runs on the background loop.

Long conversations. The panel shows the newest :data:`PAGE` exchanges and loads
:data:`PAGE` more each time "Show earlier messages" is asked for: opening a panel on a
conversation of 10,000 exchanges sends and keeps what opening one of 20 does.

Traffic. The transcript is a list of messages in the browser, changed by numbered *splices*
(``{"type": "splice", "n": k, "at": i, "remove": n, "items": [...]}``): the panel keeps the
list it last sent and sends only where the new one differs; earlier messages are never
re-sent. A view that opens, or that sees a splice number missing (IOPub messages over the
rate limit are dropped), asks for the whole list (``hello``) and gets a ``reset``.

A streaming reply is patched by the one streaming mechanism of cells and panel
(:mod:`chatmagic._stream`): its bubble enters the list once (``[id, html, seq]``), then
changes in place by ``live`` messages (``{"type": "live", "id": …, "n": seq}`` with any of:
``who``, the heading; ``thinking``, the Thinking block when reasoning begins; ``think``, its
new summary and the reasoning added since; ``blocks``, Markdown blocks that just finished,
placed above the tail once; ``tail``, the open last block, patched; ``base``, what the patch
applies to). A view that cannot verify one asks ``{"type": "resync", "id": …}`` and gets the
bubble ``whole``. Updates are paid from the budget of :class:`chatmagic._stream.Pace`, at most
ten a second, the first text at once (``bench/stream_watch.py``). Its end is one splice: the
recorded exchange, rendered whole.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import present
from ._panel_look import inserts_html, tools_html
from ._stream import LiveReply, message_cost
from .runner import Runner
from .session import Conversation, Exchange, Turn

__all__ = ["PAGE", "Item", "Live", "Transcript"]

#: exchanges shown when a conversation opens, and added by each "Show earlier messages"
PAGE = 20

#: one transcript entry as the browser gets it: a stable id and its (sanitized) HTML
Item = tuple[str, str]


@dataclass
class Live:
    """A turn streaming into the shown conversation: what the browser has of its bubble."""

    turn: Turn
    number: int
    #: the heading and the reasoning characters shown
    who: str = ""
    thought: int = 0
    #: the finished blocks and the open tail, patched (chatmagic._stream)
    reply: LiveReply = field(default_factory=LiveReply)
    #: (text size, reasoning size, heading) last shown, or looked at and not affordable
    seen: tuple[int, int, str] = (0, 0, "")
    #: a view lost a message: it gets the bubble whole at the next draw
    resync: bool = False
    #: the bubble whole, as a view that opens now gets it
    html: str = ""

    @property
    def id(self) -> str:
        return f"t{self.number}a"


class Transcript:
    """The shown conversation's window and streaming replies, and the drawing that sends them.

    ``post`` sends a custom message to every view; ``draw`` is the panel's whole drawing (it
    says how ended turns ended, then calls :meth:`patches` and :meth:`send`), run on the
    loop of ``runner`` with ``lock`` (the panel's) held. Every method is called with the lock
    held, from any thread; none waits on the network.
    """

    def __init__(
        self,
        runner: Runner,
        lock: threading.RLock,
        post: Callable[[dict[str, Any]], None],
        draw: Callable[[], None],
    ) -> None:
        self._runner, self._lock, self._post, self._draw = runner, lock, post, draw
        #: the turns streaming into the shown conversation, oldest first
        self.live: list[Live] = []
        self._numbers = 0
        # the window: exchanges from index start on are shown (see _items); _count is how
        # many the conversation had when last drawn
        self.start = 0
        self._count = 0
        self._epoch = ""
        #: what the browser was last sent; rendered exchanges by item id
        self.sent: list[Item] = []
        self._rendered: dict[str, tuple[Exchange, str, str]] = {}
        # drawing is requested from any thread and done on the loop; counters let wait() know
        # when the browser has been sent the final state
        self._changed = threading.Condition(lock)
        self._requested = 0
        self._applied = 0
        self._scheduled = False
        self._reset_views = False
        self._seq = 0  # the number of the last splice (see _splice)
        # no view has asked for the transcript yet: nothing to keep in step
        self._greeted = False
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False
        #: a question shown after the transcript (a turn over budget: chatmagic._panel_tools)
        self.question: list[Item] = []

    # -- what is shown -------------------------------------------------------------------

    def show(self, conv: Conversation) -> None:
        """Show ``conv`` from now on: its newest page and its streaming reply (conv.lock held)."""
        self.live = []
        self._epoch = conv.epoch
        self._count = len(conv.exchanges)
        self.start = max(0, self._count - PAGE)
        active = conv.active
        if active is not None and not active.done:
            self.adopt(active)

    def adopt(self, turn: Turn) -> None:
        if all(live.turn is not turn for live in self.live):
            self._numbers += 1
            self.live.append(Live(turn, self._numbers))

    def streaming(self) -> list[Turn]:
        """The turns still streaming into the shown conversation."""
        return [live.turn for live in self.live if not live.turn.done]

    def show_earlier(self, count: int) -> None:
        self.start = max(0, self.start - count)
        self.request()

    def hello(self) -> None:
        """A view opened, or lost a splice: every view gets the whole list."""
        self._reset_views = True
        self.request()

    def resync(self, item_id: Any) -> None:
        """A view could not verify a patch of ``item_id``: every view gets that bubble whole."""
        for live in self.live:
            live.resync = live.resync or live.id == item_id
        self.request()

    # -- drawing (on the background loop) -------------------------------------------------

    def request(self) -> None:
        """Coalesce draw requests: one pending call on the loop serves them all."""
        with self._lock:
            self._requested += 1
            if self._scheduled or self._closed:
                return
            self._scheduled = True
        self._runner.loop.call_soon_threadsafe(self._draw_on_loop)

    def _draw_on_loop(self) -> None:
        with self._lock:
            self._scheduled = False
            requested = self._requested
            try:
                if not self._closed:
                    self._draw()
            finally:
                self._applied = max(self._applied, requested)
                self._changed.notify_all()

    def _flush_due(self) -> None:
        with self._lock:
            self._flush = None
        self.request()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no reply streams here and the browser was sent the final state."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while True:
            with self._lock:
                turns = self.streaming()
            for turn in turns:
                if not turn.wait(left()):
                    return False
            with self._changed:
                settled = self._changed.wait_for(
                    lambda: self._applied >= self._requested and not self._scheduled, left()
                )
                if not settled:
                    return False
                if not self.live:
                    return True
                # a turn ended but its "end" has not been drawn yet
                self._changed.wait(0.01)

    def close(self) -> None:
        """Draw no more (a reply streaming goes on, unseen)."""
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._changed.notify_all()

    def finished(self) -> list[Turn]:
        """The turns that ended since the last draw, no longer live."""
        ended = [live.turn for live in self.live if live.turn.done]
        if ended:
            self.live = [live for live in self.live if not live.turn.done]
        return ended

    def patches(self, now: float) -> list[tuple[Live, dict[str, Any] | None]]:
        """Each live turn with the ``live`` message that may go now (None: none yet)."""
        return [(live, self._update(live, now)) for live in self.live]

    def send(self, conv: Conversation, patches: list[tuple[Live, dict[str, Any] | None]]) -> None:
        """Bring the browser up to date with ``conv`` and the ``patches`` just made."""
        items = self._items(conv)
        live_ids = {live.id: live.reply.seq for live in self.live}
        if self._reset_views:
            self._reset_views, self._greeted = False, True
            self._seq = 0
            self._post({"type": "reset", "n": 0, "items": [_wire(item, live_ids) for item in items]})
            whole = set(live_ids)
        elif self._greeted:
            whole = self._splice(items, live_ids)
        else:
            whole = set(live_ids)
        for live, update in patches:
            if live.id in whole:
                # the bubble went whole, in its newest state: the views hold no tail string
                live.reply.went_whole()
                live.resync = False
            elif update is not None:
                self._post(update)
            if live.resync:
                # a view missed a message: every view gets the bubble whole (chatmagic._stream)
                live.resync = False
                live.reply.went_whole()
                self._post({"type": "whole", "id": live.id, "n": live.reply.seq, "html": live.html})
        self.sent = items

    def _items(self, conv: Conversation) -> list[Item]:
        """The transcript as it should be: the window of exchanges, then the live turns."""
        with conv.lock:
            count = len(conv.exchanges)
            if conv.epoch != self._epoch or self.start > count or count - self._count > PAGE:
                # started afresh, or changed wholesale (a restore): show its newest page again
                self._epoch = conv.epoch
                self.start = max(0, count - PAGE)
            self._count = count
            window = conv.exchanges[self.start :]
        rendered: dict[str, tuple[Exchange, str, str]] = {}
        items: list[Item] = []
        for i, ex in enumerate(window, start=self.start):
            key = f"{self._epoch[:8]}.{i}"
            cached = self._rendered.get(key)
            if cached is None or cached[0] is not ex:
                # propose_cell's code can still become a cell (Insert as cell: static/panel.js)
                reply = present.exchange_html(ex) + inserts_html(ex.tools)
                cached = (ex, present.user_html(ex.user.content), reply)
            rendered[key] = cached
            items += [(f"{key}u", cached[1]), (f"{key}a", cached[2])]
        self._rendered = rendered  # only what is shown is kept
        for live in self.live:
            items.append((f"t{live.number}u", present.user_html(live.turn.prompt)))
            tools = tools_html(live.turn.steps)  # its cards and buttons, above the reply, as a cell's
            if tools:
                items.append((f"t{live.number}k", tools))
            items.append((live.id, live.html))
        return items + self.question

    def _update(self, live: Live, now: float) -> dict[str, Any] | None:
        """The ``live`` message that brings the streaming bubble up to date, if one may go now.

        Moves ``live`` to the state the message brings the views to (they get it, or the
        bubble whole: see send). None when nothing changed, the last update was too
        recent, or the budget does not cover it yet (a flush is then due: chatmagic._stream.Pace).
        """
        turn, reply = live.turn, live.reply
        size, thought = turn.size, turn.reasoning_size
        who = present.streaming(turn) if size else present.waiting(turn)
        if (size, thought, who) == live.seen and live.html:
            return None
        first_text = size > 0 and live.seen[0] == 0
        due = reply.pace.due(now, first_text)
        if now < due:
            if self._flush is None:  # the rest must arrive even if no further chunk comes
                self._flush = self._runner.loop.call_later(due - now, self._flush_due)
            return None
        text, reasoning = turn.text, turn.reasoning  # they may have grown since: all of it
        size, thought = len(text), len(reasoning)
        update: dict[str, Any] = {"type": "live", "id": live.id}
        if who != live.who:
            update["who"] = who
        if thought > live.thought and not live.thought:
            update["thinking"] = _thinking_html(reasoning)
        elif thought > live.thought:
            update["think"] = [_thinking_summary(reasoning), reasoning[live.thought :]]
        update.update(reply.patch(text))
        if "n" not in update:
            update["n"] = reply.seq + 1  # every message counts: a lost one is seen
        cost = message_cost(update)
        if not reply.pace.affords(cost, size + thought, now) and not first_text and live.html:
            if self._flush is None:  # more text, or the heartbeat (chatmagic._budget), pays for it then
                self._flush = self._runner.loop.call_later(reply.pace.due(now) - now, self._flush_due)
            return None
        live.seen = (size, thought, who)
        reply.pace.paid(cost, now)
        reply.sent(update)
        reply.seq = update["n"]
        live.who, live.thought = who, thought
        thinking = _thinking_html(reasoning) if thought else ""
        live.html = present.assistant_html(thinking + reply.html, who)
        return update

    def _splice(self, items: list[Item], live: dict[str, int]) -> set[str]:
        """Send the one stretch where ``items`` differs from what the browser has; returns
        the ids it sent. A streaming bubble (an id in ``live``) is the same while its id is:
        it changes by ``live`` messages."""

        def same(a: Item, b: Item) -> bool:
            return a[0] == b[0] and (a[0] in live or a[1] == b[1])

        old = self.sent
        head = 0
        limit = min(len(old), len(items))
        while head < limit and same(old[head], items[head]):
            head += 1
        tail = 0
        while tail < limit - head and same(old[len(old) - 1 - tail], items[len(items) - 1 - tail]):
            tail += 1
        remove = len(old) - head - tail
        new = items[head : len(items) - tail]
        if remove or new:
            # numbered too: a view that misses one asks for the whole transcript again (hello)
            self._seq += 1
            items_sent = [_wire(i, live) for i in new]
            self._post({"type": "splice", "n": self._seq, "at": head, "remove": remove, "items": items_sent})
        return {item_id for item_id, _html in new}


def _thinking_html(reasoning: str) -> str:
    """The Thinking block of a streaming reply, all of it (its new text is appended as it comes)."""
    return present.thinking_html(reasoning, streaming=True, tail=len(reasoning))


def _thinking_summary(reasoning: str) -> str:
    """The summary line of that block (what present.thinking_html writes), as HTML."""
    return html.escape(present.thinking_summary(reasoning, streaming=True))


def _wire(item: Item, live: dict[str, int]) -> list[Any]:
    """An item as sent: ``[id, html]``, and for a streaming bubble the seq of its last patch."""
    return [*item, live[item[0]]] if item[0] in live else list(item)
