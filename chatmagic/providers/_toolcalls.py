"""A tool call as the wire carries it: one complete call, its arguments read, and the
messages that send calls and results back (OpenAI's ``tool_calls`` and ``tool`` role).

:class:`ToolCall` is what ``ChunkReader`` (chatmagic.providers._wire) yields once a call's
streamed fragments are put together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ARGUMENTS", "ToolCall", "assistant_message", "read_arguments", "tool_message"]

#: the most characters of one call's arguments kept: a model that streams without end cannot
#: fill the kernel's memory, and no tool of a notebook takes a megabyte of arguments
MAX_ARGUMENTS = 100_000


@dataclass(frozen=True)
class ToolCall:
    """One call the model made, complete: its position, id, tool name and arguments (JSON text).

    ``arguments`` is kept as the server sent it (at most :data:`MAX_ARGUMENTS` characters;
    ``size`` is how many came), so that a malformed call is shown and answered, never lost.
    ``error`` is one line saying why the call cannot run (a tool that was not offered,
    arguments that are not a JSON object or too long), for the model and the user alike;
    None when it can. The tool's own checks of the arguments come later (chatmagic.toolspec).
    """

    index: int
    id: str
    name: str
    arguments: str
    size: int = 0
    error: str | None = None

    def as_wire(self) -> dict[str, Any]:
        """The call as the assistant message carries it back to the server."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def read_arguments(text: str, size: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """A call's arguments as a dict, or None and one line saying what is wrong with them.

    Empty arguments are ``{}`` (llama.cpp and Ollama send none for a tool without
    parameters); anything else must be one JSON object of at most :data:`MAX_ARGUMENTS`
    characters (``size``: how many came, when more than were kept).
    """
    size = len(text) if size is None else size
    if size > MAX_ARGUMENTS:
        return None, f"its arguments are too long ({size:,} characters; at most {MAX_ARGUMENTS:,})"
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"its arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(value, dict):
        return None, f"its arguments are not a JSON object (got {type(value).__name__})"
    return value, None


def assistant_message(text: str, calls: list[ToolCall]) -> dict[str, Any]:
    """The assistant message that made ``calls``, as the next request carries it.

    ``content`` is the text said with the calls, or null (OpenAI's own form when only calling).
    """
    return {"role": "assistant", "content": text or None, "tool_calls": [c.as_wire() for c in calls]}


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    """The answer to one call (one per ``tool_call_id``; the text is already bounded and scrubbed)."""
    return {"role": "tool", "tool_call_id": call_id, "content": content}
