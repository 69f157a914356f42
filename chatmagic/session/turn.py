"""A turn: one reply being streamed into a conversation, readable from any thread.

:class:`Turn` holds what the reply is so far (``text``, ``reasoning``, ``state``, timings,
what the server said of its end), lets another thread wait for it or stop it, and ends it in
one place, :meth:`Turn._finish`: the one rule of what a turn leaves on its conversation
(``turn.exchange``; see the history rules in :mod:`chatmagic.session.conversation`). Running
it (the chain, retries, the provider's stream) is :mod:`chatmagic.session.run`'s job; starting
it is the session's (:meth:`chatmagic.session.ChatSession.start`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .._secrets import Table, table
from ..anatomy import Anatomy, with_estimate
from ..errors import (
    AllProvidersFailed,
    BotCheckError,
    ChatMagicError,
    HTTPStatusError,
    ProviderConnectionError,
    ProviderTimeout,
    StreamInterrupted,
    TurnStopped,
)
from ..options import TurnOptions
from ..toolloop import Toolbox
from ..toolstep import ToolStep
from .conversation import Conversation, Exchange, Message, is_cut, scrubbed

if TYPE_CHECKING:  # the type only: the session makes turns, a turn never imports it
    from .chat import ChatSession

#: the status line's words for what was taken out of a reply (Turn.note_redacted)
_REDACTED = "redacted from the reply: "


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
        #: the reply joins no history and changes no setting: whoever asked for it decides what
        #: becomes of ``exchange`` (a compaction's summary, :mod:`chatmagic.compact`)
        self.aside = False
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
        #: the request taken apart and counted before it was sent (chatmagic.preflight)
        self.anatomy: Anatomy | None = None
        self._cond = threading.Condition()
        self.version = 0
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        #: the tools the model may call (None: none offered: chatmagic.toolloop), and each
        #: call made, in order (chatmagic.toolstep: what the cards draw and the exchange keeps)
        self.tools: Toolbox | None = None
        self.steps: list[ToolStep] = []
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
        """Stop the reply now: cancels the task, which closes the HTTP stream; a call waiting
        for the user's answer is answered with its decline (``by="stopped"``) and not run."""
        # under the lock that run.run claims the turn with: either the task exists and is
        # cancelled, or it will see the flag when it begins
        with self._cond:
            self._stop_requested = True
            task = self._task
            orphan = task is None and not self._submitted and self.state == "pending"
        if task is not None:
            self.session.runner.call_soon(task.cancel)
            # after the cancel is queued on the loop: the turn wakes cancelled, never to a "deny"
            # it would go on from; the question is answered (no button nor %chat approve takes it)
            self.session.pauses.cancel([s.ask for s in self.waiting if s.ask])
        elif orphan:
            # never handed to the loop (Ctrl-C inside start()): it will never run, so it
            # ends here, or its conversation would stay busy
            self._finish("stopped", TurnStopped("Stopped by the user.", partial=""))

    #: tool steps changed this many times (poke): a cell that follows the turn wakes on these, not on text
    pokes = 0

    def poke(self) -> None:
        """Something besides the text changed (a tool step): whoever follows the turn looks."""
        with self._cond:
            self.version += 1
            self.pokes += 1
            self._cond.notify_all()
        self.conversation._emit("update", self)

    def wait_poke(self, pokes: int, timeout: float | None = None) -> int:
        """Block until a tool step changed after ``pokes``, or the turn ended; new text does
        not wake it (the streaming cell keeps its pace and runs a queued tool at once)."""
        with self._cond:
            self._cond.wait_for(lambda: self.pokes != pokes or self.done, timeout)
            return self.pokes

    @property
    def waiting(self) -> list[ToolStep]:
        """The calls that wait for the user's answer now."""
        return [s for s in list(self.steps) if s.state == "waiting"]

    def _not_handed_over(self, coro: Coroutine[Any, Any, None] | None) -> None:
        """Ctrl-C (any exception) inside the hand-over to the loop: the turn ends stopped.

        Whether the loop got ``coro`` is unknown. If it has begun, it is cancelled like any
        stopped turn; if not, the turn ends here, and should the loop begin it later, it
        returns at once (see :func:`chatmagic.session.run.run`).
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
            self.steps = [dataclasses.replace(s) for s in saved.tools]  # shown, never run again
            self.reasoning_size = len(saved.reasoning)
            self.finish_reason, self.usage = saved.finish_reason, saved.usage
            self.first_text_at = self.started
            self.finished_at = self.started
            self.exchange = saved
            self.state = "done"
            self.version += 1
            self._cond.notify_all()
        self.conversation._emit("end", self)

    def _scrubbed_reply(self, text: str, secrets: Table | None) -> tuple[str, str]:
        """The reply and reasoning without secrets; what was removed goes into the status line."""
        reasoning = self.reasoning
        if secrets is None:  # redaction is off
            return text, reasoning
        found: list[str] = []
        clean = scrubbed(text, found, secrets)
        clean_reasoning = scrubbed(reasoning, found, secrets) if reasoning else ""
        if found:
            with self._cond:
                if clean != text:
                    self._pieces[:] = [clean]
                    self.size = len(clean)
                    for step in self.steps:  # where each call came, in the text as kept (toolhistory)
                        step.at = len(scrubbed(text[: step.at], [], secrets))
                if clean_reasoning != reasoning:
                    self._thinking[:] = [clean_reasoning]
                    self.reasoning_size = len(clean_reasoning)
                self.version += 1
            self.note_redacted(set(found))
        return clean, clean_reasoning

    def note_redacted(self, found: set[str]) -> None:
        """Say in the status line what was redacted from the reply: one note for the whole
        turn, whatever its model calls (shown scrubbed as they streamed) and its end found."""
        for i, note in enumerate(self.notes):
            if note.startswith(_REDACTED):
                found |= set(note[len(_REDACTED) :].split(", "))
                self.notes[i] = _REDACTED + ", ".join(sorted(found))
                return
        self.notes.append(_REDACTED + ", ".join(sorted(found)))

    def _set_state(self, state: str) -> None:
        with self._cond:
            self.state = state
            self._cond.notify_all()

    def _finish(self, state: str, error: ChatMagicError | None) -> None:
        conv = self.conversation
        text = self.text
        ran = any(s.ms is not None for s in self.steps)  # a tool ran: what it did is kept
        if state == "done" or (state == "stopped" and (text or ran)):
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
                usage=with_estimate(self.usage, self.anatomy),
                reasoning=reasoning,
                tools=list(self.steps),
            )
            if not self.aside:
                with conv.lock:  # a kept turn's options stick (see ChatSession.start)
                    self.session.settle(self)
                conv.record(self.exchange)
                self.session._publish(conv, self.exchange)
        elif state == "failed" and error is not None and _passing(error) and not self.aside:
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


def _version(secrets: Table | None) -> int | None:
    return None if secrets is None else secrets.version
