"""What a reply is made of besides its text, and the one reader of OpenAI's streamed chunks.

A provider yields *parts*: text (``str``), :class:`Thinking` (reasoning the model streams
before, or instead of, its answer: ``delta.reasoning_content``, or ``delta.reasoning`` on
some servers) and one :class:`Ending` (why the reply ended and the tokens it took, as the
server says). ``Provider.stream`` keeps only the text; ``Provider.parts`` gives them all.
When tools were offered, a :class:`ToolCall` comes for each call the model made, once it is
complete (its ``arguments`` arrive in fragments; see :class:`ChunkReader`), before the
:class:`Ending`.

:class:`ChunkReader` reads OpenAI's ``chat.completion.chunk`` objects, for every provider that
receives them (``openai`` and the endpoints, ChatgptFree's AI Power stream), with one
strictness: a chunk must have ``choices`` unless it carries ``usage`` (the usage chunk's
``choices`` may be missing, ``[]`` or ``[{"delta": {}}]``); ``finish_reason`` may be left out
until the last chunk (LiteLLM); ``content: null`` is no text (llama-server's role chunk).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EmptyReplyError, ProtocolError, ProviderError, ServiceError
from ._toolcalls import MAX_ARGUMENTS, ToolCall, assistant_message, read_arguments, tool_message

__all__ = [
    "MAX_ARGUMENTS",
    "ChunkReader",
    "Ending",
    "Part",
    "Thinking",
    "ToolCall",
    "assistant_message",
    "read_arguments",
    "read_usage",
    "sentence",
    "stream_error",
    "tool_message",
]


@dataclass(frozen=True)
class Thinking:
    """Reasoning text the model streamed before (or instead of) its answer."""

    text: str


@dataclass(frozen=True)
class Ending:
    """How the reply ended, as the server said it: its finish reason, token counts, model."""

    finish_reason: str | None = None
    #: prompt_tokens, completion_tokens (and reasoning_tokens, total_tokens) when reported
    usage: Mapping[str, int] | None = None
    #: the model the server says answered (it fills in an empty model)
    model: str | None = None


Part = str | Thinking | Ending | ToolCall


_REASONING_KEYS = ("reasoning_content", "reasoning")
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def sentence(text: str) -> str:
    """``text`` ending in one full stop: a server's message often has its own."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def read_usage(usage: Any) -> dict[str, int] | None:
    """Token counts as chatmagic keeps them, from an OpenAI ``usage`` object (None: none given)."""
    if not isinstance(usage, Mapping):
        return None
    found = {k: usage[k] for k in _USAGE_KEYS if _count(usage.get(k))}
    details = usage.get("completion_tokens_details")
    if isinstance(details, Mapping) and _count(details.get("reasoning_tokens")):
        found["reasoning_tokens"] = details["reasoning_tokens"]
    return found or None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def stream_error(obj: Mapping[str, Any]) -> str | None:
    """The message of an error object sent where a chunk was expected, or None.

    ``{"error": {...}}`` (OpenAI, llama.cpp, LiteLLM), ``{"error": "text"}``, and vLLM's
    ``{"object": "error", "message": ...}``.
    """
    err = obj.get("error")
    if isinstance(err, Mapping):
        message = err.get("message")
        return message if isinstance(message, str) and message else "an error without a message"
    if isinstance(err, str) and err:
        return err
    if obj.get("object") == "error":
        message = obj.get("message")
        return message if isinstance(message, str) and message else "an error without a message"
    return None


