"""The OpenAI chat-completions API, as OpenAI serves it (Ollama, llama.cpp, vLLM copy it).

Below ``/openai/v1``: ``POST /chat/completions`` (a ``chat.completion`` object, or with
``"stream": true`` ``chat.completion.chunk`` events ended by ``data: [DONE]``),
``GET /models`` and ``GET /models/{id}``. Errors are the API's
``{"error": {"message", "type", "param", "code"}}`` objects. The official ``openai``
client is pointed at it in ``tests/test_openai.py``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from aiohttp import web

from ._faults import MODES, PAGE_FAULTS, UnknownFault, parse_faults
from ._reply import Directives, build_reply, parse_directives, split_pieces
from ._respond import (
    CLOUDFLARE_PAGE,
    HTML_TYPE,
    JSON_TYPE,
    MAINTENANCE_PAGE,
    Ctx,
    dumps,
    send_json,
    send_text,
    stream_events,
)
from ._state import OPENAI_SITE, State
from ._wpaicg import shape_reply

__all__ = ["API_ROOT", "handle"]

#: the part of the path below the site that clients put in their base URL
API_ROOT = "/v1"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_MODEL_CREATED = 1_700_000_000
_KEYS_PAGE = "https://platform.openai.com/account/api-keys"


#: the server modes that change the shape of every answer (see MODES)
DIALECTS = ("litellm", "llama_server", "llama_cpp_python")


def _dialect(ctx: Ctx) -> str | None:
    return next((name for name in DIALECTS if ctx.has(name)), None)


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    *,
    status: int = 400,
    dialect: str | None = None,
) -> str:
    if dialect == "litellm":
        # LiteLLM's ProxyException: every field text, the status as the code
        return dumps(
            {"error": {"message": message, "type": str(type_), "param": str(param), "code": str(status)}}
        )
    if dialect == "llama_server":
        return dumps({"error": {"code": status, "message": message, "type": type_}})
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def api_error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    dialect: str | None = None,
) -> web.Response:
    body = error_body(message, type_, param, code, status=status, dialect=dialect)
    return send_text(status, body, JSON_TYPE, headers)


async def handle(ctx: Ctx, state: State, sub: str) -> web.StreamResponse:
    """Every request below ``/openai`` (``sub`` is the rest of the path)."""
    method = ctx.request.method
    route = sub.rstrip("/")
    if route == f"{API_ROOT}/chat/completions":
        if method != "POST":
            return api_error(405, f"Invalid method for URL ({method} {route})")
        return await _chat(ctx, state)
    if route == f"{API_ROOT}/models" or route.startswith(f"{API_ROOT}/models/"):
        if method not in ("GET", "HEAD"):
            return api_error(405, f"Invalid method for URL ({method} {route})")
        ctx.faults &= PAGE_FAULTS | frozenset(MODES)
        refused = await _front_door(ctx, None) or _refuse_key(ctx)
        if refused is not None:
            return refused
        models = ctx.settings.openai_models
        if route == f"{API_ROOT}/models":
            return send_text(200, dumps({"object": "list", "data": [_model(m) for m in models]}), JSON_TYPE)
        name = route[len(f"{API_ROOT}/models/") :]
        if name not in models:
            return _no_model(ctx, name)
        return send_text(200, dumps(_model(name)), JSON_TYPE)
    return api_error(404, f"Invalid URL ({method} {route or '/'})")


def _model(name: str) -> dict[str, Any]:
    owner = "openai" if name.startswith(("gpt-", "o1", "o3", "o4")) else "library"
    return {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": owner}


def _no_model(ctx: Ctx, name: str) -> web.Response:
    """An unknown model, in the words of the server the request's modes say."""
    dialect = _dialect(ctx)
    if dialect == "litellm":
        message = (
            f"400: {{'error': '/chat/completions: Invalid model name passed in model={name}. "
            "Call `/v1/models` to view available models for your key.'}"
        )
        return api_error(400, message, "None", dialect=dialect)
    if dialect == "llama_server" or ctx.has("model_400"):
        return api_error(400, f"model '{name}' not found", dialect=dialect)
    if ctx.site == "ollama":
        return api_error(404, f'model "{name}" not found, try pulling it first', "api_error")
    return api_error(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


async def _front_door(ctx: Ctx, model: str | None) -> web.StreamResponse | None:
    """Faults that answer before the API's code runs, with the API's own error bodies."""
    if ctx.has("slow_first_byte"):
        await asyncio.sleep(ctx.settings.slow_seconds)
    if ctx.has("cloudflare"):
        return send_text(
            403, CLOUDFLARE_PAGE, HTML_TYPE, {"cf-mitigated": "challenge", "Server": "cloudflare"}
        )
    dialect = _dialect(ctx)
    if ctx.has("http500"):
        return api_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            dialect=dialect,
        )
    if ctx.has("http503"):
        return api_error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            dialect=dialect,
        )
    if ctx.has("http429"):
        name = model or "gpt-4o-mini"
        return api_error(
            429,
            f"Rate limit reached for {name} in organization org-sandbox on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 1s.",
            "requests",
            code="rate_limit_exceeded",
            headers={
                "Retry-After": "1",
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1s",
            },
            dialect=dialect,
        )
    if ctx.has("wrong_content_type"):
        return send_text(200, MAINTENANCE_PAGE, HTML_TYPE)
    return None


