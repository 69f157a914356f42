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
and never kept in the history or shown in an error: the variable is registered as a
secret, so every error message, made anywhere, is scrubbed of its value and of any
piece of it (a server may echo the key back, and a message may be cut inside it).

A ``base_url`` may carry a user and password (``http://user:password@host/v1``, a server
behind Basic auth): they are taken out of the address and sent as Basic auth (aiohttp
refuses a URL with credentials beside an ``Authorization`` header); a key as well is
refused, since the server can take only one ``Authorization``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from .._secrets import register_credentials, register_key_env, strip_userinfo
from .._version import __version__
from ..errors import (
    ConfigurationError,
    HTTPStatusError,
    ProtocolError,
    ProviderError,
    ServiceError,
    StreamInterrupted,
)
from ._family import content_type, event_objects, parse_json, try_json
from ._http import ProxySpec
from ._lines import sse_events
from ._openai_errors import (
    MESSAGE_LIMIT,
    TOO_LONG,
    error_field,
    error_line,
    is_unknown_model,
    parse_error,
    tools_refused,
)
from ._status import TOO_LONG_HINT, body_summary, excerpt, retry_after, status_error
from ._wire import ChunkReader, Part, sentence
from .base import HTTPProvider

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

    from ..attachments import Attachment

__all__ = ["DEFAULT_KEY_ENV", "OpenAICompatible"]

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
OFFICIAL_HOST = "api.openai.com"
#: how long a 404 may spend asking the server for its models before the error is raised
_LIST_MODELS_TIMEOUT = 5.0
_MODELS_SHOWN = 20


