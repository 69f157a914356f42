"""Conversations and turns: the one session core under ``%%chat`` and the panel.

Nothing here imports IPython or ipywidgets. A :class:`ChatSession` holds named
:class:`Conversation` objects and the provider instances (with their connections and
tokens), and streams a :class:`Turn` on the background loop of :mod:`chatmagic.runner`.

History rules:

- A completed reply joins the history together with its user message.
- A failed turn adds nothing (its partial text stays on the turn, for display).
- A stopped turn (Stop, Ctrl-C) that had received text joins the history marked
  ``stopped=True``; its partial text is what later turns send as that assistant
  message. A turn stopped before any text adds nothing.
- A turn with a ``key`` (the notebook cell id, a panel's own id) that the
  conversation already holds replaces that exchange in place, and is sent with only
  the messages before it: re-running a cell redoes its exchange instead of adding a
  duplicate, and later exchanges are kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._defaults import DEFAULT_CONVERSATION, DEFAULT_MAX_HISTORY_CHARS, TEXT_KEY_PREFIX
from ._secrets import Table, scrub, scrub_values, table
from .errors import (
    AllProvidersFailed,
    BotCheckError,
    ChatMagicError,
    ConfigurationError,
    ConversationBusy,
    HTTPStatusError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamInterrupted,
    TurnStopped,
    UnknownModelError,
)
from .options import DEFAULT_PROVIDER, DEFAULT_TIMEOUT, TurnOptions, parse_chain
from .runner import Runner, get_runner

#: how long %chat models and the panel wait for a server's list
LIST_MODELS_TIMEOUT = 10.0

logger = logging.getLogger(__name__)

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
    #: (content, the message as :func:`fingerprint` writes it), while the content is that
    _fragment: tuple[str, str] | None = field(default=None, init=False, compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def fragment(self) -> str:
        """The message as :func:`fingerprint` writes it: made once, not at every turn."""
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

    @property
    def stopped(self) -> bool:
        return self.assistant.stopped

    @property
    def cut(self) -> bool:
        """The server ended the reply before it was complete (the token limit, a content filter)."""
        return is_cut(self.finish_reason)

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

    # -- reading -------------------------------------------------------------------

    def messages(self, *, before_key: str | None = None) -> list[dict[str, str]]:
        """System prompt and history as provider messages (up to ``before_key``'s exchange)."""
        with self.lock:
            out: list[dict[str, str]] = []
            if self.system:
                out.append({"role": "system", "content": self.system})
            for ex in self.exchanges:
                if before_key is not None and ex.key == before_key:
                    break
                out += [ex.user.as_dict(), ex.assistant.as_dict()]
            return out

    def earlier(self, before_key: str | None = None) -> list[Exchange]:
        """The exchanges before ``before_key``'s (all of them when None), oldest first."""
        with self.lock:
            if before_key is None:
                return list(self.exchanges)
            out = []
            for ex in self.exchanges:
                if before_key is not None and ex.key == before_key:
                    break
                out.append(ex)
            return out

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
            if key.startswith(TEXT_KEY_PREFIX):
                return key if self.exchanges and self.exchanges[-1].key == key else None
            return key if any(ex.key == key for ex in self.exchanges) else None

    def __repr__(self) -> str:
        return f"<Conversation {self.name!r}: {len(self)} exchanges, provider={self.provider!r}>"

    # -- changing ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the history (settings stay). Refused while a reply streams into it."""
        with self.lock:
            self._check_idle()
            self.exchanges.clear()
            self.epoch = new_key()
            self.started_afresh = True
        self._emit("reset", None)

    def _check_idle(self, doing: str = "changed") -> None:
        active = self.active
        if active is not None and not active.done:
            raise ConversationBusy(
                f"A reply is still streaming into the conversation {self.name!r}, so it cannot be "
                f"{doing} now: wait for it, or stop it (Stop in the panel, or interrupt the kernel)."
            )

    def record(self, exchange: Exchange) -> None:
        """Add an exchange, or replace the one with the same key in place.

        Each exchange keeps a sequence number, its place in the conversation (a
        replacement takes the one it replaces), so that records saved in different
        outputs of a notebook can be put back in order.
        """
        with self.lock:
            for i, ex in enumerate(self.exchanges):
                if exchange.key is not None and ex.key == exchange.key:
                    exchange.seq = ex.seq
                    self.exchanges[i] = exchange
                    break
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
        with self.lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, self, turn)
            except Exception:  # noqa: BLE001 - a broken panel must not break a turn
                pass


