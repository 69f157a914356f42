"""Defaults the magics declare at load and the session uses: here, so that loading the
extension need not import the session (asyncio and the rest of the core)."""

from __future__ import annotations

DEFAULT_CONVERSATION = "default"
#: the default budget of earlier history sent with a turn (about 10,000 tokens)
DEFAULT_MAX_HISTORY_CHARS = 40_000
#: model calls a turn that uses tools may make (``ChatMagics.max_tool_steps``)
DEFAULT_MAX_TOOL_STEPS = 8
