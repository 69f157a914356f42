"""How the OpenAI-compatible servers refuse: error bodies, the front door, the key, the window.

Every refusal is in the words and shape of the server the request's site and modes
stand for: OpenAI's ``{"error": {"message", "type", "param", "code"}}``; LiteLLM's
every-field-text variant; llama-server's ``{"error": {"code": 400, "message", "type"}}``
(``format_error_response`` in tools/server/server-common.cpp); vLLM's
``{"error": {"message", "type": "BadRequestError", "param", "code": 400}}``.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from ._respond import CLOUDFLARE_PAGE, HTML_TYPE, JSON_TYPE, MAINTENANCE_PAGE, Ctx, dumps, send_text
from ._state import OPENAI_SITE

__all__ = [
    "DIALECTS",
    "FLAVOURS",
    "api_error",
    "dialect",
    "error_body",
    "flavour",
    "front_door",
    "no_model",
    "no_tools",
    "overflow",
    "refuse_key",
    "server_error_body",
    "vllm_error_body",
    "window",
]

_KEYS_PAGE = "https://platform.openai.com/account/api-keys"

#: the server modes that change the shape of every answer (see MODES)
DIALECTS = ("litellm", "llama_server", "llama_cpp_python")
#: the servers whose tool calls, token endpoints and window errors the stand-in plays
FLAVOURS = ("openai", "llamacpp", "vllm", "ollama")


def dialect(ctx: Ctx) -> str | None:
    return next((name for name in DIALECTS if ctx.has(name)), None)


def flavour(ctx: Ctx) -> str:
    """Which server's tool-call and token shapes: a mode first, else the site's name."""
    if ctx.has("llama_server"):
        return "llamacpp"
    if ctx.has("vllm"):
        return "vllm"
    return ctx.site if ctx.site in FLAVOURS else "openai"


def window(ctx: Ctx) -> int:
    """The context window in tokens: llama.cpp's n_ctx, vLLM's max_model_len, Ollama's context_length."""
    if flavour(ctx) == "openai":
        return ctx.settings.openai_context_window
    return ctx.settings.context_window


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
    if dialect == "vllm":
        # vLLM's ErrorResponse: the exception's class as the type, the status as the code
        kind = "BadRequestError" if status == 400 else str(type_)
        return dumps({"error": {"message": message, "type": kind, "param": param, "code": status}})
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


def overflow(ctx: Ctx, prompt_tokens: int) -> web.Response | None:
    """The server's 400 for a prompt that does not fit its window (None: it fits, or Ollama).

    - llama.cpp: ``exceed_context_size_error`` with both numbers as fields, as llama-server
      b6xxx+ answers (observed bodies: ``{"error":{"code":400,"message":"request (N tokens)
      exceeds the available context size (M tokens), try increasing it","type":
      "exceed_context_size_error","n_prompt_tokens":N,"n_ctx":M}}``); it refuses a prompt
      that leaves no room for one token (N >= M).
    - vLLM: ``_create_tokens_prompt`` in vllm/entrypoints/openai/serving_engine.py raises
      "This model's maximum context length is M tokens. However, your request has N input
      tokens. Please reduce the length of the input messages." (N > M), sent as
      ``BadRequestError``.
    - OpenAI: ``context_length_exceeded`` on ``param: "messages"``.
    - Ollama: no error; it cuts the prompt to ``num_ctx`` and answers (so does the stand-in).
    """
    limit, kind = window(ctx), flavour(ctx)
    if kind == "llamacpp" and prompt_tokens >= limit:
        body = {
            "error": {
                "code": 400,
                "message": f"request ({prompt_tokens} tokens) exceeds the available context size "
                f"({limit} tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt_tokens,
                "n_ctx": limit,
            }
        }
        return send_text(400, dumps(body), JSON_TYPE)
    if kind == "vllm" and prompt_tokens > limit:
        message = (
            f"This model's maximum context length is {limit} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages."
        )
        body = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
        return send_text(400, dumps(body), JSON_TYPE)
    if kind == "openai" and prompt_tokens > limit:
        message = (
            f"This model's maximum context length is {limit} tokens. However, your messages resulted "
            f"in {prompt_tokens} tokens. Please reduce the length of the messages."
        )
        return api_error(400, message, param="messages", code="context_length_exceeded", dialect=dialect(ctx))
    return None


def no_tools(ctx: Ctx, model: str) -> web.Response:
    """A server that takes no tools (mode ``no_tools``), in its words.

    - llama.cpp without ``--jinja``: ``oaicompat_chat_params_parse`` throws
      ``std::runtime_error("tools param requires --jinja flag")``, answered as a 500
      ``server_error`` (observed bodies: ``{"error":{"code":500,"message":"tools param
      requires --jinja flag","type":"server_error"}}``).
    - Ollama, a model whose template has no tools: 400 "registry.ollama.ai/library/<model>
      does not support tools".
    - vLLM without ``--enable-auto-tool-choice``: 400 '"auto" tool choice requires
      --enable-auto-tool-choice and --tool-call-parser to be set'.
    - OpenAI, a model without tools: its ``unsupported_parameter`` refusal.
    """
    kind = flavour(ctx)
    if kind == "llamacpp":
        return api_error(500, "tools param requires --jinja flag", "server_error", dialect="llama_server")
    if kind == "ollama":
        name = model if ":" in model else f"{model}:latest"
        return api_error(400, f"registry.ollama.ai/library/{name} does not support tools", "api_error")
    if kind == "vllm":
        message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
        return api_error(400, message, dialect="vllm")
    return api_error(
        400,
        "Unsupported parameter: 'tools' is not supported with this model.",
        param="tools",
        code="unsupported_parameter",
        dialect=dialect(ctx),
    )


def no_model(ctx: Ctx, name: str) -> web.Response:
    """An unknown model, in the words of the server the request's modes say."""
    d = dialect(ctx)
    if d == "litellm":
        message = (
            f"400: {{'error': '/chat/completions: Invalid model name passed in model={name}. "
            "Call `/v1/models` to view available models for your key.'}"
        )
        return api_error(400, message, "None", dialect=d)
    if d == "llama_server" or ctx.has("model_400"):
        return api_error(400, f"model '{name}' not found", dialect=d)
    if ctx.site == "ollama":
        return api_error(404, f'model "{name}" not found, try pulling it first', "api_error")
    return api_error(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


async def front_door(ctx: Ctx, model: str | None) -> web.StreamResponse | None:
    """Faults that answer before the API's code runs, with the API's own error bodies."""
    if ctx.has("slow_first_byte"):
        await asyncio.sleep(ctx.settings.slow_seconds)
    if ctx.has("cloudflare"):
        return send_text(
            403, CLOUDFLARE_PAGE, HTML_TYPE, {"cf-mitigated": "challenge", "Server": "cloudflare"}
        )
    d = dialect(ctx)
    if ctx.has("http500"):
        return api_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            dialect=d,
        )
    if ctx.has("http503"):
        return api_error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            dialect=d,
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
            dialect=d,
        )
    if ctx.has("wrong_content_type"):
        return send_text(200, MAINTENANCE_PAGE, HTML_TYPE)
    return None


def _mask(key: str) -> str:
    return f"{key[:3]}****{key[-4:]}" if len(key) > 10 else f"{key[:3]}****"


def refuse_key(ctx: Ctx) -> web.Response | None:
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


def server_error_body() -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def vllm_error_body() -> dict[str, Any]:
    return {
        "object": "error",
        "message": "Background loop has errored already.",
        "type": "InternalServerError",
        "param": None,
        "code": 500,
    }
