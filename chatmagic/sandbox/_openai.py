"""The OpenAI chat-completions API, as OpenAI serves it (Ollama, llama.cpp, vLLM copy it).

Below ``/openai/v1``: ``POST /chat/completions`` (a ``chat.completion`` object, or with
``"stream": true`` ``chat.completion.chunk`` events ended by ``data: [DONE]``),
``GET /models`` and ``GET /models/{id}``. Errors are the API's
``{"error": {"message", "type", "param", "code"}}`` objects (``_errors``). The official
``openai`` client is pointed at it in ``tests/test_openai.py``.

Jobs kept elsewhere: the body's checks (``_validate``), tool calls (``_tools``), the
tokenizer and template behind ``usage.prompt_tokens`` (``_tokens``), the local servers'
metadata endpoints such as llama.cpp's ``/tokenize`` and ``/props`` (``_meta``).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from . import _meta, _tools
from ._errors import (
    api_error,
    dialect,
    flavour,
    front_door,
    no_model,
    no_tools,
    overflow,
    refuse_key,
    server_error_body,
    vllm_error_body,
    window,
)
from ._faults import MODES, PAGE_FAULTS, UnknownFault, parse_faults
from ._reply import Directives, build_reply, parse_directives, split_pieces
from ._respond import JSON_TYPE, Ctx, dumps, send_json, send_text, stream_events
from ._state import State
from ._tokens import count_prompt
from ._validate import invalid
from ._wpaicg import shape_reply

__all__ = ["API_ROOT", "handle"]

#: the part of the path below the site that clients put in their base URL
API_ROOT = "/v1"


async def handle(ctx: Ctx, state: State, sub: str) -> web.StreamResponse:
    """Every request below ``/openai`` (``sub`` is the rest of the path)."""
    method = ctx.request.method
    route = sub.rstrip("/")
    if route == f"{API_ROOT}/chat/completions":
        if method != "POST":
            return api_error(405, f"Invalid method for URL ({method} {route})")
        return await _chat(ctx, state)
    is_models = route == f"{API_ROOT}/models" or route.startswith(f"{API_ROOT}/models/")
    if is_models or (method, route) in _meta.ROUTES:
        if is_models and method not in ("GET", "HEAD"):
            return api_error(405, f"Invalid method for URL ({method} {route})")
        ctx.faults &= PAGE_FAULTS | frozenset(MODES)
        refused = await front_door(ctx, None) or refuse_key(ctx)
        if refused is not None:
            return refused
        found = await _meta.answer(ctx, route) if not is_models else None
        if found is not None:
            return found
        models = ctx.settings.openai_models
        if route == f"{API_ROOT}/models":
            listed = [_meta.model_entry(ctx, m) for m in models]
            return send_text(200, dumps({"object": "list", "data": listed}), JSON_TYPE)
        if is_models:
            name = route[len(f"{API_ROOT}/models/") :]
            if name not in models:
                return no_model(ctx, name)
            return send_text(200, dumps(_meta.model_entry(ctx, name)), JSON_TYPE)
    return api_error(404, f"Invalid URL ({method} {route or '/'})")


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _images_of(messages: list[dict[str, Any]]) -> int:
    """How many image parts the last user message carries."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
            return 0
    return 0


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text_of(m.get("content"))
    return ""


def directives_of(body: Any) -> Directives | None:
    """Directives of the last user message (None for a body the API would refuse)."""
    if invalid(body) is not None:
        return None
    text, _, _ = _tools.strip_directives(_last_user(body["messages"]))
    return parse_directives(text)[1]


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def reasoning_text(clean: str) -> str:
    """What a reasoning mode thinks before it answers (deterministic, like the reply)."""
    return f"Thinking about: {clean}. The echo is the answer."


#: what the model says when it refuses (mode ``refusal``)
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
#: the tool the model calls (mode ``tool_calls``, which needs no ``tools`` in the request)
TOOL_NAME = "lookup"


def _role_delta(ctx: Ctx, kind: str, calls: bool) -> dict[str, Any]:
    """The first chunk's delta, as each server writes it."""
    server = flavour(ctx)
    if calls and server in ("vllm", "ollama"):
        return {"role": "assistant", "content": ""}
    if dialect(ctx) == "llama_server" or kind != "content" or (calls and server == "llamacpp"):
        return {"role": "assistant", "content": None}
    return {"role": "assistant", "content": "", "refusal": None}


