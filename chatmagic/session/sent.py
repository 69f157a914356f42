"""What a turn sends before its prompt: the system prompt and the earlier exchanges the
history budget keeps, secrets taken out, and their fingerprint.

Core (no IPython, no widgets, no HTML). :func:`sent_before` is what ``ChatSession.prepare``
sends and what a replay compares (``ChatSession._replayable``); the budget's choice is the
conversation's (:meth:`chatmagic.session.conversation.Conversation.window`, kept between
turns), so a turn's work here grows with what it sends (bounded by the budget), not with
the whole conversation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from .._secrets import Table
from .conversation import Conversation, scrubbed
from .toolhistory import fragment as _fragment
from .toolhistory import sent_side

__all__ = ["fingerprint", "sent_before"]


class _Sent(NamedTuple):
    """What a turn sent before its prompt, kept on its conversation: the next turn's begins with
    it (the budget keeps its start between steps), so only the exchanges after it are added."""

    start: int
    system: str | None
    version: int | None
    exchanges: list[Any]
    messages: tuple[dict[str, Any], ...]
    #: the digest of the fragments so far, the closing bracket not yet added; and how many
    hasher: Any
    pieces: int


def sent_before(
    conv: Conversation | None,
    before_key: str | None,
    system: str | None,
    replaced: list[str],
    secrets: Table | None,
    max_chars: int,
) -> tuple[list[dict[str, Any]], int, int, str]:
    """What is sent before a prompt: the system prompt and the earlier exchanges the history
    budget ``max_chars`` keeps (whole, dropped in steps: :func:`chatmagic.trim.stable_window`),
    secrets removed; how many of how many; and its :func:`fingerprint`. A reply that called
    tools goes with its calls and their answers, as its turn sent them
    (:mod:`chatmagic.session.toolhistory`; a provider that takes no tools gets them as text).

    A kept message was scrubbed when it entered the history; it is scrubbed again (and
    kept so) only when the secrets changed since. What the previous turn sent is kept on the
    conversation: when this one begins with it (the same start, system prompt, secrets and
    exchanges), only the exchanges after it are read, so the work of a turn stays the same
    however long the conversation is.
    """
    # dropped in steps at stable boundaries: consecutive requests share their start, so a
    # provider's prompt cache keeps hitting (bench/prefix_stability.py); the conversation
    # keeps the replay that chooses the start, so it is not replayed at every turn
    sent, total = ([], 0) if conv is None else conv.window(before_key, max_chars)
    start = total - len(sent)
    version = None if secrets is None else secrets.version
    clean = None if secrets is None else (lambda text: scrubbed(text, replaced, secrets))
    last: _Sent | None = None if conv is None else conv.last_sent
    if (
        last is not None
        and (last.start, last.system, last.version) == (start, system, version)
        and len(last.exchanges) <= len(sent)
        and last.exchanges == sent[: len(last.exchanges)]  # the same objects: compared in C
    ):
        messages, hasher, pieces = list(last.messages), last.hasher.copy(), last.pieces
        new, fragments = sent[len(last.exchanges) :], []
    else:
        messages = [{"role": "system", "content": system}] if system else []
        hasher, pieces, new = hashlib.sha256(b"["), 0, sent
        fragments = [_fragment(said) for said in messages]
    first = len(sent) - len(new) + start
    rescrubbed = None  # the first exchange whose size the secrets changed
    # hundreds of messages at a step: no method call each where an attribute will do
    for i, ex in enumerate(new, first):
        for m in (ex.user, ex.assistant):
            if secrets is not None and m.scrubbed != version:
                was = m.content
                m.content = scrubbed(was, replaced, secrets)
                m.scrubbed = version
                if rescrubbed is None and len(m.content) != len(was):
                    rescrubbed = i
            if m is ex.assistant and ex.tools:  # its calls and their answers, as its turn sent them
                side, pieces_of = sent_side(ex, version, clean)
                messages += side
                fragments += pieces_of
                continue
            content = m.content
            messages.append({"role": m.role, "content": content})
            cached = m._fragment
            fragments.append(cached[1] if cached is not None and cached[0] is content else m.fragment())
    if fragments:
        joined = ", ".join(fragments)
        hasher.update(((", " if pieces else "") + joined).encode("utf-8", "surrogatepass"))
        pieces += len(fragments)
    if conv is not None:
        if rescrubbed is not None:  # the budget measures it again, as it now is
            conv._changed(rescrubbed)
        conv.last_sent = _Sent(start, system, version, sent, tuple(messages), hasher.copy(), pieces)
    hasher.update(b"]")
    return messages, len(sent), total, hasher.hexdigest()[:32]


def fingerprint(messages: list[dict[str, Any]]) -> str:
    """A short, stable digest of messages (what a replay must have sent before its prompt)."""
    return _digest(json.dumps(messages, ensure_ascii=False, sort_keys=True))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