def _mask(key: str) -> str:
    return f"{key[:3]}****{key[-4:]}" if len(key) > 10 else f"{key[:3]}****"


def _refuse_key(ctx: Ctx) -> web.Response | None:
    wanted = ctx.settings.openai_api_key
    if wanted is None or ctx.site != OPENAI_SITE:  # the presets' servers want no key
        return None
    auth = ctx.request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    given = given.strip()
    if ctx.has("llama_cpp_python") and not secrets.compare_digest(given.encode(), wanted.encode()):
        # FastAPI's HTTPException, as llama-cpp-python raises it
        return send_text(401, dumps({"detail": "Invalid API Key"}), JSON_TYPE)
    if scheme.lower() != "bearer" or not given:
        return api_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API "
            f"key from {_KEYS_PAGE}.",
        )
    if not secrets.compare_digest(given.encode(), wanted.encode()):
        return api_error(
            401,
            f"Incorrect API key provided: {_mask(given)}. You can find your API key at {_KEYS_PAGE}.",
            code="invalid_api_key",
        )
    return None


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _invalid(body: Any, dialect: str | None = None) -> web.Response | None:
    """The API's checks of a chat request body, with its messages."""
    refused = _invalid_body(body)
    if refused is None or dialect is None:
        return refused
    # the same refusal in the dialect's error shape
    obj = json.loads(refused.body)  # type: ignore[arg-type]
    err = obj["error"]
    return api_error(refused.status, err["message"], err["type"], err["param"], err["code"], dialect=dialect)