async def _chat(ctx: Ctx, state: State) -> web.StreamResponse:
    raw = await ctx.request.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    ctx.faults |= state.take_injected(ctx.site)
    try:
        d = directives_of(body)
        if d is not None:
            ctx.faults |= parse_faults(",".join(d.faults))
            ctx.delay = d.delay
    except (ValueError, UnknownFault) as exc:
        return api_error(400, f"Bad sandbox directive: {exc}")
    said = dialect(ctx)
    model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
    shape = said or ("vllm" if flavour(ctx) == "vllm" else None)
    refused = await front_door(ctx, model) or refuse_key(ctx) or invalid(body, shape)
    if refused is not None:
        return refused
    assert isinstance(body, dict) and model is not None
    # llama-cpp-python serves one model, whatever name it is asked for
    if model not in ctx.settings.openai_models and said != "llama_cpp_python":
        return no_model(ctx, model)

    if ctx.has("no_tools") and body.get("tools"):
        return no_tools(ctx, model)
    messages: list[dict[str, Any]] = body["messages"]
    # counted as the server's tokenizer counts the templated prompt (see _tokens)
    prompt_tokens = count_prompt(messages, body.get("tools"))
    refused = overflow(ctx, prompt_tokens)
    if refused is not None:
        return refused
    prompt_tokens = min(prompt_tokens, window(ctx))  # Ollama cuts what does not fit
    last, scripted, steps = _tools.strip_directives(_last_user(messages))
    reply, d = build_reply(ctx.site, last, len(messages) - 1)
    clean = parse_directives(last)[0]
    if ctx.has("tool_calls"):
        plan = _tools.Plan([_tools.Call(TOOL_NAME, dumps({"query": clean}))])
    else:
        plan = _tools.plan(ctx.site, body, scripted, steps, clean, d.reply is not None or d.words is not None)
    calls = plan.calls
    if plan.answer is not None:
        reply = plan.answer
    images = _images_of(messages)
    if images and d.reply is None and d.words is None and plan.answer is None:
        reply += f"\n\nImages: {images}."  # so a test sees that the model got them
    reply = shape_reply(ctx, reply)
    kind = "refusal" if ctx.has("refusal") else "content"
    if kind == "refusal":
        reply = REFUSAL_TEXT
    elif calls and d.reply is None:
        reply = ""  # a message that only calls tools
    thinking_on = ctx.has("reasoning") or ctx.has("reasoning_only")
    thinking = split_pieces(reasoning_text(clean)) if thinking_on else []
    pieces = [] if ctx.has("reasoning_only") else split_pieces(reply)
    finish = "tool_calls" if calls else "stop"
    for cut in ("length", "content_filter"):
        if ctx.has(cut):
            pieces, finish = pieces[: max(1, len(pieces) // 2)], cut
    if ctx.has("reasoning_only"):
        finish = "length"
    limit = _max_tokens(body)
    if limit is not None and len(thinking) + len(pieces) > limit:
        # thinking counts against the limit first: a small limit leaves no answer at all
        thinking = thinking[:limit]
        pieces, finish = pieces[: limit - len(thinking)], "length"
    reasoning_key = "reasoning" if ctx.has("reasoning_field") else "reasoning_content"

    server = flavour(ctx)
    ids = [_tools.new_id(server) for _ in calls]
    made = len(thinking) + len(pieces) + sum(len(_tools.fragments(c.arguments)) for c in calls)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": made,
        "total_tokens": prompt_tokens + made,
    }
    if thinking:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(thinking)}
    head = {"id": completion_id, "created": created, "model": model, "system_fingerprint": "fp_sandbox"}
    text = "".join(pieces)

    if not body.get("stream"):
        if ctx.has("service_error"):
            return await send_json(ctx, server_error_body())
        obj: dict[str, Any] = {"object": "chat.completion", **head}
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if kind == "refusal":
            message.update(content=None, refusal=text)
        if calls:
            empty = "" if server == "ollama" else None
            message.update(content=text or empty, tool_calls=_tools.message_calls(calls, ids))
        if thinking:
            message[reasoning_key] = "".join(thinking)
        if not ctx.has("missing_field"):
            obj["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]
        obj["usage"] = usage
        return await send_json(ctx, obj)

    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if said == "litellm" and finish_reason is None:
            del choice["finish_reason"]  # LiteLLM leaves it out until the last chunk
        obj: dict[str, Any] = {"object": "chat.completion.chunk", **head, "choices": [choice]}
        if with_usage and said is None:
            obj["usage"] = None  # as the API does: only the last chunk carries it
        return obj

    def line(obj: dict[str, Any]) -> str:
        if ctx.has("split_data"):
            # one event, its JSON over several data: lines (a client joins them with LF)
            text = json.dumps(obj, ensure_ascii=False, indent=1)
            return "\n".join(f"data: {part}" for part in text.split("\n"))
        return "data: " + dumps(obj)

    role = _role_delta(ctx, kind, bool(calls))
    tool_deltas = _tools.call_deltas(calls, ids, server, ctx.has("tool_args_whole"))
    if tool_deltas and server == "openai" and not pieces and not thinking:
        # OpenAI sends the role and the first call in one chunk
        role = {"role": "assistant", "content": None, **tool_deltas.pop(0), "refusal": None}
    events = [line(chunk(role))]
    if said == "llama_cpp_python":
        events.append(_PING)
    events += [line(chunk({reasoning_key: p})) for p in thinking]
    events += [line(chunk({kind: p})) for p in pieces]
    events += [line(chunk(delta)) for delta in tool_deltas]
    if said == "llama_cpp_python" and len(events) > 3:
        events.insert(len(events) - 1, _PING)

    bad = "data: " + dumps({"object": "chat.completion.chunk", **head})
    if ctx.has("service_error") or ctx.has("vllm_error"):
        # failing mid-stream: an error object instead of the next chunk, and no [DONE]
        error = vllm_error_body() if ctx.has("vllm_error") else server_error_body()
        return await stream_events(
            ctx, events[:4], _as_is, end_lines=["data: " + dumps(error)], bad_event=bad
        )
    final = chunk({}, finish)
    if said == "llama_server":
        final["timings"] = {
            "prompt_n": prompt_tokens,
            "prompt_ms": 12.5,
            "predicted_n": made,
            "predicted_ms": 40.0,
        }
    end = [line(final)]
    if with_usage:
        last_chunk: dict[str, Any] = {
            "object": "chat.completion.chunk",
            **head,
            "choices": [],
            "usage": usage,
        }
        if ctx.has("usage_no_choices"):
            del last_chunk["choices"]
        elif ctx.has("usage_empty_delta") or said == "litellm":
            last_chunk["choices"] = [{"index": 0, "delta": {}}]
        end.append(line(last_chunk))
    if not ctx.has("no_end"):
        end.append("data: [DONE]")
    return await stream_events(ctx, events, _as_is, end_lines=end, bad_event=bad)


#: sse-starlette's keep-alive comment, as llama-cpp-python sends it
_PING = ": ping - 2025-01-01 00:00:00.000000+00:00"


def _as_is(line: str) -> str:
    return line