class Turn:
    """One reply being streamed. Thread-safe to read from any thread.

    ``state`` goes ``pending`` → ``streaming`` → ``done`` | ``stopped`` | ``failed``.
    """

    def __init__(
        self,
        session: ChatSession,
        conversation: Conversation,
        prompt: str,
        options: TurnOptions,
        key: str | None,
        *,
        chain: list[str],
        model: str,
        fresh: bool = False,
    ) -> None:
        self.session = session
        self.conversation = conversation
        self.prompt = prompt
        self.key = key
        #: the conversation starts afresh with this turn (``--new``)
        self.fresh = fresh
        #: providers to try in order (``--provider a,b,c``); ``provider`` is the one answering
        self.chain = chain
        self.provider = self.chain[0]
        self.model = model
        #: the model each provider of the chain is asked for
        self.models: dict[str, str] = {}
        #: (provider, error) for each provider that failed before this turn's text began
        self.failures: list[tuple[str, ChatMagicError]] = []
        #: tries that failed and were repeated (rate limits, server errors, the network)
        self.retries = 0
        #: earlier exchanges sent with this turn, of how many the conversation holds
        self.history_sent = 0
        self.history_total = 0
        #: environment variables whose values were taken out of what is sent
        self.redacted: list[str] = []
        #: the secrets of this turn (read once, in prepare), and the system prompt it kept
        #: from the conversation before scrubbing (start keeps the scrubbed one instead)
        self.secrets: Table | None = None
        self.kept_system: str | None = None
        #: the reply is the saved one, shown again without sending anything
        self.replayed = False
        #: what the status line should also say about this turn (context added, code put
        #: in a new cell, ...), in the words of whoever added it
        self.notes: list[str] = []
        #: the skin puts the reply's code blocks into a new cell (``%%chat -f code``)
        self.code_to_cell = False
        #: fingerprint of the messages before the prompt (see Exchange.context_hash)
        self.context_hash: str | None = None
        self.options = options
        #: what joined the history when the turn ended (None: nothing did)
        self.exchange: Exchange | None = None
        self.state = "pending"
        self.error: ChatMagicError | None = None
        self.started = time.monotonic()
        self.first_text_at: float | None = None
        self.finished_at: float | None = None
        self._pieces: list[str] = []
        #: characters received so far (cheap to read, unlike ``text``)
        self.size = 0
        self._thinking: list[str] = []
        #: characters of reasoning received so far
        self.reasoning_size = 0
        #: why the server ended the reply ("stop", "length", ...; None: it did not say)
        self.finish_reason: str | None = None
        #: tokens the server counted for this reply (see Exchange.usage), or None
        self.usage: dict[str, int] | None = None
        #: request parameters sent with the reply (ChatMagics.options, then -o), once known
        self.params: dict[str, Any] = {}
        self._cond = threading.Condition()
        self.version = 0
        self.messages: list[dict[str, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        #: handed to the loop, which ends the turn (see ChatSession.start)
        self._submitted = False

    # -- reading -------------------------------------------------------------------

    @property
    def text(self) -> str:
        with self._cond:
            if len(self._pieces) > 1:
                self._pieces[:] = ["".join(self._pieces)]
            return self._pieces[0] if self._pieces else ""

    @property
    def reasoning(self) -> str:
        """What the model thought before (or instead of) answering, so far."""
        with self._cond:
            if len(self._thinking) > 1:
                self._thinking[:] = ["".join(self._thinking)]
            return self._thinking[0] if self._thinking else ""

    @property
    def cut(self) -> bool:
        """The server ended the reply before it was complete (see Exchange.cut)."""
        return is_cut(self.finish_reason)

    @property
    def done(self) -> bool:
        return self.state in ("done", "stopped", "failed")

    @property
    def first_text_s(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started

    @property
    def total_s(self) -> float | None:
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started

    #: threads in wait_change: new text wakes the condition only when someone waits for it
    _change_waiters = 0

    def wait_change(self, version: int, timeout: float | None = None) -> int:
        """Block until new text arrived after ``version`` or the turn ended."""
        with self._cond:
            self._change_waiters += 1
            try:
                self._cond.wait_for(lambda: self.version != version or self.done, timeout)
            finally:
                self._change_waiters -= 1
            return self.version

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the turn ended (new text does not wake it); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.done, timeout)

    def result(self, timeout: float | None = None) -> str:
        """Wait for the reply and return its text; raise its error if it failed."""
        if not self.wait(timeout):
            raise TimeoutError("the reply is still streaming")
        if self.error is not None:
            raise self.error
        return self.text

    # -- control -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the reply now: cancels the task, which closes the HTTP stream."""
        # under the lock that _run claims the turn with: either the task exists and is
        # cancelled, or it will see the flag when it begins
        with self._cond:
            self._stop_requested = True
            task = self._task
            orphan = task is None and not self._submitted and self.state == "pending"
        if task is not None:
            self.session.runner.call_soon(task.cancel)
        elif orphan:
            # never handed to the loop (Ctrl-C inside start()): it will never run, so it
            # ends here, or its conversation would stay busy
            self._finish("stopped", TurnStopped("Stopped by the user.", partial=""))

    def _not_handed_over(self, coro: Coroutine[Any, Any, None] | None) -> None:
        """Ctrl-C (any exception) inside the hand-over to the loop: the turn ends stopped.

        Whether the loop got ``coro`` is unknown. If it has begun, it is cancelled like any
        stopped turn; if not, the turn ends here, and should the loop begin it later, it
        returns at once (see :meth:`_run`).
        """
        with self._cond:
            if self._task is None:
                self._submitted = False
        if not self._submitted and coro is not None:
            try:
                coro.close()  # never run: no "coroutine was never awaited" warning
            except ValueError:  # beginning on the loop right now: it sees _submitted and ends
                pass
        self.stop()

    def _replay(self, saved: Exchange) -> None:
        """End at once with a saved reply: nothing is sent, the exchange stays as it was."""
        with self._cond:
            self.replayed = True
            self.notes.insert(0, "replayed: nothing was sent")
            if self.code_to_cell:
                # the saved reply is text from a file (perhaps someone else's notebook): its
                # code goes into no new cell unless the user puts it there
                self.code_to_cell = False
                self.notes.append("its code was not put in a new cell: copy it from the reply to use it")
            self.provider, self.model = saved.provider, saved.model
            self._pieces[:] = [saved.assistant.content]
            self.size = len(saved.assistant.content)
            self._thinking[:] = [saved.reasoning] if saved.reasoning else []
            self.reasoning_size = len(saved.reasoning)
            self.finish_reason, self.usage = saved.finish_reason, saved.usage
            self.first_text_at = self.started
            self.finished_at = self.started
            self.exchange = saved
            self.state = "done"
            self.version += 1
            self._cond.notify_all()
        self.conversation._emit("end", self)

    async def _run(self) -> None:
        with self._cond:
            if not self._submitted:  # the hand-over was interrupted: start() ended the turn
                return
            self._task = asyncio.current_task()
        try:
            if self._stop_requested:
                raise asyncio.CancelledError
            self._set_state("streaming")
            await self._run_chain()
        except asyncio.CancelledError:
            self._finish("stopped", TurnStopped("Stopped by the user.", partial=self.text))
        except ChatMagicError as exc:
            partial = getattr(exc, "partial", "")
            if partial and not self._pieces:
                self._pieces.append(partial)
                self.size = len(partial)
            self._finish("failed", exc)
        except Exception as exc:  # noqa: BLE001 - keep the kernel usable, say what happened
            wrapped = ChatMagicError(
                f"{self.provider}: unexpected {type(exc).__name__}: {exc}. "
                "Please report this; the conversation is unchanged."
            )
            wrapped.__cause__ = exc
            self._finish("failed", wrapped)
        else:
            self._finish("done", None)

    async def _run_chain(self) -> None:
        """Try each provider in order; retry what is worth retrying, with backoff.

        A provider that fails before any text is retried (rate limits, 5xx, timeouts,
        lost connections: up to ``session.retries`` times, waiting ``Retry-After`` when
        the site says) and then the next one is tried. A failure after text has
        streamed is reported as it is: the reply is never silently restarted elsewhere.
        """
        for name in self.chain:
            attempt = 0
            while True:
                try:
                    await self._stream_from(name)
                    return
                except (ProviderError, ConfigurationError) as exc:  # e.g. a missing API key
                    if isinstance(exc, ProviderError):
                        exc.note_attempts(attempt + 1)
                    if self.size or self.reasoning_size:  # the reply had begun here
                        raise
                    delay = self.session.retry_delay(exc, attempt)
                    if delay is None:
                        self.failures.append((name, exc))
                        break
                    attempt += 1
                    with self._cond:
                        self.retries += 1
                        self.version += 1
                        self._cond.notify_all()
                    await asyncio.sleep(delay)
        if len(self.failures) == 1:
            raise self.failures[0][1]
        raise AllProvidersFailed(self.failures)

    async def _stream_from(self, name: str) -> None:
        from .providers._wire import Ending, Thinking

        provider = await self.session._provider_for(self, name)
        explicit = dict(self.options.params or {})
        # the defaults (ChatMagics.options) go where they can; what the cell asked for, always:
        # a provider that takes none refuses it before sending
        params = {**self.session.default_params, **explicit} if provider.takes_params else explicit
        if self.secrets is not None and params:  # sent like the messages: without secrets
            found: list[str] = []
            params = scrub_values(params, self.secrets.found, found)
            if found:
                self.notes.append(f"redacted from the options: {', '.join(sorted(set(found)))}")
        with self._cond:
            self.provider, self.model = name, self.models.get(name, self.model)
            self.params = params
            self.finish_reason = self.usage = None
            self.version += 1
            self._cond.notify_all()
        # Chunks are published in batches: what one network read brought (often hundreds of
        # small events) takes one lock, one wake-up and one "update" call, once the stream
        # waits for the next read (call_soon), and whatever is left when it ends or is stopped.
        loop = asyncio.get_running_loop()
        batch: list[str] = []
        first_at: float | None = None
        scheduled = False

        def publish() -> None:
            nonlocal scheduled
            scheduled = False
            if not batch:
                return
            piece = "".join(batch)
            batch.clear()
            with self._cond:
                if self.first_text_at is None:
                    self.first_text_at = first_at
                self._pieces.append(piece)
                self.size += len(piece)
                self.version += 1
                if self._change_waiters:
                    self._cond.notify_all()
            self.conversation._emit("update", self)

        def think(piece: str) -> None:
            # reasoning is rarer and slower than text: published as it comes
            with self._cond:
                self._thinking.append(piece)
                self.reasoning_size += len(piece)
                self.version += 1
                if self._change_waiters:
                    self._cond.notify_all()
            self.conversation._emit("update", self)

        def end(ending: Ending) -> None:
            with self._cond:
                self.finish_reason = ending.finish_reason
                self.usage = dict(ending.usage) if ending.usage else None
                if ending.model and not self.model:  # the server chose (an empty model)
                    self.model = ending.model
                self.version += 1
                self._cond.notify_all()

        parts = provider.parts(
            self.messages, self.model or None, params=params, images=self.options.attachments
        )
        try:
            async for part in parts:
                if isinstance(part, Thinking):
                    publish()  # what came before it shows first
                    think(part.text)
                    continue
                if isinstance(part, Ending):
                    end(part)
                    continue
                if not part:
                    continue
                if first_at is None:
                    first_at = time.monotonic()
                batch.append(part)
                if not scheduled:
                    scheduled = True
                    loop.call_soon(publish)
        finally:
            publish()

    def _scrubbed_reply(self, text: str, secrets: Table | None) -> tuple[str, str]:
        """The reply and reasoning without secrets; what was removed goes into the status line."""
        reasoning = self.reasoning
        if secrets is None:  # redaction is off
            return text, reasoning
        found: list[str] = []
        clean = scrub(text, found=secrets.found, replaced=found)
        clean_reasoning = scrub(reasoning, found=secrets.found, replaced=found) if reasoning else ""
        if found:
            with self._cond:
                if clean != text:
                    self._pieces[:] = [clean]
                    self.size = len(clean)
                if clean_reasoning != reasoning:
                    self._thinking[:] = [clean_reasoning]
                    self.reasoning_size = len(clean_reasoning)
                self.version += 1
            self.notes.append(f"redacted from the reply: {', '.join(sorted(set(found)))}")
        return clean, clean_reasoning

    def _set_state(self, state: str) -> None:
        with self._cond:
            self.state = state
            self._cond.notify_all()

    def _finish(self, state: str, error: ChatMagicError | None) -> None:
        conv = self.conversation
        text = self.text
        if state == "done" or (state == "stopped" and text):
            # what is kept (history, notebook, log, exports) holds no secret the server echoed;
            # read again: a proxy's password is known once its connection was made
            secrets = table() if self.secrets is not None else None
            text, reasoning = self._scrubbed_reply(text, secrets)
            self.exchange = Exchange(
                user=Message("user", self.prompt, scrubbed=_version(self.secrets)),
                assistant=Message("assistant", text, stopped=state == "stopped", scrubbed=_version(secrets)),
                provider=self.provider,
                model=self.model,
                key=self.key,
                first_text_s=self.first_text_s,
                total_s=time.monotonic() - self.started,
                context_hash=self.context_hash,
                finish_reason=self.finish_reason,
                usage=self.usage,
                reasoning=reasoning,
            )
            with conv.lock:  # a kept turn's options stick (see ChatSession.start)
                self.session.settle(self)
            conv.record(self.exchange)
            self.session._publish(conv, self.exchange)
        elif state == "failed" and error is not None and _passing(error):
            with conv.lock:  # the request was right; the provider was down: the next cell tries it again
                self.session.settle(self)
        with self._cond:
            self.finished_at = time.monotonic()
            self.error = error
            self.state = state
            self._cond.notify_all()
        with conv.lock:
            if conv.active is self:
                conv.active = None
        conv._emit("end", self)


@dataclass(frozen=True)
class Choice:
    """Which providers and models a turn uses (:meth:`ChatSession.choice`)."""

    #: the providers in the order they are tried, by their registered names
    chain: list[str]
    #: the model of each provider of the chain
    models: dict[str, str]

    @property
    def provider(self) -> str:
        """The chain as one name, as a conversation keeps it (``"a,b"``)."""
        return ",".join(self.chain)

    @property
    def model(self) -> str:
        """The model of the first provider ("" when its server decides)."""
        return self.models[self.chain[0]]


#: in ``set_stand_in``'s addresses: the one for every provider not named there
STAND_IN_OTHERS = "*"


class ChatSession:
    """Named conversations, defaults, and live provider instances."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or get_runner()
        self.conversations: dict[str, Conversation] = {}
        self.default_provider = DEFAULT_PROVIDER
        self.default_model: str | None = None
        self.default_system: str | None = None
        self.default_timeout: float | None = DEFAULT_TIMEOUT
        self.default_proxy: str | None = None
        #: provider name -> base URL (mirrors, self-hosted sites): exactly the user's settings
        self.base_urls: dict[str, str] = {}
        #: provider name -> the local stand-in's address, while ``%chat sandbox`` runs
        self.stand_in_urls: dict[str, str] = {}
        #: request parameters sent with every turn to providers that take them (ChatMagics.options)
        self.default_params: dict[str, Any] = {}
        #: retries of a provider before moving on, and the backoff between them
        self.retries = 2
        self.backoff = 0.5
        #: a Retry-After longer than this moves on to the next provider instead
        self.max_retry_wait = 30.0
        #: earlier history sent with a turn, in characters (0: all of it): the newest
        #: exchanges that fit, whole; the conversation itself keeps everything
        self.max_history_chars = DEFAULT_MAX_HISTORY_CHARS
        #: take secret values (see chatmagic._secrets) out of everything sent
        self.redact_secrets = True
        #: a turn whose saved exchange matches shows it again and sends nothing
        self.replay = False
        #: the local log of completed exchanges (chatmagic.log): None for its default place
        #: in the Jupyter data directory, "" for none
        self.log_path: str | None = ""
        #: the notebook the exchanges belong to, where the frontend says (for the log)
        self.notebook: str | None = None
        self._log: Any = None
        #: called with ``(conversation, exchange)`` for every kept exchange (the kernel's
        #: session gets the notebook's log writer, chatmagic._logsink, where it is made)
        self.sinks: list[Callable[[Conversation, Exchange], None]] = []
        self._lock = threading.RLock()
        self._providers: dict[tuple[Any, ...], Any] = {}

    def default_model_for(self, chain: str) -> str:
        if self.default_model and chain == ",".join(parse_chain(self.default_provider)):
            return self.default_model
        return ""

    def base_url_for(self, provider: str) -> str | None:
        """The address ``provider`` talks to: the stand-in's while it runs, else the user's."""
        with self._lock:
            if self.stand_in_urls:
                # any other name is one of the user's endpoints (ChatMagics.endpoints, set
                # before or after the stand-in started): it talks to the stand-in's OpenAI API
                return self.stand_in_urls.get(provider) or self.stand_in_urls.get(STAND_IN_OTHERS)
            return self.base_urls.get(provider)

    def set_stand_in(self, urls: dict[str, str] | None) -> None:
        """Point providers at the local stand-in (``None``: back to the user's addresses).

        ``urls[STAND_IN_OTHERS]`` is the address of every provider not named in ``urls``.
        The stand-in's addresses lie over the user's ``base_urls`` without changing them,
        so stopping it gives back exactly what the user had configured.
        """
        with self._lock:
            self.stand_in_urls = dict(urls or {})
        self.close()  # providers made for the previous addresses are dropped

    # -- conversations -------------------------------------------------------------

    def conversation(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        with self._lock:
            conv = self.conversations.get(name)
            if conv is None:
                conv = self.conversations[name] = Conversation(name, system=self.default_system)
            return conv

    def new_conversation(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        """Start ``name`` afresh with the session's defaults (listeners stay, so panels follow)."""
        conv = self.conversation(name)
        with conv.lock:
            conv._check_idle("started afresh")
            self._reset_settings(conv)
            conv.reset()
        return conv

    def _reset_settings(self, conv: Conversation) -> None:
        conv.system = self.default_system
        conv.provider = conv.model = None

    def __iter__(self) -> Iterator[Conversation]:
        with self._lock:
            return iter(list(self.conversations.values()))

    # -- turns ---------------------------------------------------------------------

    def prepare(
        self,
        prompt: str,
        *,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        key: str | None = None,
        fresh: bool = False,
    ) -> Turn:
        """Check everything that can be checked before sending; returns an unstarted turn.

        The providers and model are :meth:`choice`'s. ``fresh``: the turn starts the
        conversation afresh (``--new``): no history, and the session's defaults instead of
        the conversation's settings. Nothing changes on the conversation until
        :meth:`start`, so a turn that cannot be sent loses nothing.
        """
        from .providers._lines import valid_text

        # what the user typed may hold what UTF-8 cannot (a lone surrogate, from "\ud800" in
        # an interpolated value, a widget, a string built in code): neither the request nor
        # the history may hold it
        prompt = valid_text(prompt)
        if not prompt.strip():
            raise ConfigurationError("The message is empty: write it in the cell body (or the box).")
        options = options or TurnOptions()
        conv = self.conversation(conversation)
        with conv.lock:
            kept_system = self.default_system if fresh else conv.system
        # the secrets once for the whole turn (every message, the reply): reading the
        # environment for each message made a turn's cost grow with the conversation
        secrets = table() if self.redact_secrets else None
        redacted: list[str] = []
        system = valid_text(options.system if options.system is not None else kept_system or "") or None
        # the system prompt is scrubbed like everything sent, and kept as sent
        system = self._redacted(system, redacted, secrets) if system else system
        if options.system and options.system != system:  # start() keeps the clean one
            options = dataclasses.replace(options, system=system)
        chosen = self.choice(conversation, options, fresh=fresh)
        if options.base_url and len(chosen.chain) > 1:
            raise ConfigurationError(
                "--base-url names one site, and this is a chain of providers: set each one's "
                "address with %config ChatMagics.base_urls = {'openai': 'http://…/v1', …}."
            )
        turn = Turn(self, conv, prompt, options, key, chain=chosen.chain, model=chosen.model, fresh=fresh)
        turn.models = chosen.models
        turn.secrets, turn.kept_system, turn.redacted = secrets, kept_system, redacted
        before = None if fresh else conv.replaced_key(key)
        context, turn.history_sent, turn.history_total, turn.context_hash = self._context(
            None if fresh else conv, before, system, turn.redacted, secrets
        )
        prompt = self._redacted(prompt, turn.redacted, secrets)
        turn.prompt = prompt  # the history keeps what was sent
        turn.messages = [*context, {"role": "user", "content": prompt}]
        turn.redacted = sorted(set(turn.redacted))
        return turn

    def choice(
        self,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        *,
        fresh: bool = False,
    ) -> Choice:
        """Which providers and model the next turn of ``conversation`` uses with ``options``.

        The one rule (also in the README), which :meth:`prepare` and the panel both ask:

        - ``options.provider``, else the conversation's provider, else the session default;
        - ``options.model``; else the conversation's model, unless this turn names another
          provider (a model belongs to its provider); else the default model of the session
          when the provider is the default one; else the provider's own default.

        ``fresh``: as for a turn that starts the conversation afresh (the session's
        defaults, not the conversation's). Raises as :meth:`prepare` would: an unknown
        provider, a model that the provider (or no provider of the chain) offers.
        """
        from .providers import get_provider

        options = options or TurnOptions()
        conv = self.conversation(conversation)
        with conv.lock:
            kept_provider = None if fresh else conv.provider
            kept_model = None if fresh else conv.model
        names = options.chain or parse_chain(kept_provider or self.default_provider)
        classes = [get_provider(name) for name in names]
        chain = [cls.name for cls in classes]
        spec = ",".join(chain)
        if options.model:
            model = options.model
        elif kept_model and (kept_provider is None or spec == _as_named(kept_provider)):
            model = kept_model
        else:
            model = self.default_model_for(spec)
        return Choice(chain, resolve_models(classes, model or None))

    @staticmethod
    def _redacted(text: str, replaced: list[str], secrets: Table | None) -> str:
        return scrub(text, found=secrets.found, replaced=replaced) if secrets is not None else text

    def _context(
        self,
        conv: Conversation | None,
        before_key: str | None,
        system: str | None,
        replaced: list[str],
        secrets: Table | None,
    ) -> tuple[list[dict[str, str]], int, int, str]:
        """What is sent before a prompt: the system prompt and the earlier exchanges that fit
        the history budget (newest first, whole), secrets removed; how many of how many; and
        its :func:`fingerprint`.

        A kept message was scrubbed when it entered the history; it is scrubbed again (and
        kept so) only when the secrets changed since: the work of a turn stays the same
        however long the conversation is.
        """
        earlier = [] if conv is None else conv.earlier(before_key)
        sent = within_budget(earlier, self.max_history_chars)
        messages = [{"role": "system", "content": system}] if system else []
        fragments = [_fragment(m) for m in messages]
        version = None if secrets is None else secrets.version
        # hundreds of messages a turn: no method call each where an attribute will do
        for ex in sent:
            for m in (ex.user, ex.assistant):
                if secrets is not None and m.scrubbed != version:
                    m.content = scrub(m.content, found=secrets.found, replaced=replaced)
                    m.scrubbed = version
                content = m.content
                messages.append({"role": m.role, "content": content})
                cached = m._fragment
                fragments.append(cached[1] if cached is not None and cached[0] is content else m.fragment())
        return messages, len(sent), len(earlier), _digest("[" + ", ".join(fragments) + "]")

    def _replayable(self, turn: Turn) -> Exchange | None:
        """The saved exchange ``turn`` would redo, if it would send exactly what that one sent:
        the same cell, prompt as sent, earlier history and system prompt, provider and model.

        A cell id finds its exchange anywhere; so does the text of a cell (frontends that send
        no cell id, nbclient), as long as what came before it is the same.
        """
        conv, key = turn.conversation, turn.key
        with conv.lock:
            saved = next((ex for ex in reversed(conv.exchanges) if key is not None and ex.key == key), None)
        if saved is None or saved.stopped or saved.context_hash is None:
            return None
        if conv.replaced_key(key) is not None:
            context_hash = turn.context_hash
        else:  # a text key further up: what would have been sent before it
            system = turn.messages[0]["content"] if turn.messages[0]["role"] == "system" else None
            context_hash = self._context(conv, key, system, [], turn.secrets)[3]
        same = (
            saved.user.content == turn.prompt
            and saved.context_hash == context_hash
            and saved.provider in turn.models
            and saved.model == turn.models[saved.provider]
        )
        return saved if same else None

    def start(self, turn: Turn) -> Turn:
        """Start a prepared turn; what it chose stays with the conversation once it is kept.

        ``--new`` starts the conversation afresh here. The options stick in :meth:`settle`,
        when the turn's exchange joins the history, or when it failed for a passing reason
        (a server error, a rate limit, the network): a turn refused (a mistyped model, an
        attachment the provider cannot take) leaves the conversation's provider, model and
        system prompt as they were. Refused (:class:`ConversationBusy`) while
        another reply streams into the same conversation.
        """
        conv = turn.conversation
        with conv.lock:
            conv._check_idle("sent another message")
            if turn.fresh:
                self._reset_settings(conv)
                conv.exchanges.clear()
                conv.epoch = new_key()
                conv.started_afresh = True
            saved = self._replayable(turn) if self.replay and not turn.fresh else None
            if saved is None and turn.key is not None and conv.replaced_key(turn.key) is None:
                # the same text asked again: the older exchange is no longer "this cell"
                for ex in conv.exchanges:
                    if ex.key == turn.key:
                        ex.key = None
            if saved is None:
                conv.active = turn
            else:  # a replayed turn is kept as it was
                self.settle(turn)
        if turn.fresh:
            conv._emit("reset", None)
        if saved is not None:
            turn._replay(saved)
            return turn
        coro = None
        try:
            conv._emit("start", turn)
            coro = turn._run()
            turn._submitted = True
            self.runner.submit(coro)
        except BaseException:  # Ctrl-C: the turn must end, or its conversation stays busy
            turn._not_handed_over(coro)
            raise
        return turn

    def settle(self, turn: Turn) -> None:
        """What a kept turn chose becomes its conversation's (called with the conversation locked).

        A provider given for the turn becomes the conversation's (and drops a model of the
        previous provider); a model given becomes its model; a system prompt given becomes
        its system prompt.
        """
        conv, options = turn.conversation, turn.options
        if options.provider is not None:
            spec = ",".join(turn.chain)
            if conv.provider != spec and options.model is None:
                conv.model = None
            conv.provider = spec
        if options.model is not None:
            conv.model = options.model
        if options.system is not None:
            conv.system = options.system or None
        elif conv.system is not None and conv.system == turn.kept_system and turn.messages:
            # kept as it was sent: scrubbed (the notebook's record and the log copy it)
            first = turn.messages[0]
            conv.system = first["content"] if first["role"] == "system" else conv.system

    def send(
        self,
        prompt: str,
        *,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        key: str | None = None,
    ) -> Turn:
        """Prepare and start a turn; returns at once (``turn.result()`` waits)."""
        return self.start(self.prepare(prompt, conversation=conversation, options=options, key=key))

    @property
    def log(self) -> Any:
        """The exchange log (:class:`chatmagic.log.ExchangeLog`), or None when it is off."""
        from .log import ExchangeLog, default_log_path

        with self._lock:
            if self.log_path == "":
                return None
            path = str(self.log_path or default_log_path())
            if self._log is None or str(self._log.path) != path:
                if self._log is not None:
                    self._log.close()
                self._log = ExchangeLog(path)
            return self._log

    def _publish(self, conv: Conversation, exchange: Exchange) -> None:
        """Hand a kept exchange to every sink (the notebook's log writer among them).

        The core never formats a log row: a sink given to it does (as simonw/llm's
        ``after_response``). A failing sink is logged and skipped, never fails the turn.
        """
        for sink in list(self.sinks):
            try:
                sink(conv, exchange)
            except Exception:  # a sink is someone else's code: the turn is already kept
                logger.warning("chatmagic: an exchange sink failed", exc_info=True)

    def list_models(self, provider: str, *, timeout: float = LIST_MODELS_TIMEOUT) -> list[str]:
        """The models ``provider`` offers: an OpenAI-compatible server's own list (``GET /models``,
        at the address this session uses for it: ``--base-url`` settings and the stand-in
        included); a web site's chat, the models chatmagic knows for it. For ``%chat models``
        and the panel.

        Raises the provider's error (connection, key, ...) as one line, or ``ProviderTimeout``.
        """
        from .providers import get_provider
        from .providers.openai import OpenAICompatible

        cls = get_provider(provider)
        if not issubclass(cls, OpenAICompatible):
            return sorted({cls.default_model, *cls.models, *cls.model_aliases})
        base_url = self.base_url_for(cls.name)

        async def ask() -> list[str]:
            async with cls(base_url=base_url, proxy=self.default_proxy, timeout=timeout) as server:
                return await asyncio.wait_for(server.list_models(), timeout)

        try:
            return self.runner.run(ask(), timeout=timeout + 5)
        except (asyncio.TimeoutError, TimeoutError):
            raise ProviderTimeout(
                cls.label, f"the server did not list its models within {timeout:g} s."
            ) from None

    def retry_delay(self, exc: ChatMagicError, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``exc``, or None to move on."""
        if attempt >= self.retries or not is_retryable(exc):
            return None
        wait = getattr(exc, "retry_after", None)
        if wait is None:
            wait = self.backoff * (2**attempt)
        return None if wait > self.max_retry_wait else wait

    async def _provider_for(self, turn: Turn, name: str) -> Any:
        from .providers import get_provider

        cls = get_provider(name)
        o = turn.options
        base_url = o.base_url or self.base_url_for(cls.name)
        proxy = o.proxy if o.proxy is not None else self.default_proxy
        timeout = o.timeout if o.timeout is not None else self.default_timeout
        key = (cls, base_url, proxy, timeout)
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = cls(base_url=base_url, proxy=proxy, timeout=timeout)
        return provider

    def close(self) -> None:
        """Close every provider's connections (on the loop they were made on)."""
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
        if not providers:
            return

        async def close_all() -> None:
            await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)

        try:
            self.runner.run(close_all(), timeout=10)
        except Exception:  # noqa: BLE001 - closing is best effort at shutdown
            pass

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_key() -> str:
    return uuid.uuid4().hex


def is_cut(finish_reason: str | None) -> bool:
    """A finish reason that means the reply is not whole: anything but "stop" (and the ways
    servers spell it) or a tool call; None (a site that does not say) is not a cut."""
    return finish_reason is not None and finish_reason not in ("stop", "eos", "end_turn", "tool_calls")


def is_retryable(exc: ChatMagicError) -> bool:
    """Failures that another try may not meet: rate limits, server errors, the network."""
    if isinstance(exc, (ProviderTimeout, ProviderConnectionError, StreamInterrupted)):
        return True
    return (
        isinstance(exc, HTTPStatusError)
        and not isinstance(exc, BotCheckError)
        and (exc.status == 429 or exc.status >= 500)
    )


def _passing(exc: ChatMagicError) -> bool:
    """A failure that says nothing against what the turn asked for (a server down, a rate
    limit, the network), in every provider of a chain: what it chose may stick. A refusal
    (an unknown model, an attachment the provider cannot take, a bad parameter) may not."""
    if isinstance(exc, AllProvidersFailed):
        return all(_passing(e) for _name, e in exc.failures)
    return is_retryable(exc)


def _as_named(spec: str) -> str:
    """A chain as the registry names it (``" ChatGPTT"`` → ``"chatgptt"``), as typed if malformed."""
    try:
        return ",".join(parse_chain(spec))
    except ConfigurationError:
        return spec


def resolve_models(classes: list[Any], requested: str | None) -> dict[str, str]:
    """The model for each provider of a chain.

    One provider: the requested model must be one of its own. A chain: each provider
    that offers the requested model gets it, the others their default; at least one
    must offer it.
    """
    if len(classes) == 1 or not requested:
        return {cls.name: cls.get_model(requested) for cls in classes}
    offered = []
    for cls in classes:
        try:
            cls.get_model(requested)
        except UnknownModelError:
            continue
        offered.append(cls)  # providers such as openai pass any name on to their server
    if not offered:
        names = ", ".join(cls.name for cls in classes)
        raise UnknownModelError(f"None of {names} offers the model {requested!r}.")
    models = {cls.name: cls.get_model(requested if cls in offered else None) for cls in classes}
    return models


def within_budget(exchanges: list[Exchange], max_chars: int) -> list[Exchange]:
    """The newest exchanges whose text fits in ``max_chars``, whole (0: all of them)."""
    if max_chars <= 0:
        return list(exchanges)
    total = 0
    start = len(exchanges)
    for i in range(len(exchanges) - 1, -1, -1):
        total += len(exchanges[i].user.content) + len(exchanges[i].assistant.content)
        if total > max_chars:
            break
        start = i
    return exchanges[start:]


def fingerprint(messages: list[dict[str, str]]) -> str:
    """A short, stable digest of messages (what a replay must have sent before its prompt)."""
    return _digest(json.dumps(messages, ensure_ascii=False, sort_keys=True))


def _version(secrets: Table | None) -> int | None:
    return None if secrets is None else secrets.version


def _fragment(message: dict[str, str]) -> str:
    """One message as :func:`fingerprint` writes it in its list (so digests can be made of
    kept pieces: ``"[" + ", ".join(pieces) + "]"`` is the same text)."""
    return json.dumps(message, ensure_ascii=False, sort_keys=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