def _invalid_body(body: Any) -> web.Response | None:
    if not isinstance(body, dict):
        return api_error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
            "sent was not valid JSON.)",
        )
    if not body.get("model"):
        return api_error(400, "you must provide a model parameter")
    if not isinstance(body["model"], str):
        return api_error(
            400, "Invalid type for 'model': expected a string.", param="model", code="invalid_type"
        )
    if "messages" not in body:
        return api_error(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        return api_error(
            400, "Invalid type for 'messages': expected an array.", param="messages", code="invalid_type"
        )
    if not messages:
        return api_error(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
            "empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            return api_error(
                400, f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type"
            )
        role = m.get("role")
        if role is None:
            return api_error(
                400,
                f"Missing required parameter: '{where}.role'.",
                param=f"{where}.role",
                code="missing_required_parameter",
            )
        if role not in ROLES:
            valid = ", ".join(f"'{r}'" for r in ROLES)
            return api_error(
                400,
                f"Invalid value: {json.dumps(role)}. Supported values are: {valid}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = m.get("content")
        # an assistant message that only calls tools has no content
        if content is None and not (role == "assistant" and ("tool_calls" in m or "function_call" in m)):
            return api_error(
                400,
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
            )
        if content is not None and not isinstance(content, (str, list)):
            return api_error(
                400,
                f"Invalid type for '{where}.content': expected one of a string or array of objects.",
                param=f"{where}.content",
                code="invalid_type",
            )
        if isinstance(content, list):
            refused = _invalid_parts(content, f"{where}.content")
            if refused is not None:
                return refused
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return api_error(
                400, f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type"
            )
        if isinstance(value, int) and value < 1:
            return api_error(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float))
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        return api_error(
            400,
            f"Invalid 'temperature': expected a number from 0 to 2, but got {json.dumps(temperature)} instead.",
            param="temperature",
            code="invalid_value",
        )
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        return api_error(
            400, "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
        )
    if body.get("stream_options") is not None and not body.get("stream"):
        return api_error(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return None


#: what a message's content parts may be, and what each must carry
_PART_TYPES = ("text", "image_url")


def _invalid_parts(parts: list[Any], where: str) -> web.Response | None:
    """The API's checks of a content list: text parts and images (an http(s) or data: URL)."""
    for i, part in enumerate(parts):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _PART_TYPES:
            valid = ", ".join(f"'{t}'" for t in _PART_TYPES)
            return api_error(
                400,
                f"Invalid value: {json.dumps(kind)}. Supported values are: {valid}.",
                param=f"{at}.type",
                code="invalid_value",
            )
        assert isinstance(part, dict)
        if kind == "text" and not isinstance(part.get("text"), str):
            return api_error(
                400,
                f"Missing required parameter: '{at}.text'.",
                param=f"{at}.text",
                code="missing_required_parameter",
            )
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
                return api_error(
                    400,
                    f"Invalid '{at}.image_url.url': expected an http(s) URL or a base64-encoded data URL of an image.",
                    param=f"{at}.image_url.url",
                    code="invalid_image_url",
                )
    return None


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
    if _invalid(body) is not None:
        return None
    return parse_directives(_last_user(body["messages"]))[1]


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
#: the tool the model calls (mode ``tool_calls``)
TOOL_NAME = "lookup"


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
    dialect = _dialect(ctx)
    model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
    refused = await _front_door(ctx, model) or _refuse_key(ctx) or _invalid(body, dialect)
    if refused is not None:
        return refused
    assert isinstance(body, dict) and model is not None
    # llama-cpp-python serves one model, whatever name it is asked for
    if model not in ctx.settings.openai_models and dialect != "llama_cpp_python":
        return _no_model(ctx, model)

    messages: list[dict[str, Any]] = body["messages"]
    last = _last_user(messages)
    reply, d = build_reply(ctx.site, last, len(messages) - 1)
    images = _images_of(messages)
    if images and d.reply is None and d.words is None:
        reply += f"\n\nImages: {images}."  # so a test sees that the model got them
    reply = shape_reply(ctx, reply)
    kind = "tool_calls" if ctx.has("tool_calls") else "refusal" if ctx.has("refusal") else "content"
    if kind == "refusal":
        reply = REFUSAL_TEXT
    elif kind == "tool_calls":
        reply = dumps({"query": parse_directives(last)[0]})
    thinking_on = ctx.has("reasoning") or ctx.has("reasoning_only")
    thinking = split_pieces(reasoning_text(parse_directives(last)[0])) if thinking_on else []
    pieces = [] if ctx.has("reasoning_only") else split_pieces(reply)
    finish = {"tool_calls": "tool_calls"}.get(kind, "stop")
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

    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    prompt_tokens = sum(len(_text_of(m.get("content")).split()) + 3 for m in messages)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(thinking) + len(pieces),
        "total_tokens": prompt_tokens + len(thinking) + len(pieces),
    }
    if thinking:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(thinking)}
    head = {"id": completion_id, "created": created, "model": model, "system_fingerprint": "fp_sandbox"}
    text = "".join(pieces)
    tool_call = {"id": "call_sandbox", "type": "function", "function": {"name": TOOL_NAME, "arguments": ""}}

    if not body.get("stream"):
        if ctx.has("service_error"):
            return await send_json(ctx, _server_error_body())
        obj: dict[str, Any] = {"object": "chat.completion", **head}
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if kind == "refusal":
            message.update(content=None, refusal=text)
        elif kind == "tool_calls":
            message.update(
                content=None, tool_calls=[{**tool_call, "function": {"name": TOOL_NAME, "arguments": text}}]
            )
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
        if dialect == "litellm" and finish_reason is None:
            del choice["finish_reason"]  # LiteLLM leaves it out until the last chunk
        obj: dict[str, Any] = {"object": "chat.completion.chunk", **head, "choices": [choice]}
        if with_usage and dialect is None:
            obj["usage"] = None  # as the API does: only the last chunk carries it
        return obj

    def line(obj: dict[str, Any]) -> str:
        if ctx.has("split_data"):
            # one event, its JSON over several data: lines (a client joins them with LF)
            text = json.dumps(obj, ensure_ascii=False, indent=1)
            return "\n".join(f"data: {part}" for part in text.split("\n"))
        return "data: " + dumps(obj)

    role: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if dialect == "llama_server" or kind != "content":
        role = {"role": "assistant", "content": None}
    events = [line(chunk(role))]
    if dialect == "llama_cpp_python":
        events.append(_PING)
    events += [line(chunk({reasoning_key: p})) for p in thinking]
    if kind == "tool_calls":
        events.append(line(chunk({"tool_calls": [{"index": 0, **tool_call}]})))
        events += [line(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})) for p in pieces]
    else:
        events += [line(chunk({kind: p})) for p in pieces]
    if dialect == "llama_cpp_python" and len(events) > 3:
        events.insert(len(events) - 1, _PING)

    bad = "data: " + dumps({"object": "chat.completion.chunk", **head})
    if ctx.has("service_error") or ctx.has("vllm_error"):
        # failing mid-stream: an error object instead of the next chunk, and no [DONE]
        error = _vllm_error_body() if ctx.has("vllm_error") else _server_error_body()
        return await stream_events(
            ctx, events[:4], _as_is, end_lines=["data: " + dumps(error)], bad_event=bad
        )
    final = chunk({}, finish)
    if dialect == "llama_server":
        final["timings"] = {
            "prompt_n": prompt_tokens,
            "prompt_ms": 12.5,
            "predicted_n": len(thinking) + len(pieces),
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
        elif ctx.has("usage_empty_delta") or dialect == "litellm":
            last_chunk["choices"] = [{"index": 0, "delta": {}}]
        end.append(line(last_chunk))
    if not ctx.has("no_end"):
        end.append("data: [DONE]")
    return await stream_events(ctx, events, _as_is, end_lines=end, bad_event=bad)


#: sse-starlette's keep-alive comment, as llama-cpp-python sends it
_PING = ": ping - 2025-01-01 00:00:00.000000+00:00"


def _as_is(line: str) -> str:
    return line


def _server_error_body() -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def _vllm_error_body() -> dict[str, Any]:
    return {
        "object": "error",
        "message": "Background loop has errored already.",
        "type": "InternalServerError",
        "param": None,
        "code": 500,
    }
