"""The chat panel: one anywidget over the same session core as ``%%chat``.

A :class:`ChatPanel` shows one conversation of a session at a time: a picker and **New chat**,
the provider and a model box that takes any name, the transcript, a multi-line box with
Send / Stop, and a status line. It keeps no history of its own: it follows the conversation
(``Conversation.subscribe``), so cells and other panels on it show up here, and what it sends
is what the next ``%%chat`` cell continues (a first turn is checked as a cell's: unrestored).
New chat opens a new conversation and keeps the old one: nothing in the panel deletes history.

The browser side is ``static/panel.js`` (keyboard, layout, scrolling); everything it shows
is drawn here (:mod:`chatmagic.present`; model text is Markdown sanitized in Python,
:func:`chatmagic.render.markdown_html`), and the browser only puts that HTML in place.

What it sends the browser, and when, is :mod:`chatmagic._transcript` (the newest exchanges,
changed by splices, a streaming reply by patches); the provider picker and model box are
:mod:`chatmagic._panel_models`; a turn's tools and budget question, :mod:`chatmagic._panel_tools`.

Threads. Widget messages can arrive on a subshell thread (JupyterLab >= 4.4 with
ipykernel >= 7), concurrently with a running cell; conversation events arrive on the
background loop or the main thread. Every callback only reads what it was sent, starts or
stops a turn (both return at once) and hands the drawing to the background loop; the
panel's state is guarded by one lock, and no callback waits on the network (listing a
server's models runs on a thread of its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from . import _panel_look, _panel_tools, present, style
from ._panel_models import ModelBox
from ._state import get_session
from ._stream import esm, short_comm_id
from ._text import panel_key
from ._transcript import PAGE, Transcript
from .errors import ChatMagicError
from .pause import Audience, Pending
from .session import DEFAULT_CONVERSATION, ChatSession, Conversation, Turn, TurnOptions
from .unrestored import refuse_unrestored

__all__ = ["PAGE", "ChatPanel"]

_STATIC = Path(__file__).with_name("static")


class ChatPanel(ModelBox, anywidget.AnyWidget):
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
    _css = style.CSS + (_STATIC / "panel.css").read_text(encoding="utf-8")

    #: the conversation shown (the picker); set it to show another
    conversation_name = traitlets.Unicode(DEFAULT_CONVERSATION).tag(sync=True)
    #: the session's conversations as ``[name, label]``, for the picker
    conversations = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
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
        tools: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if session is None:
            session = get_session()
        self.session: ChatSession = session
        self._lock = threading.RLock()
        self.conversation: Conversation = session.conversation(conversation)
        #: the last turn this panel sent (its message returns to the box if it fails)
        self.turn: Turn | None = None
        # what the user typed for each turn sent from here (the turn's prompt is what was sent,
        # secrets taken out): a failed message goes back to the box as typed
        self._typed: dict[Turn, str] = {}
        # what the browser is sent, and when (drawn on the loop, under this panel's lock)
        self._transcript = Transcript(session.runner, self._lock, self._post, self._draw)
        self._closed = False
        #: tools offered (as --tools; None: ChatMagics.tools), who answers (a drawn panel), a question
        self.tools, self.audience = tools, Audience()
        self.asking: Pending | None = None
        self._unsubscribe: Callable[[], None] = lambda: None

        kwargs.setdefault("model_id", short_comm_id())  # every live message carries it
        super().__init__(conversation_name=self.conversation.name, height=height, **kwargs)
        self.on_msg(self._on_msg)
        self.observe(self._on_pick, names="conversation_name")
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
            if self._transcript.streaming() or self.asking is not None:  # (Stop cancels a question too)
                self._give_back(prompt)
                self._set_status("A reply is still streaming: wait for it, or Stop it.", error=True)
                return None
            try:
                # the provider and model chosen here stay with the conversation, as a cell's -p/-m
                refuse_unrestored(self.session, self.conversation.name, "New chat starts a new one")
                turn = self.session.prepare(
                    prompt,
                    conversation=self.conversation.name,
                    options=TurnOptions(provider=self.provider or None, model=self.model.strip() or None),
                    key=panel_key(),
                )
                _panel_tools.offer(self, turn)  # its tools, and its cards (chatmagic._panel_tools)
                self.turn = turn
                self._typed = {turn: prompt}
                if text is None:  # the box's text was sent from Python: the page empties the box
                    self.draft = ""
                    self._post({"type": "sent", "text": prompt})
                self.busy = True
                # over budget it waits for Send anyway / Cancel; start() emits "start" on this
                # thread: _on_event adopts the turn
                if _panel_tools.gate(self, turn, prompt):
                    self.session.start(turn)
            except ChatMagicError as exc:
                self.busy = False
                self._give_back(prompt)
                self._set_status(str(exc), error=True)
                return None
            return turn

    def stop(self) -> None:
        """Stop every reply streaming into the shown conversation (returns at once)."""
        with self._lock:
            turns = self._transcript.streaming()
            _panel_tools.cancel(self)
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
            conv.started_afresh = True  # on purpose: a chat-N of an earlier kernel's log is not its past
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
            self._transcript.show_earlier(count)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no reply streams here and the browser was sent the final state.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        return self._transcript.wait(timeout)

    @property
    def messages(self) -> list[str]:
        """The transcript as last sent to the browser: each message's HTML, oldest first."""
        with self._lock:
            return [value for _id, value in self._transcript.sent]

    def close(self) -> None:
        """Stop following the conversation and close the widget (replies keep streaming)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._unsubscribe()
            self._transcript.close()
        super().close()

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.conversation.name!r}: {len(self.conversation)} exchanges>"

    def _ipython_display_(self, **kwargs: Any) -> None:
        """The widget, then a static line that stays true when the widget is gone."""
        _panel_look.display_panel(self._repr_mimebundle_(**kwargs))

    # -- following a conversation ------------------------------------------------------

    def _follow(self, conv: Conversation) -> None:
        """Show ``conv`` from now on: its newest exchanges, its streaming reply, its settings."""
        _panel_tools.cancel(self)  # a budget question is the conversation's shown until now
        self._unsubscribe()
        self.conversation = conv
        self._typed = {}
        with conv.lock:
            self._transcript.show(conv)
            self._unsubscribe = conv.subscribe(self._on_event)
        with self._quietly(), self.hold_sync():
            self.conversation_name = conv.name
            self._show_settings()
            self._list_conversations()
            self.busy = bool(self._transcript.live)
        self._ask_models()
        self._set_status(self._live_status() if self._transcript.live else self._idle_status())
        self._transcript.request()

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
        elif kind == "answer":
            _panel_tools.answer(self, content)
        elif kind == "hello":
            self.audience.hello()  # a frontend drew the panel: someone can answer its questions
            with self._lock:
                self._transcript.hello()
        elif kind == "resync":
            with self._lock:
                self._transcript.resync(content.get("id"))
        elif kind == "models":
            with self._lock:
                self._ask_models()
        elif kind == "conversations":
            with self._lock:
                self._list_conversations()

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

    def _status_if_idle(self) -> None:
        if not self._transcript.live:
            self._set_status(self._idle_status())

    def _on_event(self, kind: str, conv: Conversation, turn: Turn | None) -> None:
        """Conversation listener: note what changed and let the loop draw it."""
        with self._lock:
            if self._closed or conv is not self.conversation:
                return
            if kind == "start" and turn is not None:
                self._transcript.adopt(turn)
                self.busy = True
                self._set_status(self._live_status())
            if kind in ("start", "recorded", "reset", "end") and not (kind == "start" and turn is self.turn):
                # a cell's -p/-m (or a restore) changed what the conversation uses (one sent from here shows it)
                self._show_settings()
            self._transcript.request()

    # -- drawing (on the background loop) -------------------------------------------------

    def _draw(self) -> None:
        """Bring the browser up to date (on the loop, lock held): how ended turns ended, then
        what the transcript sends (chatmagic._transcript)."""
        transcript = self._transcript
        finished = transcript.finished()
        for turn in finished:
            self._ended(turn)
        if finished:
            self._list_conversations()
        patches = transcript.patches(time.monotonic())
        if any(update is not None and live.seen[0] for live, update in patches):
            self._set_status(self._live_status())  # text went out: the line says "streaming…"
        transcript.send(self.conversation, patches)
        with self.hold_sync():
            self.earlier = transcript.start
            self.busy = bool(transcript.live) or self.asking is not None

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
        turn = self._transcript.live[-1].turn
        return present.streaming(turn) if turn.size else present.waiting(turn)

    def _set_status(self, text: str, *, error: bool = False, warn: bool = False) -> None:
        kind = "error" if error else "stopped" if warn else ""
        self.status = present.status_html(present.Status(text, kind))