class ChunkReader:
    """Reads ``chat.completion.chunk`` objects (and whole ``chat.completion`` answers) into parts.

    ``broken`` words a protocol error and ``service`` an error the server reported, each in
    its provider's terms; what the reply said besides text (finish reason, usage, refusal,
    tool calls) is kept for :meth:`ending` and :meth:`no_text_error`.

    ``offered``: the names of the tools the request offered (None: it offered none). Then
    streamed ``tool_calls`` are put together: each delta names its call by ``index``; the
    ``id`` and ``name`` come once (in the first delta of the call) and ``arguments`` in
    fragments, in later deltas and across reads (vLLM sends a first piece with the name,
    llama.cpp none, Ollama the whole call at once). A call is complete when a call with a
    higher index starts or the choice finishes; it is yielded then, as one
    :class:`ToolCall`. A whole answer's ``message.tool_calls`` are yielded as they are.
    """

    def __init__(
        self,
        label: str,
        broken: Callable[[str], ProtocolError],
        service: Callable[[str], ProviderError],
        offered: Collection[str] | None = None,
    ) -> None:
        self.label = label
        self._broken = broken
        self._service = service
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.model: str | None = None
        self.text_seen = False
        self.thinking_seen = False
        self.refusal: list[str] = []
        self.tools: list[str] = []
        self.offered = None if offered is None else frozenset(offered)
        #: calls being put together, by index: id, name, argument fragments, characters received
        self._building: dict[int, tuple[str, str, list[str], int]] = {}
        self.calls: list[ToolCall] = []

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def feed(self, chunk: Any) -> list[Part]:
        """One streamed chunk's parts (raises on an error object or a chunk of the wrong shape)."""
        if not isinstance(chunk, Mapping):
            raise self._broken("a chunk that is not a JSON object")
        error = stream_error(chunk)
        if error is not None:
            raise self._service(error)
        self._note(chunk)
        choices = chunk.get("choices")
        if choices is None:
            if isinstance(chunk.get("usage"), Mapping):
                return []  # a usage chunk without choices
            raise self._broken("a chunk without 'choices'")
        if not isinstance(choices, list):
            raise self._broken("a chunk whose 'choices' is not a list")
        parts: list[Part] = []
        for choice in choices[:1]:  # n > 1 is never asked for
            if not isinstance(choice, Mapping):
                raise self._broken("a choice that is not a JSON object")
            delta = choice.get("delta")
            if delta is None:
                delta = {}
            if not isinstance(delta, Mapping):
                raise self._broken("a delta that is not a JSON object")
            parts += self._message(delta)
            self._finish(choice)
        if self.finish_reason is not None:
            parts += self.complete_calls()
        return parts

    def read_completion(self, obj: Any) -> list[Part]:
        """A whole ``chat.completion`` object's parts (a server that ignores ``stream``)."""
        if not isinstance(obj, Mapping):
            raise self._broken("an answer that is not a JSON object")
        error = stream_error(obj)
        if error is not None:
            raise self._service(error)
        self._note(obj)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise self._broken("an answer without 'choices'")
        if not choices:
            return []
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            raise self._broken("a choice without its 'message'")
        parts = self._message(message)
        self._finish(choice)
        if self.finish_reason is None:
            self.finish_reason = "stop"  # a whole answer is complete unless it says otherwise
        return parts + self.complete_calls()

    def _note(self, obj: Mapping[str, Any]) -> None:
        if isinstance(obj.get("model"), str) and obj["model"]:
            self.model = obj["model"]
        usage = read_usage(obj.get("usage"))
        if usage:
            self.usage = usage

    def _finish(self, choice: Mapping[str, Any]) -> None:
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason

    def _message(self, message: Mapping[str, Any]) -> list[Part]:
        parts: list[Part] = []
        for key in _REASONING_KEYS:  # servers that send both send the same text twice
            thought = message.get(key)
            if isinstance(thought, str) and thought:
                self.thinking_seen = True
                parts.append(Thinking(thought))
                break
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise self._broken("a message whose content is not text")
        if content:
            self.text_seen = True
            parts.append(content)
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.refusal.append(refusal)
        calls = message.get("tool_calls")
        if self.offered is not None and isinstance(calls, list):
            for position, call in enumerate(calls):
                parts += self._call_piece(position, call)
            return parts
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            if isinstance(name, str) and name and name not in self.tools:
                self.tools.append(name)
            elif not self.tools:
                self.tools.append("")  # a call whose name has not come yet
        return parts

    def _call_piece(self, position: int, call: Any) -> list[Part]:
        """One delta of a call (or a whole call): calls with a lower index are complete."""
        if not isinstance(call, Mapping):
            raise self._broken("a tool call that is not a JSON object")
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position  # a whole message's calls, and servers that leave the index out
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        done: list[Part] = []
        if index not in self._building:
            done = self.complete_calls(below=index)
            self._building[index] = ("", "", [], 0)
        call_id, name, pieces, size = self._building[index]
        if not call_id and isinstance(call.get("id"), str):
            call_id = call["id"]
        if not name and isinstance(function.get("name"), str):
            name = function["name"]
        piece = function.get("arguments")
        if isinstance(piece, (dict, list)):  # a server that sends the arguments decoded
            piece = json.dumps(piece, ensure_ascii=False)
        if isinstance(piece, str) and piece:
            if size < MAX_ARGUMENTS:
                pieces.append(piece[: MAX_ARGUMENTS - size])
            size += len(piece)
        self._building[index] = (call_id, name, pieces, size)
        return done

    def complete_calls(self, below: int | None = None) -> list[Part]:
        """The calls put together so far (with an index below ``below``), now complete."""
        done: list[Part] = []
        for index in sorted(self._building):
            if below is not None and index >= below:
                break
            call_id, name, pieces, size = self._building.pop(index)
            arguments = "".join(pieces)
            call = ToolCall(
                index,
                call_id or f"call_{index}",
                name,
                arguments,
                size,
                self._call_error(name, arguments, size),
            )
            self.calls.append(call)
            done.append(call)
        return done

    def _call_error(self, name: str, arguments: str, size: int) -> str | None:
        if not name:
            return "The model made a tool call without a tool name."
        if self.offered is not None and name not in self.offered:
            offered = ", ".join(sorted(self.offered)) or "none"
            return f"The model called {name!r}, a tool that was not offered (offered: {offered})."
        _, problem = read_arguments(arguments, size)
        return None if problem is None else f"The model's call of {name!r} cannot run: {problem}."

    def ending(self) -> Ending:
        return Ending(self.finish_reason, self.usage, self.model)

    def no_text_error(self) -> ProviderError | None:
        """What to say when the reply had no text, naming why; None: nothing is known."""
        if self.text_seen or self.calls:
            return None
        label = self.label
        if self.refusal:
            return ServiceError(label, sentence(f"the model refused: {''.join(self.refusal).strip()}"))
        if any(self.tools):
            names = ", ".join(repr(n) for n in self.tools if n)
            return EmptyReplyError(
                label,
                f"the model answered only with a call of the tool {names}, and chatmagic runs no tools. "
                "Ask for a text answer, or use the model without tools.",
            )
        if self.finish_reason == "length":
            if self.thinking_seen:
                return EmptyReplyError(
                    label,
                    'the model spent its whole token limit thinking (finish_reason "length") and gave no '
                    "answer. Raise the limit, e.g. -o max_tokens=4000.",
                )
            return EmptyReplyError(
                label,
                'the reply was cut by the token limit before any text (finish_reason "length"). '
                "Raise the limit, e.g. -o max_tokens=4000.",
            )
        if self.finish_reason == "content_filter":
            return EmptyReplyError(
                label,
                'the server\'s content filter stopped the reply before any text (finish_reason "content_filter").',
            )
        if self.thinking_seen:
            return EmptyReplyError(
                label,
                "the model only thought and gave no answer. Try again, or rephrase.",
            )
        return None
