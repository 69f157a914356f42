"""Reading the error bodies OpenAI-compatible servers send: their message, their code, and
what a few kinds of refusal look like (an unknown model, a model or server without tools, a
conversation too long for the context).

OpenAI, Ollama and llama.cpp write ``{"error": {"message": ..., "code": ..., "type": ...}}``;
some servers ``{"error": "text"}``; vLLM ``{"object": "error", "message": ...}``; FastAPI
``{"detail": ...}``; llama.cpp fails mid-stream with an ``error: {...}`` line.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ProviderError, ServiceError
from ._family import try_json
from ._status import excerpt

__all__ = [
    "MESSAGE_LIMIT",
    "TOO_LONG",
    "error_field",
    "error_line",
    "is_unknown_model",
    "parse_error",
    "tools_refused",
]

#: how much of a server's own error message is quoted
MESSAGE_LIMIT = 300
#: error codes and types that mean the conversation does not fit the model's context
#: (OpenAI and LiteLLM: code; llama.cpp's llama-server: type)
TOO_LONG = {"context_length_exceeded", "exceed_context_size_error"}


#: how servers say a model is unknown, beside naming it (a 400 may be about anything else)
_UNKNOWN_MODEL = re.compile(
    r"not found|does not exist|doesn't exist|invalid model|unknown model|no such model|not available|not loaded",
    re.IGNORECASE,
)


def is_unknown_model(status: int, code: str | None, message: str, model: str) -> bool:
    """An error answer that says the model asked for is not there.

    OpenAI: ``code: model_not_found``; Ollama, vLLM: a 404 about the model; LiteLLM and
    llama-server's router: a 400 naming the model ("Invalid model name passed in
    model=x", "model 'x' not found").
    """
    if code == "model_not_found":
        return True
    lower = message.lower()
    if status == 404:
        return "model" in lower
    if status != 400 or "model" not in lower:
        return False
    named = re.search(rf"(?<![\w.-]){re.escape(model)}(?![\w-])", message) is not None
    return named and _UNKNOWN_MODEL.search(message) is not None


#: how servers say they take no tools (llama-server without --jinja: a 500; Ollama: a model
#: without tools; vLLM without --enable-auto-tool-choice; OpenAI: a model without tools)
_NO_TOOLS = re.compile(
    r"tools param requires --jinja|does not support tools|enable-auto-tool-choice|tool.{0,20}not supported"
    r"|unsupported parameter.{0,10}'?tools",
    re.IGNORECASE,
)


def tools_refused(label: str, status: int, body: str) -> ProviderError | None:
    """The error for a server that refuses a request because it offers tools, or None.

    Not retried (a ServiceError): the same request meets the same refusal. The conversation
    loses nothing; the user is told how to start the server with tools, or to leave them out.
    """
    message = parse_error(body) or body
    if status < 400 or not _NO_TOOLS.search(message):
        return None
    return ServiceError(
        label,
        f"the server takes no tools (HTTP {status}: {excerpt(message, MESSAGE_LIMIT)}). Start llama-server "
        "with --jinja, vLLM with --enable-auto-tool-choice --tool-call-parser ..., use an Ollama model "
        "that supports tools, or leave --tools out.",
    )


def parse_error(body: Any) -> str | None:
    """The message of an error as OpenAI-compatible servers write them, or None.

    OpenAI, Ollama and llama.cpp: ``{"error": {"message": ...}}``; some servers:
    ``{"error": "text"}``; vLLM: ``{"object": "error", "message": ...}``; FastAPI: ``{"detail": ...}``.
    """
    if isinstance(body, str):
        body = try_json(body)
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    if isinstance(err, str) and err:
        return err
    if body.get("object") == "error" and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body.get("detail"), str):
        return str(body["detail"])
    return None


def error_line(text: str) -> str:
    """The message of an ``error: {...}`` line (the object itself, not wrapped in "error")."""
    obj = try_json(text)
    if obj is None:
        return text
    if isinstance(obj, dict) and isinstance(obj.get("message"), str):
        return str(obj["message"])
    return parse_error(obj) or text


def error_field(body: Any, name: str) -> str | None:
    """``error.code`` or ``error.type`` of a decoded error body, when it is text."""
    err = body.get("error") if isinstance(body, dict) else None
    value = err.get(name) if isinstance(err, dict) else None
    return value if isinstance(value, str) else None
