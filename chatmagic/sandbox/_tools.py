"""Tool calls: what the stand-in's model calls, and how each server streams the calls.

Scripted by the last user message, like every other behaviour of the stand-in:

- ``[[tool:NAME {"arg": 1}]]`` calls ``NAME`` with those arguments; several directives
  are parallel calls. The arguments are JSON, or any other text up to ``]]``, sent as
  it is (a model's malformed arguments). ``NAME`` need not be offered (a model calling a
  tool that was not offered).
- ``[[tool:NAME]]`` calls ``NAME`` with arguments made from its schema.
- without a directive, a request with ``tools`` calls the first offered tool (or the
  one ``tool_choice`` names) with arguments made from its schema, unless ``tool_choice``
  is ``"none"`` or the message asks for a text reply (``[[reply]]``, ``[[words:N]]``).
- ``[[reply]]text`` together with tool directives (put them before it): the message
  carries the text and the calls.
- ``[[steps:N]]``: the model calls again after each tool result, N steps in all
  (default 1), before it answers.

When the messages end with ``tool`` messages and no step is left, the answer is text
that quotes the results (``tool_answer_text``), so a whole loop runs offline.

How each server streams (``FLAVOURS``; chosen by the site, or the modes ``llama_server``
/ ``vllm``; ``tool_args_whole`` sends every call's arguments in one piece):

- OpenAI: ids ``call_`` + 24 letters and digits; the first chunk is the role and the
  first call together, ``{"role": "assistant", "content": null, "tool_calls": [{"index":
  0, "id", "type": "function", "function": {"name", "arguments": ""}}], "refusal":
  null}``, then ``{"tool_calls": [{"index": 0, "function": {"arguments": "<piece>"}}]}``
  (captured gpt-4o streams quoted in client test suites, e.g. aisdk-go and
  openai-dotnet); the message's ``content`` is null.
- llama.cpp (``--jinja``): ids are 32 letters and digits (``gen_tool_call_id`` in
  tools/server/server-common.cpp); a call's first delta has ``index``, ``id``, ``type``
  and ``function.name`` and no ``arguments`` while they are empty
  (``common_chat_msg_diff_to_json_oaicompat``); content null.
- vLLM: ids ``chatcmpl-tool-`` + 16 hex digits (``make_tool_call_id``); the first delta
  ``{"id", "type", "index", "function": {"name", "arguments": "<first piece>"}}``; the role
  chunk's content ``""``, the message's content null.
- Ollama: ids ``call_`` + 8 lower-case letters and digits; each call whole in one delta
  that repeats ``role`` and ``content: ""``; the message's content ``""``.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from ._tokens import pieces

__all__ = ["Call", "Plan", "plan", "tool_answer_text"]

_TOOL = re.compile(r"\[\[tool:\s*([^\s\]]+)\s*")
_STEPS = re.compile(r"\[\[steps:(\d+)\]\]")
_DECODER = json.JSONDecoder()
_ALNUM = string.ascii_letters + string.digits
MAX_STEPS = 1000


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # the text sent, JSON unless a malformed one was scripted


@dataclass
class Plan:
    """What the reply carries besides its text: the calls, or the results to quote."""

    calls: list[Call]
    answer: str | None = None  # the text that quotes tool results, when it is their turn


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def tool_answer_text(site: str, results: list[tuple[str, str]]) -> str:
    """The answer after tool results: each (tool name, result text) quoted on its line."""
    lines = "\n".join(f"- {name}: {result}" for name, result in results)
    return f"[{site}] Tool results:\n{lines}"


def strip_directives(text: str) -> tuple[str, list[Call | str], int]:
    """Remove tool and steps directives (before any ``[[reply]]``).

    Returns the text left, each call (a name alone when its arguments come from the
    schema) and the number of steps. Raises ValueError for a malformed ``[[steps:N]]``.
    """
    head, mark, tail = text.partition("[[reply]]")
    found: list[Call | str] = []
    out: list[str] = []
    pos = 0
    while (m := _TOOL.search(head, pos)) is not None:
        out.append(head[pos : m.start()])
        name, at = m.group(1), m.end()
        if head.startswith("]]", at):
            found.append(name)
            pos = at + 2
            continue
        try:
            value, end = _DECODER.raw_decode(head, at)
            rest = head[end:].lstrip()
            if not rest.startswith("]]"):
                raise ValueError
            found.append(Call(name, json.dumps(value, ensure_ascii=False)))
            pos = len(head) - len(rest) + 2
        except ValueError:
            close = head.find("]]", at)
            close = len(head) if close < 0 else close
            found.append(Call(name, head[at:close].strip()))
            pos = close + 2
    out.append(head[pos:])
    head = "".join(out)
    steps = 1
    if (s := _STEPS.search(head)) is not None:
        steps = min(int(s.group(1)), MAX_STEPS)
        head = _STEPS.sub("", head)
    elif "[[steps:" in head:
        raise ValueError("[[steps:N]] needs a whole number")
    return head + mark + tail, found, steps


def _value(schema: Any, text: str) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(str(kind), text)


def schema_arguments(tool: dict[str, Any] | None, text: str) -> str:
    """Arguments made from a tool's schema: each required property (all, if none is) filled in."""
    function = tool.get("function") if isinstance(tool, dict) else None
    params = function.get("parameters") if isinstance(function, dict) else None
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(props, dict):
        return "{}"
    required = params.get("required") if isinstance(params, dict) else None
    names = [n for n in required if n in props] if isinstance(required, list) and required else list(props)
    return json.dumps({n: _value(props[n], text) for n in names}, ensure_ascii=False)


