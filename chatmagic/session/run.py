"""Running a turn: the chain of providers, retries with backoff, the provider's stream, and
publishing what streams to the turn's readers.

What is published is what may be shown: every view reads the turn's text and reasoning, so
they hold no secret, not even for a moment (:mod:`chatmagic._livescrub`: scrubbed as it comes,
a possible secret's start held back until decided, at the latest when the model call ends).

Functions that take the :class:`~chatmagic.session.turn.Turn` they run (the session hands
:func:`run` to its loop in :meth:`chatmagic.session.ChatSession.start`); the turn ends through
its own ``_finish``, so what a turn leaves on its conversation is decided in one place. The
provider instances come from the session's pool (:mod:`chatmagic.session.pool`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .._livescrub import LiveScrub
from .._secrets import scrub, scrub_values, table
from ..errors import (
    AllProvidersFailed,
    ChatMagicError,
    ConfigurationError,
    ProviderError,
    TurnStopped,
)
from ..providers import get_provider
from ..providers._wire import Ending, Thinking, ToolCall
from ..toolloop import run_loop
from .toolhistory import plain
from .turn import Turn, is_retryable

if TYPE_CHECKING:  # the type only: the HTTP layer comes with the first provider made
    from ..providers.base import Provider


async def run(turn: Turn) -> None:
    """Run ``turn`` on the loop (the coroutine :meth:`ChatSession.start` hands over) and end it."""
    with turn._cond:
        if not turn._submitted:  # the hand-over was interrupted: start() ended the turn
            return
        turn._task = asyncio.current_task()
    try:
        if turn._stop_requested:
            raise asyncio.CancelledError
        turn._set_state("streaming")
        await _run_chain(turn)
    except asyncio.CancelledError:
        turn._finish("stopped", TurnStopped("Stopped by the user.", partial=turn.text))
    except ChatMagicError as exc:
        partial = getattr(exc, "partial", "")
        if partial and turn.secrets is not None:  # shown like any reply text: without secrets
            partial = scrub(partial, found=table().found)
        if partial and not turn._pieces:
            turn._pieces.append(partial)
            turn.size = len(partial)
        turn._finish("failed", exc)
    except Exception as exc:  # noqa: BLE001 - keep the kernel usable, say what happened
        wrapped = ChatMagicError(
            f"{turn.provider}: unexpected {type(exc).__name__}: {exc}. "
            "Please report this; the conversation is unchanged."
        )
        wrapped.__cause__ = exc
        turn._finish("failed", wrapped)
    else:
        turn._finish("done", None)


async def _run_chain(turn: Turn) -> None:
    """Try each provider in order; retry what is worth retrying, with backoff.

    A provider that fails before any text is retried (rate limits, 5xx, timeouts,
    lost connections: up to ``session.retries`` times, waiting ``Retry-After`` when
    the site says) and then the next one is tried. A failure after text has
    streamed is reported as it is: the reply is never silently restarted elsewhere.
    """
    for name in turn.chain:
        attempt = 0
        while True:
            try:
                await _stream_from(turn, name)
                return
            except (ProviderError, ConfigurationError) as exc:  # e.g. a missing API key
                if isinstance(exc, ProviderError):
                    exc.note_attempts(attempt + 1)
                if turn.size or turn.reasoning_size or turn.steps:  # the reply had begun here (a tool ran)
                    raise
                delay = retry_delay(turn, exc, attempt)
                if delay is None:
                    turn.failures.append((name, exc))
                    break
                attempt += 1
                with turn._cond:
                    turn.retries += 1
                    turn.version += 1
                    turn._cond.notify_all()
                await asyncio.sleep(delay)
    if len(turn.failures) == 1:
        raise turn.failures[0][1]
    raise AllProvidersFailed(turn.failures)


async def _stream_from(turn: Turn, name: str) -> None:
    provider: Any = provider_for(turn, name)
    explicit = dict(turn.options.params or {})
    # the defaults (ChatMagics.options) go where they can; what the cell asked for, always:
    # a provider that takes none refuses it before sending
    params = {**turn.session.default_params, **explicit} if provider.takes_params else explicit
    if turn.secrets is not None and params:  # sent like the messages: without secrets
        found: list[str] = []
        params = scrub_values(params, turn.secrets.found, found)
        if found:
            turn.notes.append(f"redacted from the options: {', '.join(sorted(set(found)))}")
    with turn._cond:
        turn.provider, turn.model = name, turn.models.get(name, turn.model)
        turn.params = params
        turn.finish_reason = turn.usage = None
        turn.version += 1
        turn._cond.notify_all()
    # Chunks are published in batches: what one network read brought (often hundreds of
    # small events) takes one lock, one wake-up and one "update" call, once the stream
    # waits for the next read (call_soon), and whatever is left when it ends or is stopped.
    loop = asyncio.get_running_loop()
    batch: list[str] = []
    first_at: float | None = None
    scheduled = False
    # what the turn holds is what may be shown (every view reads it): scrubbed as it comes,
    # a possible secret's start held back until decided (chatmagic._livescrub)
    live = _Shown(turn)

    def publish() -> None:
        nonlocal scheduled
        scheduled = False
        if not batch:
            return
        piece = live.text("".join(batch))
        batch.clear()
        _append(turn, piece, first_at)

    def think(piece: str) -> None:
        # reasoning is rarer and slower than text: published as it comes
        _think(turn, live.reasoning(piece))

    def settle() -> None:
        """A model call ended (done, failed, stopped): what was held back is decided."""
        publish()
        text, reasoning = live.end()
        _append(turn, text, first_at)
        _think(turn, reasoning)

    def end(ending: Ending) -> None:
        with turn._cond:
            turn.finish_reason = ending.finish_reason
            if ending.usage and turn.usage:  # a later model call of a tool loop: the turn's sum
                turn.usage = {
                    k: turn.usage.get(k, 0) + ending.usage.get(k, 0) for k in {*turn.usage, *ending.usage}
                }
            else:
                turn.usage = dict(ending.usage) if ending.usage else None
            if ending.model and not turn.model:  # the server chose (an empty model)
                turn.model = ending.model
            turn.version += 1
            turn._cond.notify_all()

    # earlier tool calls go as the turn sent them, or as text to a provider that takes no tools
    sent = turn.messages if provider.supports_tools else plain(turn.messages)
    tools = turn.tools
    offered = tools.wire() if tools is not None else ()
    choice = tools.tool_choice if tools is not None else None

    async def reply(messages: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
        """One model call: its text streams into the turn; returns that text and its calls."""
        nonlocal first_at, scheduled
        calls: list[ToolCall] = []
        said: list[str] = []
        parts = provider.parts(
            messages,
            turn.model or None,
            params=params,
            images=turn.options.attachments,
            tools=offered,
            tool_choice=choice,
        )
        try:
            async for part in parts:
                if isinstance(part, ToolCall):
                    calls.append(part)
                    continue
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
                if not said and turn.size and not batch:  # a later model call's text: its own paragraph
                    part = "\n\n" + part
                said.append(part)
                batch.append(part)
                if not scheduled:
                    scheduled = True
                    loop.call_soon(publish)
        finally:
            settle()
        # sent back with the tool results (chatmagic.toolloop): without the secrets it echoed
        return live.sendable("".join(said).lstrip("\n")), calls

    if tools is None:
        await reply(sent)
        return
    # the tool loop (chatmagic.toolloop): each call checked, asked, run, answered; the request
    # grows with each step, turn.messages stays what the turn began with
    note = await run_loop(tools, list(sent), reply, turn.steps, turn.poke, lambda: turn.size)
    if note:
        turn.notes.append(note)


def _append(turn: Turn, piece: str, first_at: float | None) -> None:
    if not piece:
        return
    with turn._cond:
        if turn.first_text_at is None:
            turn.first_text_at = first_at
        turn._pieces.append(piece)
        turn.size += len(piece)
        turn.version += 1
        if turn._change_waiters:
            turn._cond.notify_all()
    turn.conversation._emit("update", turn)


def _think(turn: Turn, piece: str) -> None:
    if not piece:
        return
    with turn._cond:
        turn._thinking.append(piece)
        turn.reasoning_size += len(piece)
        turn.version += 1
        if turn._change_waiters:
            turn._cond.notify_all()
    turn.conversation._emit("update", turn)


class _Shown:
    """The reply's and the reasoning's shown text, made from what one stream sends.

    The secrets are read at the first piece (a proxy's password is known once its connection
    was made); what was redacted goes into the status line when the model call ends.
    """

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self._text: LiveScrub | None = None
        self._reasoning: LiveScrub | None = None

    def _scrubs(self) -> tuple[LiveScrub, LiveScrub] | None:
        if self.turn.secrets is None:  # redaction is off
            return None
        if self._text is None or self._reasoning is None:
            found = table().found
            self._text, self._reasoning = LiveScrub(found), LiveScrub(found)
        return self._text, self._reasoning

    def text(self, piece: str) -> str:
        scrubs = self._scrubs()
        return piece if scrubs is None else scrubs[0].feed(piece)

    def reasoning(self, piece: str) -> str:
        scrubs = self._scrubs()
        return piece if scrubs is None else scrubs[1].feed(piece)

    def sendable(self, text: str) -> str:
        scrubs = self._scrubs() if text else None
        return text if scrubs is None else scrub(text, found=scrubs[0].found)

    def end(self) -> tuple[str, str]:
        if self._text is None or self._reasoning is None:
            return "", ""
        text, reasoning = self._text.end(), self._reasoning.end()
        found = {*self._text.replaced, *self._reasoning.replaced}
        if found:
            self.turn.note_redacted(found)
        return text, reasoning


def retry_delay(turn: Turn, exc: ChatMagicError, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None to move on (the session's
    ``retries``, ``backoff`` and ``max_retry_wait``)."""
    session = turn.session
    if attempt >= session.retries or not is_retryable(exc):
        return None
    wait = getattr(exc, "retry_after", None)
    if wait is None:
        wait = session.backoff * (2**attempt)
    return None if wait > session.max_retry_wait else wait


def provider_for(turn: Turn, name: str) -> Provider:
    """The session's instance of provider ``name`` for this turn's address, proxy and timeout
    (kept across turns: its connections, tokens and nonces are reused)."""
    session, o = turn.session, turn.options
    cls = get_provider(name)
    base_url = o.base_url or session.base_url_for(cls.name)
    proxy = o.proxy if o.proxy is not None else session.default_proxy
    timeout = o.timeout if o.timeout is not None else session.default_timeout
    return session.pool.get(cls, base_url, proxy, timeout)
