"""The chat panel: one anywidget over the same session core as ``%%chat``.

A :class:`ChatPanel` shows one :class:`~chatmagic.session.Conversation` of a
:class:`~chatmagic.session.ChatSession` at a time: a conversation picker and **New chat**,
the provider and a model box that takes any name, the transcript, a multi-line box with
Send / Stop, and a status line. It keeps no history of its own: it follows the conversation
(``Conversation.subscribe``), so cells and other panels on it show up here, and what it
sends is what the next ``%%chat`` cell continues. New chat opens a new conversation and
keeps the old one in the picker: nothing in the panel deletes history.

The browser side is ``static/panel.js`` (keyboard, layout, scrolling); everything it shows
is drawn here: bubbles and status lines come from :mod:`chatmagic.present`, model text is
Markdown sanitized in Python (:func:`chatmagic.render.markdown_html`), and the browser only
puts that HTML in place.

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

Threads. Widget messages can arrive on a subshell thread (JupyterLab >= 4.4 with
ipykernel >= 7), concurrently with a running cell; conversation events arrive on the
background loop or the main thread. Every callback only reads what it was sent, starts or
stops a turn (both return at once) and hands the drawing to the background loop; the
panel's state is guarded by one lock, and no callback waits on the network (listing a
server's models runs on a thread of its own).
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from . import present
from ._stream import LiveReply, esm, message_cost
from .errors import ChatMagicError
from .session import (
    DEFAULT_CONVERSATION,
    ChatSession,
    Choice,
    Conversation,
    Exchange,
    Turn,
    TurnOptions,
    new_key,
)

__all__ = ["PAGE", "ChatPanel"]

#: exchanges shown when a conversation opens, and added by each "Show earlier messages"
PAGE = 20

_STATIC = Path(__file__).with_name("static")

#: one transcript entry as the browser gets it: a stable id and its (sanitized) HTML
Item = tuple[str, str]


@dataclass
class _Live:
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


def _provider_rows() -> list[list[str]]:
    from .providers import list_providers

    return [[r["name"], f"{r['label']} ({r['name']})"] for r in list_providers() if "error" not in r]


class ChatPanel(anywidget.AnyWidget):
    """A chat panel on one conversation of a session (the shared ``default`` one unless named).

    Examples
    --------
    ::

        In [1]: %load_ext chatmagic

        In [2]: %chat panel              # the panel on the 'default' conversation

        In [3]: from chatmagic.panel import ChatPanel
           ...: p = ChatPanel("review")  # the same, from Python
           ...: p

        In [4]: p.send("Hello"); p.wait(30); p.conversation.history()[-1].content

        In [5]: p.new_chat()             # a new conversation; 'review' stays in the picker

    ``send`` is the panel's (a message to the model), not ipywidgets' ``Widget.send``.
    """

    _esm = esm("panel.js")
    _css = present.CSS + (_STATIC / "panel.css").read_text(encoding="utf-8")

    #: the conversation shown (the picker); set it to show another
    conversation_name = traitlets.Unicode(DEFAULT_CONVERSATION).tag(sync=True)
    #: the session's conversations as ``[name, label]``, for the picker
    conversations = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    #: every provider as ``[name, label]``
    providers = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    #: the provider and model the next message goes to: the conversation's own, unless
    #: chosen here since (they become the conversation's when the message is sent)
    provider = traitlets.Unicode().tag(sync=True)
    model = traitlets.Unicode().tag(sync=True)
    #: what the model box offers: the server's own list for OpenAI-compatible servers
    models = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: what the model box says about that list (asking, failed, empty)
    models_note = traitlets.Unicode().tag(sync=True)
    #: the status line, as HTML (chatmagic.present)
    status = traitlets.Unicode().tag(sync=True)
    #: a reply streams into the conversation (Send waits, Stop works)
    busy = traitlets.Bool(False).tag(sync=True)
    #: exchanges before the first one shown
    earlier = traitlets.Int(0).tag(sync=True)
    #: what is in the box, as the browser last reported it
    draft = traitlets.Unicode().tag(sync=True)
    #: the transcript's height before it scrolls
    height = traitlets.Unicode("420px").tag(sync=True)

    def __init__(
        self,
        conversation: str = DEFAULT_CONVERSATION,
        session: ChatSession | None = None,
        *,
        height: str = "420px",
        **kwargs: Any,
    ) -> None:
        if session is None:
            from ._state import get_session

            session = get_session()
        self.session: ChatSession = session
        self._lock = threading.RLock()
        self.conversation: Conversation = session.conversation(conversation)
        #: the last turn this panel sent (its message returns to the box if it fails)
        self.turn: Turn | None = None
        # what the user typed for each turn sent from here (the turn's prompt is what was sent,
        # secrets taken out): a failed message goes back to the box as typed
        self._typed: dict[Turn, str] = {}
        self._live: list[_Live] = []
        self._numbers = 0
        # the window: exchanges from index _start on are shown (see _items); _count is how
        # many the conversation had when last drawn
        self._start = 0
        self._count = 0
        self._epoch = ""
        # what the browser was last sent (the transcript), and rendered exchanges by item id
        self._sent: list[Item] = []
        self._rendered: dict[str, tuple[Exchange, str, str]] = {}
        # drawing is requested from any thread and done on the loop; counters let wait() know
        # when the browser has been sent the final state
        self._changed = threading.Condition(self._lock)
        self._requested = 0
        self._applied = 0
        self._scheduled = False
        self._reset_views = False
        self._seq = 0  # the number of the last splice (see _splice)
        # no view has asked for the transcript yet: nothing to keep in step
        self._greeted = False
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False
        self._quiet = 0
        self._models_for = ""  # the provider whose models were asked for last
        self._unsubscribe: Callable[[], None] = lambda: None

        super().__init__(
            conversation_name=self.conversation.name,
            providers=_provider_rows(),
            height=height,
            **kwargs,
        )
        self.on_msg(self._on_msg)
        self.observe(self._on_pick, names="conversation_name")
        self.observe(self._on_provider, names="provider")
        self.observe(self._on_model, names="model")
        with self._lock:
            self._follow(self.conversation)

    # -- Python API ------------------------------------------------------------------

    def send(self, text: str | None = None) -> Turn | None:
        """Send ``text`` (or what is in the box), as Send does; returns the turn.

        Returns ``None`` when nothing was sent: an empty message, a reply still streaming
        in this conversation, or an error (shown in the status line, the text put back in
        the box).
        """
        with self._lock:
            prompt = self.draft if text is None else text
            if not prompt.strip():
                self._set_status("Type a message first.", error=True)
                return None
            if any(not live.turn.done for live in self._live):
                self._give_back(prompt)
                self._set_status("A reply is still streaming: wait for it, or Stop it.", error=True)
                return None
            try:
                # the provider and model chosen here stay with the conversation (the session
                # core's rule, as for a cell's -p/-m): the next %%chat cell continues with them
                turn = self.session.prepare(
                    prompt,
                    conversation=self.conversation.name,
                    options=TurnOptions(provider=self.provider or None, model=self.model.strip() or None),
                    key=f"panel:{new_key()}",
                )
                self.turn = turn
                self._typed = {turn: prompt}
                if text is None:  # the box's text was sent from Python: the page empties the box
                    self.draft = ""
                    self._post({"type": "sent", "text": prompt})
                # start() emits "start" on this thread: _on_event adopts the turn
                self.session.start(turn)
            except ChatMagicError as exc:
                self._give_back(prompt)
                self._set_status(str(exc), error=True)
                return None
            self.busy = True
            return turn

    def stop(self) -> None:
        """Stop every reply streaming into the shown conversation (returns at once)."""
        with self._lock:
            turns = [live.turn for live in self._live if not live.turn.done]
        for turn in turns:
            turn.stop()

    def new_chat(self) -> Conversation:
        """Show a new, empty conversation (``chat-2``, ``chat-3``, ...) and return it.

        The one shown before is kept as it is (a reply streaming into it goes on), and
        stays in the picker. The provider and model chosen here carry over to the new one.
        """
        with self._lock:
            provider, model = self.provider, self.model
            taken = {c.name for c in self.session}
            number = 2
            while f"chat-{number}" in taken:
                number += 1
            conv = self.session.conversation(f"chat-{number}")
            self.switch_to(conv.name)
            with self._quietly():
                self.provider, self.model = provider, model
            self._ask_models()
            self._set_status(self._idle_status())
            return conv

    def switch_to(self, name: str) -> Conversation:
        """Show the conversation ``name`` (made if new), as choosing it in the picker does."""
        with self._lock:
            if name != self.conversation.name and not self._closed:
                self._follow(self.session.conversation(name))
            return self.conversation

    def show_earlier(self, count: int = PAGE) -> None:
        """Show ``count`` more of the exchanges before the first one shown."""
        with self._lock:
            self._start = max(0, self._start - count)
            self._request_draw()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no reply streams here and the browser was sent the final state.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while True:
            with self._lock:
                turns = [live.turn for live in self._live if not live.turn.done]
            for turn in turns:
                if not turn.wait(left()):
                    return False
            with self._changed:
                settled = self._changed.wait_for(
                    lambda: self._applied >= self._requested and not self._scheduled, left()
                )
                if not settled:
                    return False
                if not self._live:
                    return True
                # a turn ended but its "end" has not been drawn yet
                self._changed.wait(0.01)

    @property
    def messages(self) -> list[str]:
        """The transcript as last sent to the browser: each message's HTML, oldest first."""
        with self._lock:
            return [value for _id, value in self._sent]

    def close(self) -> None:
        """Stop following the conversation and close the widget (replies keep streaming)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._unsubscribe()
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self._changed.notify_all()
        super().close()

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.conversation.name!r}: {len(self.conversation)} exchanges>"

    def _ipython_display_(self, **kwargs: Any) -> None:
        """The widget, then a static line that stays true when the widget is gone.

        A saved panel cannot come back by itself: after a restart, or in a notebook reopened
        without its kernel, the frontend only says "Error displaying widget: model not found".
        The line under it says what happened and how to reopen the panel; while the panel is
        drawn (JupyterLab, Notebook 7) its stylesheet hides the line.
        """
        from IPython.display import display

        bundle = self._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        if data:
            display(data, raw=True, metadata=metadata)
        display(_REOPEN, raw=True)

    # -- following a conversation ------------------------------------------------------

    def _follow(self, conv: Conversation) -> None:
        """Show ``conv`` from now on: its newest exchanges, its streaming reply, its settings."""
        self._unsubscribe()
        self.conversation = conv
        self._live = []
        self._typed = {}
        with conv.lock:
            self._epoch = conv.epoch
            self._count = len(conv.exchanges)
            self._start = max(0, self._count - PAGE)
            active = conv.active
            if active is not None and not active.done:
                self._adopt(active)
            self._unsubscribe = conv.subscribe(self._on_event)
        with self._quietly(), self.hold_sync():
            self.conversation_name = conv.name
            self._show_settings()
            self._list_conversations()
            self.busy = bool(self._live)
        self._ask_models()
        self._set_status(self._live_status() if self._live else self._idle_status())
        self._request_draw()

    def _settings(self) -> tuple[str, str]:
        """The conversation's provider and model: what its next turn uses unless one is named."""
        session, conv = self.session, self.conversation
        try:
            chosen = session.choice(conv.name)
        except ChatMagicError:  # an unknown provider or model: show it as it is (send says why)
            with conv.lock:
                provider, model = conv.provider, conv.model
            spec = provider or session.default_provider
            return spec, model or session.default_model_for(spec)
        return chosen.provider, chosen.model

    def _show_settings(self) -> None:
        provider, model = self._settings()
        with self._quietly(), self.hold_sync():
            if provider not in {name for name, _label in self.providers}:
                # a chain (-p a,b) or a provider registered since: offer it as it is
                self.providers = [*_provider_rows(), [provider, provider]]
            self.provider = provider
            self.model = model
        if provider != self._models_for:
            self._ask_models()

    def _list_conversations(self) -> None:
        rows = []
        for conv in self.session:
            n = len(conv)
            if not n and conv is not self.conversation:  # a failed first turn made it: nothing to pick
                continue
            rows.append([conv.name, f"{conv.name} · {n:,} exchange{'' if n == 1 else 's'}"])
        if self.conversation.name not in {name for name, _ in rows}:
            rows.append([self.conversation.name, self.conversation.name])
        self.conversations = rows

    def _adopt(self, turn: Turn) -> None:
        if all(live.turn is not turn for live in self._live):
            self._numbers += 1
            self._live.append(_Live(turn, self._numbers))

    # -- callbacks (any thread; they return at once) -----------------------------------

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """What the browser sends: hello, send, stop, new, earlier, models, conversations."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "send":
            text = content.get("text")
            if isinstance(text, str):
                self.send(text)
        elif kind == "stop":
            self.stop()
        elif kind == "new":
            self.new_chat()
        elif kind == "earlier":
            self.show_earlier()
        elif kind == "hello":
            with self._lock:
                self._reset_views = True
                self._request_draw()
        elif kind == "resync":
            with self._lock:
                for live in self._live:
                    live.resync = live.resync or live.id == content.get("id")
                self._request_draw()
        elif kind == "models":
            with self._lock:
                self._ask_models()
        elif kind == "conversations":
            with self._lock:
                self._list_conversations()

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Set traits from here without running the handlers meant for the user's changes."""
        with self._lock:
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def _on_pick(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._quiet or self._closed:
                return
            name = str(change["new"]).strip()
            if not name:
                with self._quietly():
                    self.conversation_name = self.conversation.name
                return
            self.switch_to(name)

    def _on_provider(self, _change: dict[str, Any]) -> None:
        with self._lock:
            if self._quiet:
                return
            # the model the next turn would use with this provider (the session's rule)
            try:
                model = self._choice(self.provider).model
            except ChatMagicError:
                model = ""
            with self._quietly():
                self.model = model
            self._ask_models()
            self._status_if_idle()

    def _on_model(self, _change: dict[str, Any]) -> None:
        with self._lock:
            if self._quiet:
                return
            try:
                # a web site's chat has a fixed list; a server takes any name (it says if it has it)
                self._choice(self.provider, self.model)
            except ChatMagicError as exc:
                self._set_status(str(exc), error=True)
                return
            self._status_if_idle()

    def _choice(self, provider: str, model: str = "") -> Choice:
        """What a turn sent from here with this provider and model would use (as send() asks)."""
        options = TurnOptions(provider=provider or None, model=model.strip() or None)
        return self.session.choice(self.conversation.name, options)

    def _status_if_idle(self) -> None:
        if not self._live:
            self._set_status(self._idle_status())

    def _ask_models(self) -> None:
        """List the provider's models on a thread of its own (a server may take seconds)."""
        provider = self.provider
        self._models_for = provider
        if not provider:
            return
        with self._quietly(), self.hold_sync():
            self.models = []
            self.models_note = f"Asking {provider} for its models…"

        def work() -> None:
            try:
                names = self.session.list_models(provider.split(",")[0])
                note = "" if names else f"{provider} lists no models: type one."
            except ChatMagicError as exc:
                names, note = [], f"Could not list the models ({exc}). Type a model name."
            with self._lock:
                if self._closed or self._models_for != provider:
                    return  # another provider was chosen meanwhile
                with self._quietly(), self.hold_sync():
                    self.models = names
                    self.models_note = note

        threading.Thread(target=work, name="chatmagic-models", daemon=True).start()

    def _on_event(self, kind: str, conv: Conversation, turn: Turn | None) -> None:
        """Conversation listener: note what changed and let the loop draw it."""
        with self._lock:
            if self._closed or conv is not self.conversation:
                return
            if kind == "start" and turn is not None:
                self._adopt(turn)
                self.busy = True
                self._set_status(self._live_status())
            if kind in ("start", "recorded", "reset", "end"):
                # a cell's -p/-m (or a restore) changed what the conversation uses: show it
                self._show_settings()
            self._request_draw()

    # -- drawing (on the background loop) -------------------------------------------------

    def _request_draw(self) -> None:
        """Coalesce draw requests: one pending call on the loop serves them all."""
        with self._lock:
            self._requested += 1
            if self._scheduled or self._closed:
                return
            self._scheduled = True
        self.session.runner.loop.call_soon_threadsafe(self._draw_on_loop)

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
        self._request_draw()

    def _draw(self) -> None:
        """Bring the browser up to date (lock held)."""
        finished = [live for live in self._live if live.turn.done]
        if finished:
            self._live = [live for live in self._live if not live.turn.done]
            for live in finished:
                self._ended(live.turn)
            self._list_conversations()
        now = time.monotonic()
        updates = [(live, self._update(live, now)) for live in self._live]
        items = self._items()
        live_ids = {live.id: live.reply.seq for live in self._live}
        if self._reset_views:
            self._reset_views, self._greeted = False, True
            self._seq = 0
            self._post({"type": "reset", "n": 0, "items": [_wire(item, live_ids) for item in items]})
            whole = set(live_ids)
        elif self._greeted:
            whole = self._splice(items, live_ids)
        else:
            whole = set(live_ids)
        for live, update in updates:
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
        self._sent = items
        with self.hold_sync():
            self.earlier = self._start
            self.busy = bool(self._live)

    def _items(self) -> list[Item]:
        """The transcript as it should be: the window of exchanges, then the live turns."""
        conv = self.conversation
        with conv.lock:
            count = len(conv.exchanges)
            if conv.epoch != self._epoch or self._start > count or count - self._count > PAGE:
                # started afresh, or changed wholesale (a restore): show its newest page again
                self._epoch = conv.epoch
                self._start = max(0, count - PAGE)
            self._count = count
            window = conv.exchanges[self._start :]
        rendered: dict[str, tuple[Exchange, str, str]] = {}
        items: list[Item] = []
        for i, ex in enumerate(window, start=self._start):
            key = f"{self._epoch[:8]}.{i}"
            cached = self._rendered.get(key)
            if cached is None or cached[0] is not ex:
                cached = (ex, present.user_html(ex.user.content), present.exchange_html(ex))
            rendered[key] = cached
            items += [(f"{key}u", cached[1]), (f"{key}a", cached[2])]
        self._rendered = rendered  # only what is shown is kept
        for live in self._live:
            items += [(f"t{live.number}u", present.user_html(live.turn.prompt)), (live.id, live.html)]
        return items

    def _update(self, live: _Live, now: float) -> dict[str, Any] | None:
        """The ``live`` message that brings the streaming bubble up to date, if one may go now.

        Moves ``live`` to the state the message brings the views to (they get it, or the
        bubble whole: see _draw). None when nothing changed, the last update was too
        recent (a flush is then due), or the budget does not cover it yet (more text will).
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
                self._flush = self.session.runner.loop.call_later(due - now, self._flush_due)
            return None
        text, reasoning = turn.text, turn.reasoning  # they may have grown since: all of it
        size, thought = len(text), len(reasoning)
        live.seen = (size, thought, who)
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
        if not reply.pace.affords(cost, size + thought) and not first_text and live.html:
            return None
        reply.pace.paid(cost, now)
        reply.sent(update)
        reply.seq = update["n"]
        live.who, live.thought = who, thought
        thinking = _thinking_html(reasoning) if thought else ""
        live.html = present.assistant_html(thinking + reply.html, who)
        if size:
            self._set_status(self._live_status())
        return update

    def _splice(self, items: list[Item], live: dict[str, int]) -> set[str]:
        """Send the one stretch where ``items`` differs from what the browser has; returns
        the ids it sent. A streaming bubble (an id in ``live``) is the same while its id is:
        it changes by ``live`` messages."""

        def same(a: Item, b: Item) -> bool:
            return a[0] == b[0] and (a[0] in live or a[1] == b[1])

        old = self._sent
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

    def _post(self, content: dict[str, Any]) -> None:
        # ipywidgets' own send (a custom message to every view): ChatPanel.send is the chat's
        ipywidgets.Widget.send(self, content)

    def _ended(self, turn: Turn) -> None:
        """A turn ended: say how (chatmagic.present), and give a failed message of ours back."""
        status = present.final_status(turn)
        typed = self._typed.pop(turn, None)
        if turn.exchange is not None:  # kept: the status line says how it ended
            self._set_status(status.text, warn=turn.state == "stopped")
            return
        note = f"{status.text}."
        if turn.state == "stopped":
            note += f" {present.outcome(turn)}"
        elif turn.error is not None:
            note += f" {turn.error}"
        if typed is not None:
            self._give_back(typed)
            note += " Your message is back in the box."
        self._set_status(note, error=turn.state == "failed", warn=turn.state == "stopped")

    def _give_back(self, text: str) -> None:
        """Put a message that was not sent back into the box (after what is in it now)."""
        current = self.draft
        if text not in current:
            self.draft = text if not current.strip() else f"{text}\n{current}"
        self._post({"type": "give_back", "text": text})

    # -- the status line ---------------------------------------------------------------

    def _idle_status(self) -> str:
        n = len(self.conversation)
        model = self.model or "the server's default model"
        return (
            f"{self.provider} · {model} · conversation {self.conversation.name!r}, "
            f"{n:,} exchange{'s' if n != 1 else ''}"
        )

    def _live_status(self) -> str:
        turn = self._live[-1].turn
        return present.streaming(turn) if turn.size else present.waiting(turn)

    def _set_status(self, text: str, *, error: bool = False, warn: bool = False) -> None:
        kind = "error" if error else "stopped" if warn else ""
        self.status = present.status_html(present.Status(text, kind))


_REOPEN_TEXT = (
    "If the chat panel does not show above (the kernel restarted, or the notebook was reopened), "
    "run this cell again, or %chat panel, to reopen it."
)
#: the line under a panel (see ChatPanel._ipython_display_); hidden while the panel is drawn
_REOPEN = {
    "text/html": (
        "<style>.jp-OutputArea-child:has(.chatmagic-panel)+.jp-OutputArea-child .cm-reopen{display:none}</style>"
        f'<div class="cm-reopen chatmagic-status">{html.escape(_REOPEN_TEXT)}</div>'
    ),
    "text/plain": _REOPEN_TEXT,
}


def _thinking_html(reasoning: str) -> str:
    """The Thinking block of a streaming reply, all of it (its new text is appended as it comes)."""
    return present.thinking_html(reasoning, streaming=True, tail=len(reasoning))


def _thinking_summary(reasoning: str) -> str:
    """The summary line of that block (what present.thinking_html writes), as HTML."""
    return html.escape(present.thinking_summary(reasoning, streaming=True))


def _wire(item: Item, live: dict[str, int]) -> list[Any]:
    """An item as sent: ``[id, html]``, and for a streaming bubble the seq of its last patch."""
    return [*item, live[item[0]]] if item[0] in live else list(item)
