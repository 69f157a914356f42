"""A started turn shown in a cell's outputs: the streaming loop, the Thinking block, the end.

chatmagic._cell starts the turn and hands it here: :func:`stream_outputs` sends what
:class:`chatmagic._cellstream.ReplyStream` decides (or patches the reply view,
chatmagic._replyview) while the turn runs, with the tool cards and calls of
chatmagic._toolcell at each look; :func:`end_outputs` makes the last updates (the cards, the
reply with its status line and its record).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from IPython.display import display

from . import present
from ._cellstream import ReplyStream
from ._terminal import TerminalReply
from .record import exchange_metadata
from .session import Turn

if TYPE_CHECKING:
    from ._replyview import ReplyView
    from ._toolcell import ToolCell

__all__ = ["VIEW_GRACE", "end_outputs", "reply_view", "stream_outputs"]

#: seconds a cell's plain updates keep its reply view, waiting for the view's hello
VIEW_GRACE = 1.0


def end_outputs(
    turn: Turn,
    stream: ReplyStream,
    handles: list[Any],
    thinking_handle: Any,
    terminal: TerminalReply | None,
    tools: ToolCell | None,
) -> None:
    """The turn's last updates: the cards, then the reply with its status line and record."""
    if tools is not None:
        tools.end()
    if terminal is not None:
        terminal.end(turn)
    else:
        metadata: dict[str, Any] = {}
        if turn.exchange is not None:
            # the exchange is saved with the notebook: %chat restore rebuilds it after a restart
            metadata = exchange_metadata(turn.conversation, turn.exchange)
        final = stream.final(turn.text, present.final_status(turn))
        reasoning = turn.reasoning
        if reasoning and thinking_handle is not None:
            thinking_handle.update({"text/html": present.thinking_html(reasoning)}, raw=True)
        elif reasoning:  # thought after the answer began, or stopped early: above the tail
            final["text/html"] = present.thinking_html(reasoning) + final["text/html"]
        if not handles:
            display(final, raw=True, metadata=metadata)
        else:
            handles[-1].update(final, raw=True, metadata=metadata)


def stream_outputs(
    turn: Turn,
    stream: ReplyStream,
    handles: list[Any],
    view: ReplyView | None = None,
    tools: ToolCell | None = None,
    detach: bool = True,
) -> Any:
    """Send what ``stream`` decides while the turn runs; ``handles[-1]`` is the tail display.

    Until the first text the loop wakes on every change (the first text shows at once);
    then it looks ten times a second: batches, not chunks, cost the kernel's time. Once
    the tail display's widget (``view``) has said hello, the reply goes to it as patches
    (chatmagic._replyview) and the displays are no longer updated. With ``tools``, each look
    runs the calls queued for this thread and redraws the cards; it returns (``detach``)
    when a call waits for an answer (chatmagic._toolcell).
    """
    version = pokes = 0
    thinking = _Thinking(handles, view)
    # the tail display shows the view (the first display does). Plain updates keep it for a
    # second (a view loads its module before it can say hello), then replace it: a frontend
    # that cannot answer while the cell runs (VS Code) would show an empty view. It is put
    # back once a hello says a view can answer
    attached, plain = view is not None, None
    grace = time.monotonic() + VIEW_GRACE
    while not turn.done:
        if tools is not None:
            tools.look()
            if detach and tools.paused:
                break
        patching = view is not None and view.ready
        showing = stream.showing_text or (view is not None and view.showing_text)
        if not showing:  # a tool step wakes it too (Turn.poke changes the version)
            version = turn.wait_change(version, 0.25 if not patching else 0.1)
        else:
            now = time.monotonic()
            pace = view.wait_time(now) if view is not None and patching else stream.wait_time(now)
            if tools is not None:  # a call queued for this thread runs at once, not at the next look
                pokes = turn.wait_poke(pokes, pace)
            else:
                turn.wait(pace)
        if turn.done:
            break
        if turn.reasoning_size and not showing:
            tail = handles[-1]
            thinking.show(turn, stream)
            attached = attached or handles[-1] is not tail  # a new tail display, with the view
        status = present.streaming(turn) if turn.size else present.waiting(turn)
        if view is not None and view.ready:
            if not attached and plain is not None:
                handles[-1].update(view.bundle(plain), raw=True)
                attached = True
            view.step(stream.for_view(turn.text), status, time.monotonic(), stream.frozen)
            continue
        for op in stream.step(turn.text, status, time.monotonic()):
            keep = view is not None and op.kind != "freeze" and time.monotonic() < grace
            bundle = view.bundle(op.bundle) if view is not None and keep else op.bundle
            if op.kind == "open":
                handles.append(display(bundle, raw=True, display_id=True))
            else:
                handles[-1].update(bundle, raw=True)
            attached, plain = keep, op.bundle
            stream.sent(op, time.monotonic())  # when it went: the rate counts from there
    return thinking.handle


def reply_view(fmt: str) -> ReplyView | None:
    """The widget a streaming cell patches, or None where widgets cannot be made."""
    try:
        from ._replyview import ReplyView  # ipywidgets: loaded with the first reply, not the extension

        return ReplyView.for_reply(fmt)
    except Exception:  # noqa: BLE001 - no widgets: the plain display updates serve
        return None


class _Thinking:
    """The "Thinking" block of a reasoning model, in its own output above the answer.

    Reasoning comes before the answer: when it starts, the output that shows "waiting…"
    becomes the Thinking block and a new one below it takes over the status (and then the
    answer). While it streams it shows its last lines, at most once a second; the final
    update shows all of it, collapsed.
    """

    def __init__(self, handles: list[Any], view: ReplyView | None = None) -> None:
        self.handles = handles
        self.view = view  # the tail display carries it (see chatmagic._cell._stream)
        self.handle: Any = None
        self.shown_at = float("-inf")

    def show(self, turn: Turn, stream: ReplyStream) -> None:
        now = time.monotonic()
        if now - self.shown_at < 1.0:
            return
        self.shown_at = now
        bundle = {"text/html": present.thinking_html(turn.reasoning, streaming=True)}
        if self.handle is None:
            self.handle = self.handles[-1]
            self.handle.update(bundle, raw=True)
            tail = stream.start(present.waiting(turn), now)
            self.handles[-1] = display(
                self.view.bundle(tail) if self.view else tail, raw=True, display_id=True
            )
        else:
            self.handle.update(bundle, raw=True)
