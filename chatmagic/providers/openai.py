"""Any server that speaks OpenAI's chat-completions API: OpenAI, Ollama, llama.cpp, vLLM, LM Studio.

The conversation goes as JSON to ``{base}/chat/completions`` with ``"stream": true``; the
answer is server-sent events ``data: {"object": "chat.completion.chunk", "choices":
[{"delta": {"content": ...}, "finish_reason": ...}]}`` ended by ``data: [DONE]``. A server
that ignores ``stream`` answers one ``chat.completion`` object, which is read too.

``base_url`` is the API root with its version, as every OpenAI client takes it:
``http://localhost:11434/v1`` (Ollama), ``http://localhost:8080/v1`` (llama.cpp),
``http://localhost:8000/v1`` (vLLM), ``http://localhost:1234/v1`` (LM Studio).

The API key is read from an environment variable (``OPENAI_API_KEY`` unless
``api_key_env=`` names another) at each request, sent as ``Authorization: Bearer``,
and never kept in the history or shown in an error.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import __version__
from ..errors import (
    ConfigurationError,
    HTTPStatusError,
    ProtocolError,
    ProviderError,
    ServiceError,
    StreamInterrupted,
)
from ._family import content_type, fields, parse_json
from ._http import AiohttpTransport, retry_after, status_error
from .base import Provider

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["DEFAULT_KEY_ENV", "OpenAICompatible"]

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
OFFICIAL_HOST = "api.openai.com"
#: how long a 404 may spend asking the server for its models before the error is raised
_LIST_MODELS_TIMEOUT = 5.0
_MODELS_SHOWN = 20


class OpenAICompatible(Provider):
    """A server speaking OpenAI's chat-completions API. Any model name it has is valid."""

    name = "openai"
    label = "OpenAI"
    url = "https://api.openai.com/v1"
    api_path = "/chat/completions"
    default_model = "gpt-4o-mini"
    # A few common names for %chat providers; the server's own list is what counts.
    models = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini", "llama3.2", "qwen2.5")
    supports_system_message = True
    supports_message_history = True

    def __init__(self, *, api_key_env: str = DEFAULT_KEY_ENV, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not api_key_env or not isinstance(api_key_env, str):
            raise ConfigurationError(f"{self.label}: api_key_env must name an environment variable.")
        self.api_key_env = api_key_env
        self._http = AiohttpTransport(
            self.label,
            proxy=self.proxy,
            timeout=self.timeout,
            headers={"user-agent": f"chatmagic/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Empty means the default; any other name goes to the server, which has its own list."""
        model = (model or "").strip()
        if not model:
            return cls.default_model
        return cls.model_aliases.get(model, model)

    # -- the key -------------------------------------------------------------------

    @property
    def is_official(self) -> bool:
        return urlsplit(self.site).hostname == OFFICIAL_HOST

    def api_key(self) -> str | None:
        """The key from the environment now (so a key set after the first turn is seen)."""
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            if self.is_official:
                raise ConfigurationError(
                    f"{self.label}: no API key. Set the environment variable {self.api_key_env} "
                    "before starting Jupyter (or in the kernel: os.environ[...] = getpass.getpass()), "
                    "or point --base-url at a server that needs none, e.g. Ollama's "
                    "http://localhost:11434/v1."
                )
            return None
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise ConfigurationError(
                f"{self.label}: the value of {self.api_key_env} is not an API key "
                "(it contains spaces or line breaks)."
            )
        return key

    def _headers(self, key: str | None, accept: str = "application/json") -> dict[str, str]:
        headers = {"accept": accept}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    # -- streaming -----------------------------------------------------------------

    async def _stream(self, messages: list[dict[str, str]], model: str) -> AsyncIterator[str]:
        key = self.api_key()
        body = {"model": model, "messages": messages, "stream": True}
        try:
            async with self._http.request(
                "POST",
                self.endpoint(self.api_path),
                headers=self._headers(key, "text/event-stream"),
                json_body=body,
            ) as answer:
                if answer.status >= 400:
                    text = (await answer.read()).decode("utf-8", "replace")
                    raise await self._status_error(answer.status, answer.headers, text, model, key)
                ctype = content_type(answer)
                if ctype == "application/json":
                    text = (await answer.read()).decode("utf-8", "replace")
                    obj = parse_json(self.label, text, "a chat completion", ctype)
                    reply = self._completion(obj)
                    if reply:
                        yield reply
                else:
                    async for chunk in self._read_events(answer, ctype):
                        yield chunk
        except ProviderError as exc:
            clean = _scrubbed(exc, key)
            if clean is exc:
                raise
            raise clean from exc.__cause__

    async def _read_events(self, answer: Any, ctype: str) -> AsyncIterator[str]:
        leftover: list[str] = []
        events = 0
        finished = False
        async for field in fields(answer):
            if not field.is_data:
                if field.data.startswith("error:"):  # llama.cpp's way of failing mid-stream
                    raise self._service(error_line(field.data[6:].strip()))
                leftover.append(field.data)
                continue
            if field.data == "[DONE]":
                return
            events += 1
            chunk = parse_json(self.label, field.data, "a chat completion chunk", "")
            if not isinstance(chunk, dict):
                raise self._broken("a chunk that is not a JSON object")
            if chunk.get("error"):
                raise self._service(parse_error(chunk) or "an error without a message")
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise self._broken("a chunk without 'choices'")
            for choice in choices[:1]:  # usage chunks have none; n > 1 is never asked for
                if not isinstance(choice, dict):
                    raise self._broken("a choice that is not a JSON object")
                delta = choice.get("delta")
                piece = delta.get("content") if isinstance(delta, dict) else None
                if piece is not None and not isinstance(piece, str):
                    raise self._broken("a delta whose content is not text")
                if piece:
                    yield piece
                if choice.get("finish_reason"):
                    finished = True
        if not events and leftover:
            # the whole answer as one object, sent without an event-stream content type
            obj = parse_json(self.label, "\n".join(leftover), "a chat completion", ctype)
            reply = self._completion(obj)
            if reply:
                yield reply
            return
        if not finished:
            raise StreamInterrupted(
                self.label,
                "the stream ended without its end marker (data: [DONE]): the reply may be "
                "cut short. Run the cell again to retry.",
            )

    def _completion(self, obj: Any) -> str:
        """The text of a whole ``chat.completion`` object."""
        if not isinstance(obj, dict):
            raise self._broken("an answer that is not a JSON object")
        if obj.get("error"):
            raise self._service(parse_error(obj) or "an error without a message")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise self._broken("an answer without 'choices'")
        if not choices:
            return ""
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise self._broken("a choice without its 'message'")
        content = message.get("content")
        if content is None and isinstance(message.get("refusal"), str):
            raise self._service(f"the model refused: {message['refusal']}")
        if content is not None and not isinstance(content, str):
            raise self._broken("a message whose content is not text")
        return content or ""

    # -- models --------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """The model names the server has (``GET {base}/models``), sorted."""
        key = self.api_key()
        try:
            async with self._http.request(
                "GET", self.endpoint("/models"), headers=self._headers(key)
            ) as answer:
                text = (await answer.read()).decode("utf-8", "replace")
                if answer.status >= 400:
                    raise await self._status_error(answer.status, answer.headers, text, None, key)
                obj = parse_json(self.label, text, "the list of models", content_type(answer))
        except ProviderError as exc:
            clean = _scrubbed(exc, key)
            if clean is exc:
                raise
            raise clean from exc.__cause__
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise self._broken("a model list without 'data'")
        return sorted(m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))

    # -- errors --------------------------------------------------------------------

    async def _status_error(
        self, status: int, headers: Any, body: str, model: str | None, key: str | None
    ) -> ProviderError:
        """An HTTP error answer, read as the OpenAI API writes them."""
        message = parse_error(body)
        snippet = message if message is not None else " ".join(body.split())[:120]
        said = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        # a 403 page that is not the API's JSON may be a bot check: status_error knows those
        if status == 401 or (status == 403 and message is not None):
            if key:
                hint = (
                    f"the server refused the API key in {self.api_key_env} ({said}). "
                    "Check the key, or set api_key_env= to read another variable."
                )
            else:
                hint = (
                    f"the server wants an API key ({said}): set {self.api_key_env} in the "
                    "environment the kernel runs in (or api_key_env= to read another variable)."
                )
            return HTTPStatusError(self.label, hint, status=status)
        code = error_code(body)
        if (
            model is not None
            and message is not None
            and (code == "model_not_found" or (status == 404 and "model" in message.lower()))
        ):
            return HTTPStatusError(
                self.label,
                f"the server has no model {model!r} ({said}). {await self._models_hint()}",
                status=status,
            )
        if status == 404:
            return HTTPStatusError(
                self.label,
                f"there is no such endpoint as {self.endpoint(self.api_path if model else '/models')} "
                f"({said}). Check --base-url: OpenAI-compatible servers usually end in /v1 "
                "(Ollama: http://localhost:11434/v1).",
                status=status,
            )
        if message is None:  # not the API's JSON: a proxy, a CDN, a web server
            return status_error(self.label, status, headers, body)
        if status == 429 and code == "insufficient_quota":
            # retrying does not help: the account is out of credit
            return ServiceError(
                self.label, f"the account has no quota left ({said}). Check the plan and billing."
            )
        hint = {
            400: "The server refused the request; check the model and the messages.",
            429: "The server is rate-limiting: wait a little, or use another provider.",
        }.get(status, "The server may be down or overloaded: try again later, or use another provider.")
        return HTTPStatusError(
            self.label, f"the server answered {said}. {hint}", status=status, retry_after=retry_after(headers)
        )

    async def _models_hint(self) -> str:
        """The server's models, if it tells them quickly; else how to list them."""
        try:
            names = await asyncio.wait_for(self.list_models(), _LIST_MODELS_TIMEOUT)
        except (ProviderError, ConfigurationError, asyncio.TimeoutError):
            return f"List its models with: curl {self.endpoint('/models')}"
        if not names:
            return "The server lists no models: load or pull one first (Ollama: ollama pull llama3.2)."
        shown = ", ".join(names[:_MODELS_SHOWN]) + (", …" if len(names) > _MODELS_SHOWN else "")
        return f"Its models: {shown}."

    def _service(self, message: str) -> ServiceError:
        return ServiceError(
            self.label,
            f"the server reported an error: {message}. Try again later, or use another provider.",
        )

    def _broken(self, what: str) -> ProtocolError:
        return ProtocolError(
            self.label,
            f"the answer is not OpenAI's chat-completions protocol: {what}. "
            "Check --base-url (it should be the API root, ending in /v1), or try another provider.",
        )


def parse_error(body: Any) -> str | None:
    """The message of an error as OpenAI-compatible servers write them, or None.

    OpenAI, Ollama and llama.cpp: ``{"error": {"message": ...}}``; some servers:
    ``{"error": "text"}``; vLLM: ``{"object": "error", "message": ...}``; FastAPI: ``{"detail": ...}``.
    """
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
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
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if isinstance(obj, dict) and isinstance(obj.get("message"), str):
        return str(obj["message"])
    return parse_error(obj) or text


def error_code(body: str) -> str | None:
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) else None


def _scrubbed(exc: ProviderError, key: str | None) -> ProviderError:
    """The same error with the key removed from its text (a server may echo it back)."""
    if not key or key not in str(exc):
        return exc
    message = exc.detail.replace(key, "***")
    kwargs: dict[str, Any] = {"partial": exc.partial}
    if isinstance(exc, HTTPStatusError):
        kwargs.update(status=exc.status, retry_after=exc.retry_after)
    return type(exc)(exc.provider, message, **kwargs)