def _offered(tools: Any) -> dict[str, dict[str, Any]]:
    return {
        t["function"]["name"]: t
        for t in tools or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    }


def _choice(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        return name if isinstance(name, str) else None
    return None


def plan(
    site: str, body: dict[str, Any], scripted: list[Call | str], steps: int, clean: str, text_asked: bool
) -> Plan:
    """The calls this reply makes, or the answer that quotes the tool results it was given."""
    messages: list[dict[str, Any]] = body["messages"]
    tools = _offered(body.get("tools"))
    done = 0  # tool steps since the last user message
    for m in reversed(messages):
        if m.get("role") == "user":
            break
        if m.get("role") == "assistant" and m.get("tool_calls"):
            done += 1
    if messages and messages[-1].get("role") == "tool" and done >= steps:
        names = {
            c.get("id"): c.get("function", {}).get("name", "")
            for m in messages
            if m.get("role") == "assistant" and isinstance(m.get("tool_calls"), list)
            for c in m["tool_calls"]
            if isinstance(c, dict)
        }
        tail: list[tuple[str, str]] = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            tail.append((str(names.get(m.get("tool_call_id"), "")), _text(m.get("content"))))
        return Plan([], tool_answer_text(site, tail[::-1]))
    choice = body.get("tool_choice")
    if not scripted and (not tools or choice == "none" or text_asked):
        return Plan([])
    if not scripted:
        named = _choice(choice)
        scripted = [named if named in tools else next(iter(tools))]
    calls = [c if isinstance(c, Call) else Call(c, schema_arguments(tools.get(c), clean)) for c in scripted]
    return Plan(calls)


def new_id(kind: str) -> str:
    if kind == "llamacpp":
        return "".join(secrets.choice(_ALNUM) for _ in range(32))
    if kind == "vllm":
        return "chatcmpl-tool-" + secrets.token_hex(8)
    if kind == "ollama":
        return "call_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def fragments(arguments: str) -> list[str]:
    """The pieces a model streams a call's arguments in (its tokens)."""
    return pieces(arguments, parse_special=False) or [""]


def call_deltas(calls: list[Call], ids: list[str], kind: str, whole: bool) -> list[dict[str, Any]]:
    """The deltas that stream the calls, in the server's shape (see the module's docstring)."""
    out: list[dict[str, Any]] = []
    for i, (call, call_id) in enumerate(zip(calls, ids, strict=True)):
        parts = [call.arguments] if whole or kind == "ollama" else fragments(call.arguments)
        if kind == "ollama":
            first = {
                "id": call_id,
                "index": i,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            out.append({"role": "assistant", "content": "", "tool_calls": [first]})
            continue
        if kind == "vllm":
            head = {
                "id": call_id,
                "type": "function",
                "index": i,
                "function": {"name": call.name, "arguments": parts[0]},
            }
            parts = parts[1:]
        elif kind == "llamacpp":
            function: dict[str, Any] = {"name": call.name}
            if whole:
                function["arguments"] = parts.pop()
            head = {"index": i, "id": call_id, "type": "function", "function": function}
        else:
            head = {
                "index": i,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": parts.pop() if whole else ""},
            }
        out.append({"tool_calls": [head]})
        out += [{"tool_calls": [{"index": i, "function": {"arguments": p}}]} for p in parts]
    return out


def message_calls(calls: list[Call], ids: list[str]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a whole (non-streamed) answer."""
    return [
        {"id": call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c, call_id in zip(calls, ids, strict=True)
    ]
