"""A reply streaming into a notebook cell through a small widget, patched like the panel.

A cell that re-sends its open Markdown block whole on every update runs out of budget on a
long paragraph or code block and stops changing for seconds. Where widgets work, the cell's
tail display is a :class:`ReplyView`: a tiny anywidget whose view says ``hello`` when it is
drawn; from then on the reply goes to it as the patches of :mod:`chatmagic._stream` (the new
text only, verified in the browser), under the budget shared with the panel. Until a hello
arrives (no widget manager: nbclient, ``jupyter execute``; or a frontend that delivers comm
messages only between cells), the cell keeps its plain display updates
(:class:`chatmagic._cellstream.ReplyStream`). At the end the display is replaced by the usual
static bundle (same display id): the saved output is the same either way.

One widget serves every cell of a kernel (:meth:`ReplyView.for_reply`): its ES module is
sent once, with the first reply, not with each (its bytes would be a large share of a short
reply's). Only the streaming cell's display shows it; every earlier one was replaced by its
static bundle, so the views it has are the current reply's.

Its comm id (the model id) is short (:func:`chatmagic._stream.short_comm_id`): every patch
carries it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anywidget

from ._stream import LiveReply, esm, message_cost, short_comm_id
from .present import status_html

__all__ = ["ReplyView"]

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

_shared: ReplyView | None = None


class ReplyView(anywidget.AnyWidget):
    """The widget a streaming cell shows (see the module docstring)."""

    _esm = esm("replyview.js")

    def __init__(self, fmt: str = "markdown") -> None:
        super().__init__(model_id=short_comm_id())
        self.fmt = fmt
        #: the reply as the views hold it; made at the first hello (from the cell's ``frozen``)
        self.reply: LiveReply | None = None
        self._asked = threading.Event()  # a view said hello, or asked for the reply whole
        self._status = ""
        #: called with (question id, answer) when a Run / Deny / Always button is clicked
        self.on_answer: Callable[[str, str], None] | None = None
        #: a turn paused for an answer still sends here after its cell ended: not shared now
        self.held = False
        self._asks = ""
        self.on_msg(self._on_msg)
        if hasattr(self.comm, "_reply_subshell_for"):
            # ipykernel 7 routes a widget's incoming messages to the subshell that last sent
            # from it: here the cell's own shell, busy until the reply ends. Take them on the
            # subshell the frontend chose (JupyterLab >= 4.4), where the hello arrives at once
            self.comm._reply_subshell_for = lambda _data, default: default

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # on a subshell thread while the cell runs: only note it; the cell's loop sends
        if isinstance(content, dict) and content.get("type") in ("hello", "resync"):
            self._asked.set()
            if content.get("type") == "hello" and self._asks:
                # a view drawn after the buttons went out (a custom message reaches only the
                # views that exist): it gets them now, or a waiting call shows no Run button
                self.send({"ask": self._asks})
        elif isinstance(content, dict) and content.get("type") == "answer" and self.on_answer is not None:
            try:  # a click: the pause takes the answer from any thread
                self.on_answer(str(content.get("id")), str(content.get("choice")))
            except Exception:  # noqa: BLE001 - answered already, or a stale button: nothing to do
                pass

    @classmethod
    def for_reply(cls, fmt: str = "markdown") -> ReplyView:
        """The kernel's reply view, ready for a new reply (made on first use, or again if closed)."""
        global _shared
        view = _shared
        if view is None or view.comm is None or view.held:
            view = _shared = cls(fmt)
        view.fmt, view.reply, view._status = fmt, None, ""
        view.on_answer, view._asks = None, ""
        view._asked.clear()
        return view

    def wait_hello(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a view to say it is drawn (a question before a
        reply: the glass box of a turn over budget, chatmagic._gate)."""
        return self._asked.wait(timeout)

    def show(self, html: str) -> None:
        """Show ``html`` (escaped by the caller) whole in the views, in place of a reply."""
        self._asked.clear()
        self.send({"n": 0, "html": html})

    @property
    def ready(self) -> bool:
        """A view has been drawn and said so: the reply goes to it from now on."""
        return self.reply is not None or self._asked.is_set()

    def bundle(self, plain: dict[str, str]) -> dict[str, Any]:
        """``plain`` with this widget in it: frontends with widgets draw the widget."""
        return {**plain, _WIDGET_MIME: {"model_id": self.model_id, "version_major": 2, "version_minor": 1}}

    @property
    def showing_text(self) -> bool:
        return self.reply is not None and bool(self.reply.tail or self.reply.blocks)

    def wait_time(self, now: float) -> float:
        if self.reply is None:
            return 0.1
        return max(0.05, self.reply.pace.due(now) - now)

    def step(self, text: str, status: str, now: float, start: int) -> None:
        """Bring the views up to date with ``text`` (from offset ``start``) if a message may go now."""
        if self.reply is None:
            self.reply = LiveReply(self.fmt, start=start)
        reply = self.reply
        first = not reply.pace.sent_at and reply.pace.spent == 0
        if now < reply.pace.due(now, first):
            return
        line = status_html(status) if status else ""
        if self._asked.is_set():
            self._asked.clear()
            reply.sent(reply.patch(text))  # the views get this state whole
            reply.went_whole()
            self._status = line
            msg: dict[str, Any] = {"n": reply.seq, "html": f'{reply.html}<div class="cm-line">{line}</div>'}
            self._post(msg, now)
            return
        msg = reply.patch(text)
        if line != self._status:
            msg.setdefault("n", reply.seq + 1)
            msg["s"] = line
        if not msg:
            return
        cost = message_cost(msg, self.model_id)
        if not reply.pace.affords(cost, len(text) - start, now):
            return
        reply.sent(msg)
        reply.seq = msg["n"]
        self._status = line
        self._post(msg, now)

    def asks(self, html: str) -> None:
        """Show the buttons of the calls that wait (``_toolcards.ask_html``; "" hides them)."""
        if html != self._asks:
            self._asks = html
            self.send({"ask": html})

    def _post(self, msg: dict[str, Any], now: float) -> None:
        assert self.reply is not None
        self.reply.pace.paid(message_cost(msg, self.model_id), now)
        self.send(msg)