class OpenAICompatible(HTTPProvider):
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
    takes_params = True
    takes_images = True
    supports_tools = True
    # servers that stream with another content type (or none) are still read as events
    events_unless_json = True
    #: the environment variable holding the key (endpoints name their own; None: never send one)
    key_env: ClassVar[str | None] = DEFAULT_KEY_ENV

    def __init__(self, *, api_key_env: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if api_key_env is not None and (not api_key_env or not isinstance(api_key_env, str)):
            raise ConfigurationError(f"{self.label}: api_key_env must name an environment variable.")
        self.api_key_env = api_key_env or self.key_env
        if self.api_key_env:
            # whatever the variable is called, its value is a secret to scrub from every message
            register_key_env(self.api_key_env)
        #: the model an empty model name stands for, once the server said (GET /models)
        self._first_model: str | None = None
        #: Basic auth from the base URL's user:password, which the address no longer holds
        self._basic: str | None = None
        address = ProxySpec.parse(self.site)  # the address and its credentials, kept apart
        if address is not None and (address.username is not None or address.password is not None):
            self.site = address.url.rstrip("/")
            self._basic = address.basic_auth()
            register_credentials(address.username, address.password, f"{self.label} password")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        described = super().describe()
        described["url"] = strip_userinfo(described["url"])  # an endpoint's password never shows
        return described

    def _session_headers(self) -> dict[str, str]:
        return {"user-agent": f"chatmagic/{__version__}"}

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
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
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
        if key and self._basic:
            raise ConfigurationError(
                f"{self.label}: the base URL carries a user and password, and {self.api_key_env} holds "
                "a key: the server takes only one of them. Take user:password@ out of the base URL, "
                f"or unset {self.api_key_env}."
            )
        if key:
            headers["authorization"] = f"Bearer {key}"
        elif self._basic:
            headers["authorization"] = self._basic
        return headers

    # -- streaming -----------------------------------------------------------------

    async def _reply(
        self,
        messages: list[dict[str, str]],
        model: str,
        params: dict[str, Any],
        images: tuple[Attachment, ...],
    ) -> AsyncIterator[Part]:
        key = self.api_key()
        model = model or await self._default_model()
        options = params.get("stream_options")
        body = {
            **params,
            "model": model,
            "messages": with_images(messages, images),
            "stream": True,
            # usage comes only when asked, in a last chunk (servers that ignore it send none)
            "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
        }
        reader = ChunkReader(self.label, self._broken, self._service, offered_names(params.get("tools")))

        async def refused(status: int, headers: Mapping[str, str], text: str) -> BaseException:
            if "tools" in params:
                said_no = tools_refused(self.label, status, text)
                if said_no is not None:
                    return said_no
            return await self._status_error(status, headers, text, model, key)

        async for part in self._exchange(
            "POST",
            self.api_path,
            headers=self._headers(key, "text/event-stream"),
            json_body=body,
            events=lambda answer, ctype: self._read_events(answer, ctype, reader),
            whole=lambda text, ctype: reader.read_completion(
                parse_json(self.label, text, "a chat completion", ctype)
            ),
            refused=refused,
        ):
            yield part
        for part in reader.complete_calls():  # a stream that ended without a finish reason
            yield part
        error = reader.no_text_error()
        if error is not None:
            raise error
        yield reader.ending()

    async def _read_events(self, answer: Any, ctype: str, reader: ChunkReader) -> AsyncIterator[Part]:
        leftover: list[str] = []
        events = 0
        async for field in sse_events(answer):
            if not field.is_data:
                if field.data.startswith("error:"):  # llama.cpp's way of failing mid-stream
                    raise self._service(error_line(field.data[6:].strip()))
                leftover.append(field.data)
                continue
            if field.data == "[DONE]":
                return
            events += 1
            for chunk in event_objects(self.label, field.data, "a chat completion chunk"):
                for part in reader.feed(chunk):
                    yield part
        if not events and leftover:
            # the whole answer as one object, sent without an event-stream content type
            obj = parse_json(self.label, "\n".join(leftover), "a chat completion", ctype)
            for part in reader.read_completion(obj):
                yield part
            return
        if not reader.finished:
            raise StreamInterrupted(
                self.label,
                "the stream ended without its end marker (data: [DONE]): the reply may be "
                "cut short. Run the cell again to retry.",
            )

    async def _default_model(self) -> str:
        """What an empty model name means: the server's first model (a single-model server's only one)."""
        if self._first_model is None:
            names = await self._model_ids()
            if not names:
                raise ConfigurationError(
                    f"{self.label}: no model given, and the server lists none: load or pull one, then "
                    "name it with -m."
                )
            self._first_model = names[0]
        return self._first_model

    # -- models --------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """The model names the server has (``GET {base}/models``), sorted."""
        return sorted(await self._model_ids())

    async def _model_ids(self) -> list[str]:
        """The model names in the server's own order (the loaded one first, on most)."""
        key = self.api_key()
        async with self._http.request("GET", self.endpoint("/models"), headers=self._headers(key)) as answer:
            text = (await answer.read()).decode("utf-8", "replace")
            if answer.status >= 400:
                raise await self._status_error(answer.status, answer.headers, text, None, key)
            obj = parse_json(self.label, text, "the list of models", content_type(answer))
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise self._broken("a model list without 'data'")
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    # -- errors --------------------------------------------------------------------

    async def _status_error(
        self, status: int, headers: Any, body: str, model: str | None, key: str | None
    ) -> ProviderError:
        """An HTTP error answer, read as the OpenAI API writes them."""
        obj = try_json(body)
        message = parse_error(obj)
        snippet = excerpt(message, MESSAGE_LIMIT) if message is not None else body_summary(body)
        said = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        # a 403 page that is not the API's JSON may be a bot check: status_error knows those
        if status == 401 or (status == 403 and message is not None):
            if not self.api_key_env:
                hint = (
                    f"the server wants an API key ({said}): name the environment variable holding it, "
                    "e.g. %config ChatMagics.endpoints = {'name': {'base_url': ..., 'key_env': 'MY_KEY'}}."
                )
            elif key:
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
        code = error_field(obj, "code")
        if status == 413 or code in TOO_LONG or error_field(obj, "type") in TOO_LONG:
            return HTTPStatusError(
                self.label,
                f"the conversation is too long for the server or the model ({said}). {TOO_LONG_HINT}",
                status=status,
            )
        if model is not None and message is not None and is_unknown_model(status, code, message, model):
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
            # the server's own words say what it refused (temperature out of range, ...)
            400: "Change what it names (an -o option, the model) and run the cell again.",
            429: "The server is rate-limiting: wait a little, or use another provider.",
        }.get(status, "The server may be down or overloaded: try again later, or use another provider.")
        return HTTPStatusError(
            self.label,
            f"the server answered {sentence(said)} {hint}",
            status=status,
            retry_after=retry_after(headers),
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
            f"the server reported an error: {sentence(excerpt(message, MESSAGE_LIMIT))} "
            "Try again later, or use another provider.",
        )

    def _broken(self, what: str) -> ProtocolError:
        return ProtocolError(
            self.label,
            f"the answer is not OpenAI's chat-completions protocol: {what}. "
            "Check --base-url (it should be the API root, ending in /v1), or try another provider.",
        )


def offered_names(tools: Any) -> list[str] | None:
    """The names of the tools a request offers (None: it offers none, so no call is read)."""
    if tools is None:
        return None
    return [
        t["function"]["name"]
        for t in tools
        if isinstance(t, Mapping)
        and isinstance(t.get("function"), Mapping)
        and isinstance(t["function"].get("name"), str)
    ]


def with_images(messages: list[dict[str, str]], images: tuple[Attachment, ...]) -> list[dict[str, Any]]:
    """The messages with the images joined to the last user message as ``image_url`` parts."""
    if not images:
        return list(messages)
    out: list[dict[str, Any]] = list(messages)
    last = max(i for i, m in enumerate(out) if m["role"] == "user")
    parts: list[dict[str, Any]] = [{"type": "text", "text": out[last]["content"]}]
    parts += [{"type": "image_url", "image_url": {"url": image.data_url}} for image in images]
    out[last] = {"role": "user", "content": parts}
    return out
