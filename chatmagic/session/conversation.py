"""Conversations and their exchanges: what a conversation keeps, and what a turn sends of it.

The data of the session core (:mod:`chatmagic.session`): a :class:`Message`, an
:class:`Exchange` (a user message, the reply, where it came from), a named
:class:`Conversation` of them, and the history rules a turn reads: which earlier exchanges fit
the budget (:meth:`Conversation.window`: :func:`chatmagic.trim.stable_window`'s choice, kept
between turns; before issue 19 :func:`chatmagic.trim.within_budget`). What is sent before a
prompt, and its digest, is :mod:`chatmagic.session.sent`'s. Nothing here imports IPython or
ipywidgets, nor the turn that streams into a conversation (only its type).

History rules:

- A completed reply joins the history together with its user message.
- A failed turn adds nothing (its partial text stays on the turn, for display).
- A reply that called tools is sent with its calls and their answers, as its turn sent them
  (restored ones too; as text to a provider that takes no tools: ``toolhistory``).
- A stopped turn (Stop, Ctrl-C) that had received text joins the history marked
  ``stopped=True``; its partial text is what later turns send as that assistant
  message. A turn stopped before any text adds nothing.
- A turn with a ``key`` (the notebook cell id, a panel's own id) that the
  conversation already holds replaces that exchange in place, and is sent with only
  the messages before it: re-running a cell redoes its exchange instead of adding a
  duplicate, and later exchanges are kept.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._secrets import Table, scrub
from .._text import is_text_key
from ..errors import ConversationBusy
from ..toolstep import ToolStep
from .index import HistoryIndex
from .toolhistory import fragment as _fragment
from .toolhistory import wire_side

if TYPE_CHECKING:  # the type only: a turn imports this module, not the other way
    from .turn import Turn

#: a conversation's follower (a panel): called with ("start" | "update" | "end" | "recorded"
#: | "reset", the conversation, the turn or None)
Listener = Callable[[str, "Conversation", "Turn | None"], None]


@dataclass
class Message:
    role: str
    content: str
    stopped: bool = False
    #: the version of the secrets table (``_secrets.Table``) the content was last scrubbed
    #: with: a message is scrubbed when it enters the history, and again only when the
    #: secrets changed (None: never, e.g. restored from a file)
    scrubbed: int | None = field(default=None, compare=False, repr=False)
    #: (content, the message as :func:`chatmagic.session.sent.fingerprint` writes it), while the content is that
    _fragment: tuple[str, str] | None = field(default=None, init=False, compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def fragment(self) -> str:
        """The message as a fingerprint writes it: made once, not at every turn."""
        cached = self._fragment
        if cached is None or cached[0] is not self.content:
            cached = self._fragment = (self.content, _fragment(self.as_dict()))
        return cached[1]


@dataclass
class Exchange:
    """A user message and the reply it got, with where the reply came from."""

    user: Message
    assistant: Message
    provider: str
    model: str
    key: str | None = None
    first_text_s: float | None = None
    total_s: float | None = None
    finished_at: float = field(default_factory=time.time)
    #: place in the conversation (see Conversation.record)
    seq: int = 0
    #: fingerprint of what was sent before the prompt (system prompt and history): a
    #: replay must have sent the same (see ChatSession.start)
    context_hash: str | None = None
    #: why the reply ended as the server said it ("stop", "length", "content_filter", ...);
    #: None when it did not say (web sites)
    finish_reason: str | None = None
    #: tokens as the server counted them (prompt_tokens, completion_tokens, and
    #: reasoning_tokens when it says); None when it reported none
    usage: dict[str, int] | None = None
    #: what the model thought before answering; shown, saved, never sent back as history
    reasoning: str = ""
    #: a summary's originals (``%chat compact``, :mod:`chatmagic.compact`), oldest first:
    #: this exchange stands for them in the history; () for any other exchange
    summarizes: tuple[Exchange, ...] = ()
    #: the tool calls of the turn, in order (chatmagic.toolstep): shown again, never run again;
    #: later turns send them as the turn did (chatmagic.session.toolhistory)
    tools: list[ToolStep] = field(default_factory=list)
    #: the reply as later turns send it, while the secrets and the reply are the same (sent_side)
    _sent: tuple[Any, ...] | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def stopped(self) -> bool:
        return self.assistant.stopped

    @property
    def cut(self) -> bool:
        """The server ended the reply before it was complete (the token limit, a content filter)."""
        return is_cut(self.finish_reason)

    def identity(self) -> dict[str, Any]:
        """What names this version of the exchange in a record (a summary's list of originals);
        a summary named so carries itself whole: its own record may be gone (its cell re-run)."""
        named = {"key": self.key, "finished_at": self.finished_at, "seq": self.seq}
        return {**named, "summary": self.to_dict()} if self.summarizes else named

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "provider": self.provider,
            "model": self.model,
            "user": self.user.content,
            "assistant": self.assistant.content,
            "stopped": self.stopped,
            "first_text_s": self.first_text_s,
            "total_s": self.total_s,
            "finished_at": self.finished_at,
            "seq": self.seq,
            "context_hash": self.context_hash,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "reasoning": self.reasoning,
            # a summary names its originals (their own records hold them); others say nothing
            **({"summarizes": [ex.identity() for ex in self.summarizes]} if self.summarizes else {}),
            **({"tools": [s.to_dict() for s in self.tools]} if self.tools else {}),
        }


class Conversation:
    """A named history of exchanges with its provider, model and system prompt."""

    def __init__(
        self, name: str, *, provider: str | None = None, model: str | None = None, system: str | None = None
    ) -> None:
        self.name = name
        self.provider = provider
        self.model = model
        self.system = system
        self.exchanges: list[Exchange] = []
        #: changes when the conversation starts afresh: saved records of an older epoch are past
        self.epoch = new_key()
        #: the epoch comes from starting afresh (--new, New chat, reset), not from creation
        self.started_afresh = False
        self.lock = threading.RLock()
        self.active: Turn | None = None
        self._listeners: list[Listener] = []
        #: the sizes, the budget's replay and the keys of the exchanges, kept between turns and
        #: told where the list changes (_changed), so a turn reads only the new exchanges
        self._index = HistoryIndex()
        #: what the last turn sent before its prompt (chatmagic.session.sent keeps it there)
        self.last_sent: Any = None

    # -- reading -------------------------------------------------------------------

    def messages(self, *, before_key: str | None = None) -> list[dict[str, Any]]:
        """System prompt and history as provider messages (up to ``before_key``'s exchange);
        a reply that called tools with its calls and their answers."""
        with self.lock:
            out: list[dict[str, Any]] = []
            if self.system:
                out.append({"role": "system", "content": self.system})
            for ex in self.earlier(before_key):
                out.append(ex.user.as_dict())
                out += wire_side(ex.assistant.content, ex.tools) if ex.tools else [ex.assistant.as_dict()]
            return out

    def earlier(self, before_key: str | None = None) -> list[Exchange]:
        """The exchanges before ``before_key``'s (all of them when None), oldest first."""
        with self.lock:
            at = None if before_key is None else self._position(before_key)
            return self.exchanges[:at]

    def window(self, before_key: str | None, max_chars: int) -> tuple[list[Exchange], int]:
        """The exchanges before ``before_key``'s (all of them when None) that a history budget
        of ``max_chars`` sends (:func:`chatmagic.trim.stable_window`'s choice), and how many
        exchanges are before it: read from what this conversation keeps of its history, so a
        turn measures and steps through only the exchanges added since the last."""
        with self.lock:
            end = None if before_key is None else self._position(before_key)
            end = len(self.exchanges) if end is None else end
            return self.exchanges[self._index.start(self.exchanges, end, max_chars) : end], end

    def used_tokens(self) -> int:
        """The tokens the servers reported for its exchanges, prompts and replies (``%chat usage``)."""
        with self.lock:
            self._index.sync(self.exchanges)
            return self._index.used[-1]

    def _position(self, key: str, *, newest: bool = False) -> int | None:
        """Where the exchange with ``key`` is (the oldest, or the ``newest``, when a merged history
        holds a cell's text twice), or None."""
        with self.lock:
            at = self._index.positions(self.exchanges, key)
            return (at[-1] if newest else at[0]) if at else None

    def keyed(self, key: str) -> Exchange | None:
        """The exchange with ``key`` (the newest of them), or None."""
        with self.lock:
            at = self._position(key, newest=True)
            return None if at is None else self.exchanges[at]

    def _changed(self, index: int) -> None:
        """The exchanges from ``index`` on are not what the index read (replaced, gone, scrubbed
        again): it reads them again when next asked."""
        with self.lock:
            self._index.cut(index)

    def history(self) -> list[Message]:
        with self.lock:
            return [m for ex in self.exchanges for m in (ex.user, ex.assistant)]

    def __len__(self) -> int:
        return len(self.exchanges)

    def __bool__(self) -> bool:
        # a conversation with no exchanges yet still has its provider and settings
        return True

    def replaced_key(self, key: str | None) -> str | None:
        """The key of the exchange a turn with ``key`` would replace, or None (a new one).

        A cell id (``cell:…``) replaces its exchange wherever it is. A key made from
        the text (``text:…``, frontends that send no cell id) replaces only the last
        exchange: the same question asked again later is a new exchange.
        """
        if key is None:
            return None
        with self.lock:
            if is_text_key(key):
                return key if self.exchanges and self.exchanges[-1].key == key else None
            return key if self._position(key) is not None else None

    def __repr__(self) -> str:
        return f"<Conversation {self.name!r}: {len(self)} exchanges, provider={self.provider!r}>"

    # -- changing ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the history (settings stay). Refused while a reply streams into it."""
        with self.lock:
            self._check_idle()
            self.start_afresh()
        self._emit("reset", None)

    def start_afresh(self) -> None:
        """No history, a new epoch (``reset``, a ``--new`` turn); the caller emits "reset"."""
        with self.lock:
            self.exchanges.clear()
            self._changed(0)
            self.epoch = new_key()
            self.started_afresh = True

    def release(self, key: str) -> None:
        """No exchange is ``key``'s any more: the same text asked again is a new exchange, and the
        older one is no longer "this cell"."""
        with self.lock:
            at = self._position(key)
            if at is None:
                return
            for ex in self.exchanges[at:]:
                if ex.key == key:
                    ex.key = None
            self._index.forget(key)

    def _check_idle(self, doing: str = "changed") -> None:
        active = self.active
        if active is not None and not active.done:
            raise ConversationBusy(
                f"A reply is still streaming into the conversation {self.name!r}, so it cannot be "
                f"{doing} now: wait for it, or stop it: %chat stop {self.name} (or Stop in the panel)."
            )

    def record(self, exchange: Exchange) -> None:
        """Add an exchange, or replace the one with the same key in place.

        Each exchange keeps a sequence number, its place in the conversation (a
        replacement takes the one it replaces), so that records saved in different
        outputs of a notebook can be put back in order.
        """
        with self.lock:
            at = None if exchange.key is None else self._position(exchange.key)
            if at is not None:
                exchange.seq = self.exchanges[at].seq
                self.exchanges[at] = exchange
                self._changed(at)
            else:
                exchange.seq = self.exchanges[-1].seq + 1 if self.exchanges else 0
                self.exchanges.append(exchange)
        self._emit("recorded", None)

    def adopt(
        self,
        exchanges: list[Exchange],
        *,
        epoch: str | None = None,
        system: str | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        """Take a whole history at once (what ``%chat restore`` merged); ``None`` keeps a field."""
        with self.lock:
            self.exchanges[:] = exchanges
            self._changed(0)
            if epoch is not None:
                self.epoch = epoch
            if system is not None:
                self.system = system or None
            if provider is not None:
                self.provider = provider or None
            if model is not None:
                self.model = model or None
        self._emit("recorded", None)

    # -- listeners (panels) --------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, kind: str, turn: Turn | None) -> None:
        if not self._listeners:  # no panel follows: nothing to copy or lock (a turn emits often)
            return
        if turn is not None and turn.aside:  # not a message of the conversation: panels show its result
            return
        with self.lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, self, turn)
            except Exception:  # noqa: BLE001 - a broken panel must not break a turn
                pass


def new_key() -> str:
    return uuid.uuid4().hex


def is_cut(finish_reason: str | None) -> bool:
    """A finish reason that means the reply is not whole: anything but "stop" (and the ways
    servers spell it) or a tool call; None (a site that does not say) is not a cut."""
    return finish_reason is not None and finish_reason not in ("stop", "eos", "end_turn", "tool_calls")


def scrubbed(text: str, replaced: list[str], secrets: Table | None) -> str:
    """``text`` without the values of ``secrets`` (None: redaction is off); the names of those
    found are added to ``replaced``. Every scrub of a turn goes through here."""
    return scrub(text, found=secrets.found, replaced=replaced) if secrets is not None else text
