"""Conversations and turns: the one session core under ``%%chat`` and the panel.

Nothing here imports IPython, ipywidgets or HTML (an import-linter contract in
pyproject.toml checks it). The package, top to bottom (each module imports only those below
it, but for type names):

- :mod:`~chatmagic.session.chat`: :class:`ChatSession` (settings, conversations,
  prepare/start/send, sinks, list_models, close);
- :mod:`~chatmagic.session.run` (running a turn: chain, retries, the provider's stream),
  :mod:`~chatmagic.session.choice` (:class:`Choice`, the choice rule),
  :mod:`~chatmagic.session.pool` (provider instances, listing models);
- :mod:`~chatmagic.session.turn`: :class:`Turn` (state, text, wait/stop, what a turn leaves);
  :mod:`~chatmagic.session.sent` (what a turn sends before its prompt, its fingerprint);
- :mod:`~chatmagic.session.conversation`: :class:`Message`, :class:`Exchange`,
  :class:`Conversation`, the history budget (the history rules).

The names below are the package's API: import them from ``chatmagic.session``.
"""

from __future__ import annotations

from .._defaults import DEFAULT_CONVERSATION, DEFAULT_MAX_HISTORY_CHARS
from .._text import TEXT_KEY_PREFIX
from ..options import TurnOptions
from ..trim import within_budget
from .chat import STAND_IN_OTHERS, ChatSession
from .choice import Choice, resolve_models
from .conversation import (
    Conversation,
    Exchange,
    Listener,
    Message,
    is_cut,
    new_key,
)
from .pool import LIST_MODELS_TIMEOUT
from .sent import fingerprint
from .turn import Turn, is_retryable

__all__ = [
    "DEFAULT_CONVERSATION",
    "DEFAULT_MAX_HISTORY_CHARS",
    "LIST_MODELS_TIMEOUT",
    "STAND_IN_OTHERS",
    "TEXT_KEY_PREFIX",
    "ChatSession",
    "Choice",
    "Conversation",
    "Exchange",
    "Listener",
    "Message",
    "Turn",
    "TurnOptions",
    "fingerprint",
    "is_cut",
    "is_retryable",
    "new_key",
    "resolve_models",
    "within_budget",
]
