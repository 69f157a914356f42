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
from typing import Any

from .._secrets import Table
from .conversation import Conversation, scrubbed
from .toolhistory import fragment as _fragment
from .toolhistory import sent_side

__all__ = ["fingerprint", "sent_before"]


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
    kept so) only when the secrets changed since: the work of a turn stays the same
    however long the conversation is.
    """
    # dropped in steps at stable boundaries: consecutive requests share their start, so a
    # provider's prompt cache keeps hitting (bench/prefix_stability.py); the conversation
    # keeps the replay that chooses the start, so it is not replayed at every turn
    earlier, start = ([], 0) if conv is None else conv.window(before_key, max_chars)
    sent = earlier[start:]
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    fragments = [_fragment(m) for m in messages]
    version = None if secrets is None else secrets.version
    clean = None if secrets is None else (lambda text: scrubbed(text, replaced, secrets))
    rescrubbed = None  # the first exchange whose size the secrets changed
    # hundreds of messages a turn: no method call each where an attribute will do
    for i, ex in enumerate(sent, start):
        for m in (ex.user, ex.assistant):
            if secrets is not None and m.scrubbed != version:
                was = m.content
                m.content = scrubbed(was, replaced, secrets)
                m.scrubbed = version
                if rescrubbed is None and len(m.content) != len(was):
                    rescrubbed = i
            if m is ex.assistant and ex.tools:  # its calls and their answers, as its turn sent them
                side, pieces = sent_side(ex, version, clean)
                messages += side
                fragments += pieces
                continue
            content = m.content
            messages.append({"role": m.role, "content": content})
            cached = m._fragment
            fragments.append(cached[1] if cached is not None and cached[0] is content else m.fragment())
    if conv is not None and rescrubbed is not None:  # the budget measures it again, as it now is
        conv._changed(rescrubbed)
    return messages, len(sent), len(earlier), _digest("[" + ", ".join(fragments) + "]")


def fingerprint(messages: list[dict[str, Any]]) -> str:
    """A short, stable digest of messages (what a replay must have sent before its prompt)."""
    return _digest(json.dumps(messages, ensure_ascii=False, sort_keys=True))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
