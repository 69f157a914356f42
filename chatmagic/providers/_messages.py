"""The messages a provider is given: checked before anything is sent, and written as one prompt
for the sites that take a single text.

The session sends plain ``{"role", "content"}`` dicts, taken as they are in one pass; anything
else is checked message by message, with a message a user can act on. A provider that takes
tool calls also takes an assistant message carrying its ``tool_calls`` and the ``tool``
messages that answer them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError

__all__ = ["ROLES", "Message", "check_messages", "format_prompt"]

Message = Mapping[str, str]
ROLES = ("system", "user", "assistant")


def check_messages(messages: Iterable[Any], label: str, tools: bool = False) -> list[dict[str, Any]]:
    """Validate the message list early, with a message a user can act on.

    ``tools``: the provider takes tool calls, so an assistant message may carry its
    ``tool_calls`` (and no text) and a ``tool`` message answers one by ``tool_call_id``.
    """
    given = list(messages)
    # what the session sends (plain dicts of a role and a text, nothing else) is taken as it
    # is, in one pass: this runs for every message of every turn
    checked: list[dict[str, Any]] = given
    if not all(
        type(m) is dict and len(m) == 2 and m.get("role") in ROLES and type(m.get("content")) is str
        for m in given
    ):
        checked = []
        for i, msg in enumerate(given):
            role = msg.get("role") if isinstance(msg, Mapping) else None
            content = msg.get("content") if isinstance(msg, Mapping) else None
            if tools and isinstance(msg, Mapping) and _is_tool_message(msg):
                checked.append(dict(msg))
                continue
            if role not in ROLES or not isinstance(content, str):
                raise ConfigurationError(
                    f"{label}: message {i} must be a dict with 'role' (one of {', '.join(ROLES)}) "
                    f"and 'content' (text); got {msg!r:.80}."
                )
            checked.append({"role": role, "content": content})
    if not checked or not any(m["role"] == "user" for m in checked):
        raise ConfigurationError(f"{label}: there is no user message to send.")
    return checked


def _is_tool_message(msg: Mapping[str, Any]) -> bool:
    """A ``tool`` answer, or an assistant message with its calls, in the shape the wire sends."""
    content = msg.get("content")
    if msg.get("role") == "tool":
        return isinstance(msg.get("tool_call_id"), str) and isinstance(content, str)
    calls = msg.get("tool_calls")
    return (
        msg.get("role") == "assistant"
        and isinstance(calls, list)
        and bool(calls)
        and all(isinstance(c, Mapping) and isinstance(c.get("id"), str) for c in calls)
        and (content is None or isinstance(content, str))
    )


def format_prompt(messages: Sequence[Message]) -> str:
    """The conversation as one text (PROTOCOLS.md, "Prompt format").

    One message is its content alone; several become ``Role: content`` lines for the
    non-blank messages, then a last line ``Assistant:``.
    """
    if len(messages) == 1:
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages if m["content"].strip()]
    lines.append("Assistant:")
    return "\n".join(lines)
