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

from ._faults import PAGE_FAULTS, UnknownFault, parse_faults
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


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> str:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def api_error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return send_text(status, error_body(message, type_, param, code), JSON_TYPE, headers)


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
        ctx.faults &= PAGE_FAULTS
        refused = await _front_door(ctx, None) or _refuse_key(ctx)
        if refused is not None:
            return refused
        models = ctx.settings.openai_models
        if route == f"{API_ROOT}/models":
            return send_text(200, dumps({"object": "list", "data": [_model(m) for m in models]}), JSON_TYPE)
        name = route[len(f"{API_ROOT}/models/") :]
        if name not in models:
            return _no_model(name)
        return send_text(200, dumps(_model(name)), JSON_TYPE)
    return api_error(404, f"Invalid URL ({method} {route or '/'})")


def _model(name: str) -> dict[str, Any]:
    owner = "openai" if name.startswith(("gpt-", "o1", "o3", "o4")) else "library"
    return {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": owner}


def _no_model(name: str) -> web.Response:
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
    if ctx.has("http500"):
        return api_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
    if ctx.has("http503"):
        return api_error(503, "The engine is currently overloaded, please try again later.", "server_error")
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
        )
    if ctx.has("wrong_content_type"):
        return send_text(200, MAINTENANCE_PAGE, HTML_TYPE)
    return None


def _mask(key: str) -> str:
    return f"{key[:3]}****{key[-4:]}" if len(key) > 10 else f"{key[:3]}****"


def _refuse_key(ctx: Ctx) -> web.Response | None:
    wanted = ctx.settings.openai_api_key
    if wanted is None:
        return None
    auth = ctx.request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    given = given.strip()
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


def _invalid(body: Any) -> web.Response | None:
    """The API's checks of a chat request body, with its messages."""
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


async def _chat(ctx: Ctx, state: State) -> web.StreamResponse:
    raw = await ctx.request.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    ctx.faults |= state.take_injected(OPENAI_SITE)
    try:
        d = directives_of(body)
        if d is not None:
            ctx.faults |= parse_faults(",".join(d.faults))
            ctx.delay = d.delay
    except (ValueError, UnknownFault) as exc:
        return api_error(400, f"Bad sandbox directive: {exc}")
    model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
    refused = await _front_door(ctx, model) or _refuse_key(ctx) or _invalid(body)
    if refused is not None:
        return refused
    assert isinstance(body, dict) and model is not None
    if model not in ctx.settings.openai_models:
        return _no_model(model)

    messages: list[dict[str, Any]] = body["messages"]
    reply, _ = build_reply(OPENAI_SITE, _last_user(messages), len(messages) - 1)
    reply = shape_reply(ctx, reply)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    prompt_tokens = sum(len(_text_of(m.get("content")).split()) + 3 for m in messages)
    pieces = split_pieces(reply)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(pieces),
        "total_tokens": prompt_tokens + len(pieces),
    }
    head = {"id": completion_id, "created": created, "model": model, "system_fingerprint": "fp_sandbox"}

    if not body.get("stream"):
        if ctx.has("service_error"):
            return await send_json(
                ctx,
                {
                    "error": {
                        "message": "The server had an error while processing your request. Sorry about that!",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        obj: dict[str, Any] = {"object": "chat.completion", **head}
        if not ctx.has("missing_field"):
            obj["choices"] = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ]
        obj["usage"] = usage
        return await send_json(ctx, obj)

    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        obj: dict[str, Any] = {
            "object": "chat.completion.chunk",
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if with_usage:
            obj["usage"] = None  # as the API does: only the last chunk carries it
        return "data: " + dumps(obj)

    def piece_line(piece: str) -> str:
        # the empty first piece is the API's opening chunk that names the role
        if not piece:
            return chunk({"role": "assistant", "content": "", "refusal": None})
        return chunk({"content": piece})

    bad = "data: " + dumps({"object": "chat.completion.chunk", **head})
    if ctx.has("service_error"):
        # the API's way of failing mid-stream: an error object instead of the next chunk
        error = {
            "error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        return await stream_events(
            ctx, ["", *pieces[:3]], piece_line, end_lines=["data: " + dumps(error)], bad_event=bad
        )
    end = [chunk({}, "stop")]
    if with_usage:
        end.append(
            "data: " + dumps({"object": "chat.completion.chunk", **head, "choices": [], "usage": usage})
        )
    if not ctx.has("no_end"):
        end.append("data: [DONE]")
    return await stream_events(ctx, ["", *pieces], piece_line, end_lines=end, bad_event=bad)
