"""The chat panel: an ipywidgets skin over the same session core as ``%%chat``.

A :class:`ChatPanel` shows one :class:`~chatmagic.session.Conversation` of a
:class:`~chatmagic.session.ChatSession`: the transcript, a box, Send / Stop / New chat,
provider and model dropdowns, and a status line. It never holds history of its own:
it subscribes to the conversation, so cells and other panels on the same conversation
show up in it, and what it sends is what the next ``%%chat`` cell continues.

Threads. Widget callbacks can run on a subshell thread (JupyterLab >= 4.4 with
ipykernel >= 7), concurrently with a running cell; conversation events arrive on the
background loop thread or the main thread. So every callback only reads the widgets,
starts or stops a turn (both return at once) and hands the drawing to the background
loop; all panel state is guarded by one lock, and nothing here ever blocks a callback.

Traffic. One widget per message: while a reply streams, only its own widget is
updated, paced by :class:`~chatmagic.render.UpdatePacer` (first text at once, then at
most ten updates a second, each after the text grew by an eighth), with a trailing
flush scheduled on the loop so the last chunks always arrive. A reply of any length
costs a few dozen widget messages, not one per chunk, and earlier messages are never
re-sent.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from . import present
from .errors import ChatMagicError
from .render import UpdatePacer, markdown_html
from .session import (
    DEFAULT_CONVERSATION,
    ChatSession,
    Conversation,
    Exchange,
    Turn,
    TurnOptions,
    new_key,
)

__all__ = ["ChatPanel"]

#: the one stylesheet of every skin (chatmagic.present): the panel looks like %chat history
_CSS = present.FULL_STYLE

#: rendered messages kept for re-use (a structural redraw re-renders nothing it has seen)
_CACHE_SIZE = 512


def _provider_rows() -> list[dict[str, Any]]:
    from .providers import list_providers

    return [r for r in list_providers() if "error" not in r]


def _models_of(provider: str) -> tuple[list[str], str]:
    """The models a provider offers (its default first) and that default."""
    from .providers import get_provider

    row = get_provider(provider).describe()
    default = str(row["default_model"])
    models = [default] + [m for m in row["models"] if m != default]
    return models, default


class ChatPanel(widgets.VBox):
    """A chat panel on one conversation of a session (the shared one by default).

    Examples
    --------
    ::

        In [1]: %load_ext chatmagic

        In [2]: %chat panel              # the panel on the 'default' conversation

        In [3]: from chatmagic.panel import ChatPanel
           ...: p = ChatPanel("review")  # the same, from Python
           ...: p

        In [4]: p.send("Hello"); p.wait(30); p.conversation.history()[-1].content
    """

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
        self.conversation: Conversation = session.conversation(conversation)
        self._lock = threading.RLock()
        # turns streaming into this conversation, in the order they started
        self._live: list[Turn] = []
        self._pacers: dict[Turn, UpdatePacer] = {}
        #: the last turn this panel sent (its prompt returns to the box if it fails)
        self.turn: Turn | None = None
        self._rendered: dict[tuple[Any, ...], str] = {}
        self._message_widgets: list[widgets.HTML] = []
        self._live_widgets: dict[Turn, widgets.HTML] = {}
        # drawing is requested from any thread and done on the loop; counters let wait() know
        # when the widgets have caught up
        self._changed = threading.Condition(self._lock)
        self._requested = 0
        self._applied = 0
        self._scheduled = False
        self._structure_dirty = True
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False

        rows = _provider_rows()
        names = [r["name"] for r in rows]
        provider = self.conversation.provider or session.default_provider
        if provider not in names:
            provider = names[0] if names else session.default_provider
        models, default_model = _models_of(provider)
        model = self.conversation.model if self.conversation.model in models else None
        if model is None and provider == session.default_provider and session.default_model in models:
            model = session.default_model

        self.provider_dropdown = widgets.Dropdown(
            options=[(f"{r['label']} ({r['name']})", r["name"]) for r in rows],
            value=provider,
            description="Provider",
            layout=widgets.Layout(width="auto"),
        )
        self.model_dropdown = widgets.Dropdown(
            options=models,
            value=model or default_model,
            description="Model",
            layout=widgets.Layout(width="auto"),
        )
        self.new_button = widgets.Button(
            description="New chat", icon="plus", tooltip="Forget this conversation's history"
        )
        self.transcript = widgets.VBox(layout=widgets.Layout(width="100%", flex="0 0 auto"))
        # a scroller whose only child is the transcript, laid out column-reverse: the view
        # then stays on the newest message as the reply grows, without any JavaScript, and
        # the messages keep their natural order in the page (for screen readers and tests)
        self._scroller = widgets.Box(
            [self.transcript],
            layout=widgets.Layout(
                max_height=height,
                overflow="auto",
                flex_flow="column-reverse",
                width="100%",
                padding="2px 4px",
            ),
        )
        self._scroller.add_class("chatmagic-transcript")
        self.text = widgets.Text(
            placeholder="Message — Enter sends",
            continuous_update=True,
            layout=widgets.Layout(flex="1 1 auto", width="auto"),
        )
        self.send_button = widgets.Button(
            description="Send", button_style="primary", icon="paper-plane", tooltip="Send the message (Enter)"
        )
        self.stop_button = widgets.Button(
            description="Stop",
            button_style="warning",
            icon="stop",
            disabled=True,
            tooltip="Stop the reply now",
        )
        self.status = widgets.HTML(value="", layout=widgets.Layout(width="100%"))
        self._style = widgets.HTML(value=_CSS, layout=widgets.Layout(height="0px", margin="0"))

        super().__init__(
            children=[
                self._style,
                widgets.HBox(
                    [self.provider_dropdown, self.model_dropdown, self.new_button],
                    layout=widgets.Layout(flex_flow="row wrap", width="100%"),
                ),
                self._scroller,
                widgets.HBox(
                    [self.text, self.send_button, self.stop_button], layout=widgets.Layout(width="100%")
                ),
                self.status,
            ],
            **kwargs,
        )
        self.add_class("chatmagic-panel")

        self.provider_dropdown.observe(self._on_provider, names="value")
        self.model_dropdown.observe(self._on_model, names="value")
        self.send_button.on_click(lambda _b: self.send())
        self.stop_button.on_click(lambda _b: self.stop())
        self.new_button.on_click(lambda _b: self.new_chat())
        # Enter in a Text widget arrives as a custom "submit" message; Text.on_submit is
        # deprecated in ipywidgets 8 (and would warn), the message itself is not
        self.text.on_msg(self._on_text_msg)

        with self._lock:
            active = self.conversation.active
            if active is not None and not active.done:
                self._adopt(active)
            self._unsubscribe: Callable[[], None] = self.conversation.subscribe(self._on_event)
            self._set_status(self._idle_status())
            self._draw()

    # -- Python API ------------------------------------------------------------------

    def send(self, text: str | None = None) -> Turn | None:
        """Send ``text`` (or what is in the box), as the Send button does; returns the turn.

        Returns ``None`` when nothing was sent: an empty message, a reply still streaming
        in this conversation, or an error (shown in the status line, the text kept in the box).
        """
        with self._lock:
            if text is not None:
                self.text.value = text
            prompt = self.text.value
            if not prompt.strip():
                self._set_status("Type a message first.", error=True)
                return None
            if any(not t.done for t in self._live):
                self._set_status("A reply is still streaming: wait for it, or Stop it.", error=True)
                return None
            provider, model = self.provider_dropdown.value, self.model_dropdown.value
            try:
                # the provider and model chosen here stay with the conversation (the session
                # core's rule, as for a cell's -p/-m): the next %%chat cell continues with them
                turn = self.session.prepare(
                    prompt,
                    conversation=self.conversation.name,
                    options=TurnOptions(provider=provider, model=model),
                    key=f"panel:{new_key()}",
                )
                self.turn = turn
                # start() emits "start" on this thread: _on_event adopts the turn
                self.session.start(turn)
            except ChatMagicError as exc:
                self._set_status(str(exc), error=True)
                return None
            self.text.value = ""
            self.send_button.disabled = True
            self.stop_button.disabled = False
            return turn

    def stop(self) -> None:
        """Stop every reply streaming into this conversation (returns at once)."""
        with self._lock:
            live = [t for t in self._live if not t.done]
        for turn in live:
            turn.stop()

    def new_chat(self) -> None:
        """Start the conversation afresh, for every panel and cell on it (returns at once).

        A streaming reply is stopped first, and the history is cleared only once it has
        ended: a stopped reply is recorded when it ends and would otherwise land in the
        new chat.
        """
        with self._lock:
            live = [t for t in self._live if not t.done]
        for turn in live:
            turn.stop()
        session, name = self.session, self.conversation.name

        async def reset_when_stopped() -> None:
            while any(not t.done for t in live):
                await asyncio.sleep(0.01)
            session.new_conversation(name)

        session.runner.submit(reset_when_stopped())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no reply streams here and the widgets show the final text.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while True:
            with self._lock:
                live = [t for t in self._live if not t.done]
            for turn in live:
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
    def messages(self) -> list[widgets.HTML]:
        """The transcript's message widgets, oldest first."""
        with self._lock:
            return list(self.transcript.children)

    def close(self) -> None:
        """Stop following the conversation and close the widgets (replies keep streaming)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._unsubscribe()
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            owned = [
                *self._message_widgets,
                self.provider_dropdown,
                self.model_dropdown,
                self.new_button,
                self.text,
                self.send_button,
                self.stop_button,
                self.status,
                self._style,
            ]
            boxes = [c for c in self.children if isinstance(c, widgets.Box)]
            self._message_widgets.clear()
            self._changed.notify_all()
        for w in [*owned, self.transcript, *boxes]:
            w.close()
        super().close()

    # -- callbacks (any thread; they return at once) -----------------------------------

    def _on_text_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            self.send()

    def _on_provider(self, change: dict[str, Any]) -> None:
        try:
            models, default = _models_of(change["new"])
        except ChatMagicError as exc:
            self._set_status(str(exc), error=True)
            return
        with self._lock:
            # new options select the first one, which is the provider's default
            self.model_dropdown.options = models
            self.model_dropdown.value = default
            self._status_if_idle()

    def _on_model(self, _change: dict[str, Any]) -> None:
        self._status_if_idle()

    def _status_if_idle(self) -> None:
        with self._lock:
            if not self._live:
                self._set_status(self._idle_status())

    def _on_event(self, kind: str, _conv: Conversation, turn: Turn | None) -> None:
        """Conversation listener: note what changed and let the loop draw it."""
        with self._lock:
            if self._closed:
                return
            if kind == "start" and turn is not None:
                self._adopt(turn)
                if turn is not self.turn:
                    self._follow(turn)
                self.send_button.disabled = True
                self.stop_button.disabled = False
                self._set_status(f"{turn.provider} · {turn.model} · waiting…")
            if kind != "update":
                self._structure_dirty = True
            self._request_draw()

    def _follow(self, turn: Turn) -> None:
        """A cell (or another panel) chose a provider and model: show them here too."""
        listed = [value for _label, value in self.provider_dropdown.options]
        if turn.provider not in listed:
            return  # registered after the panel was made: keep the panel's choice
        if self.provider_dropdown.value != turn.provider:
            self.provider_dropdown.value = turn.provider
        if turn.model in self.model_dropdown.options:
            self.model_dropdown.value = turn.model

    def _adopt(self, turn: Turn) -> None:
        if turn not in self._pacers:
            self._live.append(turn)
            self._pacers[turn] = UpdatePacer()

    # -- drawing (on the background loop) -------------------------------------------------

    def _request_draw(self) -> None:
        """Coalesce draw requests: one pending call on the loop serves them all."""
        with self._lock:
            self._requested += 1
            if self._scheduled:
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
        """Bring the widgets up to date (lock held)."""
        finished = [t for t in self._live if t.done]
        if finished:
            self._live = [t for t in self._live if not t.done]
            for turn in finished:
                self._pacers.pop(turn, None)
                self._live_widgets.pop(turn, None)
                self._ended(turn)
            self._structure_dirty = True
        if self._structure_dirty:
            self._structure_dirty = False
            self._redraw_transcript()
        else:
            for turn in self._live:
                self._draw_streaming(turn)
        streaming = bool(self._live)
        self.send_button.disabled = streaming
        self.stop_button.disabled = not streaming

    def _redraw_transcript(self) -> None:
        """Every message in place: unchanged messages cost nothing, only new ones are sent."""
        with self.conversation.lock:
            exchanges = list(self.conversation.exchanges)
        items = []
        for ex in exchanges:
            items.append(self._user_html(ex.user.content))
            items.append(self._exchange_html(ex))
        live_slots: list[tuple[Turn, int]] = []
        for turn in self._live:
            items.append(self._user_html(turn.prompt))
            live_slots.append((turn, len(items)))
            items.append("")  # filled by _draw_streaming
        if not items:
            items.append('<div class="chatmagic-empty">No messages yet — write one below.</div>')

        ws = self._message_widgets
        resized = len(ws) != len(items)
        while len(ws) < len(items):
            w = widgets.HTML(layout=widgets.Layout(width="100%"))
            ws.append(w)
        extra = ws[len(items) :]
        del ws[len(items) :]
        for turn, i in live_slots:
            # the slot may be a different widget than before: draw it whatever was sent
            items[i] = self._streaming_html(turn)
            if turn.size:
                self._pacers[turn].sent(turn.size)
        for w, value in zip(ws, items, strict=True):
            w.value = value
        self._live_widgets = {turn: ws[i] for turn, i in live_slots}
        if resized:
            self.transcript.children = tuple(ws)
        for w in extra:
            w.close()

    def _draw_streaming(self, turn: Turn) -> None:
        w = self._live_widgets.get(turn)
        if w is None:
            return
        pacer = self._pacers[turn]
        size = turn.size
        if pacer.due(size):
            w.value = self._streaming_html(turn)
            pacer.sent(size)
            # an equal value sends nothing: this costs one message per turn
            self._set_status(f"{turn.provider} · {turn.model} · streaming…")
        elif size > pacer.sent_size and self._flush is None:
            # the text grew but an update is not due yet: make sure the rest arrives even if
            # no further chunk comes to trigger it (the end of the turn redraws anyway)
            self._flush = self.session.runner.loop.call_later(pacer.wait_time(), self._flush_due)

    def _ended(self, turn: Turn) -> None:
        """A turn ended: say how (chatmagic.present), and give a failed message of ours back to the box."""
        status = present.final_status(turn)
        if turn.state == "done" or (turn.state == "stopped" and turn.text):
            self._set_status(status.text, warn=turn.state == "stopped")
            return
        note = f"{status.text}."
        if turn.state == "stopped":
            note += " Nothing was added to the conversation."
        elif turn.error is not None:
            note += f" {turn.error}"
        if turn is self.turn:
            current = self.text.value
            if turn.prompt not in current:
                self.text.value = turn.prompt if not current.strip() else f"{turn.prompt} {current}"
            note += " Your message is back in the box."
        self._set_status(note, error=turn.state == "failed", warn=turn.state == "stopped")

    # -- HTML ---------------------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], make: Callable[[], str]) -> str:
        value = self._rendered.get(key)
        if value is None:
            if len(self._rendered) >= _CACHE_SIZE:
                self._rendered.clear()
            value = self._rendered[key] = make()
        return value

    def _user_html(self, text: str) -> str:
        return self._cached(("user", text), lambda: present.user_html(text))

    def _exchange_html(self, ex: Exchange) -> str:
        key = ("assistant", ex.assistant.content, ex.provider, ex.model, ex.stopped, ex.total_s)
        return self._cached(
            key, lambda: _assistant_html(ex.assistant.content, present.exchange_head(ex), stopped=ex.stopped)
        )

    def _streaming_html(self, turn: Turn) -> str:
        text = turn.text
        return _assistant_html(text, present.streaming(turn) if text else present.waiting(turn))

    def _idle_status(self) -> str:
        n = len(self.conversation)
        return (
            f"{self.provider_dropdown.value} · {self.model_dropdown.value} · conversation "
            f"{self.conversation.name!r}, {n} exchange{'s' if n != 1 else ''}"
        )

    def _set_status(self, text: str, *, error: bool = False, warn: bool = False) -> None:
        kind = "error" if error else "stopped" if warn else ""
        self.status.value = present.status_html(present.Status(text, kind))

    @property
    def status_text(self) -> str:
        """The status line as plain text (for tests and for Python use)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.conversation.name!r}: {len(self.conversation)} exchanges>"


def _assistant_html(text: str, head: str, *, stopped: bool = False) -> str:
    return present.assistant_html(markdown_html(text) if text else "", head, stopped=stopped)
