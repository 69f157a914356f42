"""The provider base class and model selection.

A provider is an async generator of text chunks over one chat service. It exists in
two forms, the same code behind both:

- ``Provider.create_async_generator(model, messages, proxy=None, **kwargs)``, the
  seeds' one-shot class method: opens a connection, streams, closes;
- an instance, ``async with ChatGptt(base_url=..., proxy=...) as p: p.stream(...)``,
  which keeps its connections and scraped tokens across turns. The session core
  keeps one per provider and settings on its background loop.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    ConfigurationError,
    EmptyReplyError,
    ProviderError,
    UnknownModelError,
)
from ..options import DEFAULT_TIMEOUT
from ._aiohttp import AiohttpTransport
from ._family import content_type
from ._http import BROWSER_HEADERS, Answer, Transport
from ._lines import SurrogateMender, valid_text
from ._messages import ROLES, Message, check_messages, format_prompt
from ._status import status_error
from ._wire import Ending, Part, Thinking, ToolCall

if TYPE_CHECKING:
    from ..attachments import Attachment

# the messages' names stay importable from here, where plugins found them (format_prompt)
__all__ = [
    "ROLES",
    "Ending",
    "HTTPProvider",
    "Message",
    "Part",
    "Provider",
    "Thinking",
    "ToolCall",
    "check_messages",
    "format_prompt",
]


class Provider(abc.ABC):
    """Base of every provider. Subclasses set the class attributes and ``_reply``."""

    #: registry key, lower case (``chatgptt``)
    name: ClassVar[str]
    #: the site's own spelling (``ChatGptt``), used in messages
    label: ClassVar[str]
    url: ClassVar[str]
    #: path of the chat endpoint below the site; ``api_endpoint`` is ``url + api_path``
    api_path: ClassVar[str] = ""
    api_endpoint: ClassVar[str] = ""
    working: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    supports_system_message: ClassVar[bool] = True
    supports_message_history: ClassVar[bool] = True
    default_model: ClassVar[str]
    models: ClassVar[tuple[str, ...]] = ()
    model_aliases: ClassVar[dict[str, str]] = {}
    #: the provider sends request parameters (``-o temperature=0.2``) in its request
    takes_params: ClassVar[bool] = False
    #: the provider sends images (``--attach``) with the message
    takes_images: ClassVar[bool] = False
    #: the provider offers tools to the model and reads its calls (``--tools``); the web sites cannot
    supports_tools: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "url" in cls.__dict__ and "api_endpoint" not in cls.__dict__:
            cls.api_endpoint = cls.url + cls.api_path

    def __init__(
        self,
        *,
        base_url: str | None = None,
        proxy: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"{self.label}: timeout must be a positive number of seconds.")
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{self.label}: base_url must start with http:// or https:// (got {base_url!r})."
            )
        self.site = (base_url or self.url).rstrip("/")
        self.proxy = proxy
        self.timeout = timeout
        self.options = options

    def endpoint(self, path: str) -> str:
        """An address on this provider's site (``base_url`` replaces the site everywhere)."""
        return self.site + path

    # -- models --------------------------------------------------------------------

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Empty means the default; aliases resolve; anything else must be a listed model."""
        if not model:
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        if model in cls.models:
            return model
        valid = ", ".join(sorted({*cls.models, *cls.model_aliases}))
        raise UnknownModelError(
            f"{cls.label} has no model {model!r}. Choose one of: {valid} "
            "(or leave the model out for its default)."
        )

    # -- streaming -----------------------------------------------------------------

    async def stream(self, messages: Sequence[Message], model: str | None = None) -> AsyncIterator[str]:
        """Yield the reply to ``messages`` chunk by chunk: its text only (see :meth:`parts`)."""
        async for part in self.parts(messages, model):
            if isinstance(part, str):
                yield part

    async def parts(
        self,
        messages: Sequence[Message],
        model: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        images: Sequence[Attachment] = (),
        tools: Sequence[Mapping[str, Any]] = (),
        tool_choice: Any = None,
    ) -> AsyncIterator[Part]:
        """Yield the reply to ``messages``: text (``str``), :class:`Thinking` and a last :class:`Ending`.

        ``tools`` (OpenAI's ``tools`` entries) are offered to the model, ``tool_choice`` with
        them when given; each call it makes comes as a :class:`ToolCall` once complete. A
        reply of calls only is not empty. A provider without ``supports_tools`` refuses them
        before sending anything.

        ``params`` go into the request body and ``images`` with the last user message, for
        providers that take them; one that does not refuses them before sending anything
        (:class:`ConfigurationError`, one line). A failure after text has streamed carries
        that text as ``partial``. A reply with no text at all is an :class:`EmptyReplyError`
        (or the provider's own error saying why).

        Every provider's text passes here, so this is where it is made valid Unicode: a
        lone surrogate (JSON ``"\\ud800"``, which ``json`` decodes as is) cannot be encoded
        as UTF-8 and would break every later turn and export of the conversation. It
        becomes U+FFFD; the halves of a pair split across two chunks are joined.
        """
        checked = check_messages(messages, self.label, self.supports_tools)
        resolved = self.get_model(model)
        if tools and not self.supports_tools:
            raise ConfigurationError(
                f"{self.label} is a web site's chat and cannot call tools: leave --tools out, or use an "
                "OpenAI-compatible provider (-p openai, -p ollama, ...)."
            )
        self._check_extras(params or {}, images)
        if tools:
            params = {**(params or {}), "tools": [dict(t) for t in tools]}
            if tool_choice is not None:
                params["tool_choice"] = tool_choice
        received: list[str] = []
        called = False
        mender = SurrogateMender()
        try:
            async for chunk in self._reply(checked, resolved, dict(params or {}), tuple(images)):
                if isinstance(chunk, ToolCall):
                    called = True
                    yield chunk
                    continue
                if isinstance(chunk, Thinking):
                    if chunk.text:
                        yield Thinking(valid_text(chunk.text))
                    continue
                if isinstance(chunk, Ending):
                    yield chunk
                    continue
                text = mender.feed(chunk) if chunk else ""
                if text:
                    received.append(text)
                    yield text
            rest = mender.close()
            if rest:
                received.append(rest)
                yield rest
        except ProviderError as exc:
            if exc.partial:  # a provider that kept its own
                exc.partial = valid_text(exc.partial)
            else:
                exc.partial = "".join(received) + mender.close()
            raise
        if not received and not called:
            raise EmptyReplyError(
                self.label,
                "the site answered, but the reply was empty. Try again, rephrase, or use another provider.",
            )

    def _check_extras(self, params: Mapping[str, Any], images: Sequence[Attachment]) -> None:
        """Refuse, before sending, what this provider cannot send instead of dropping it."""
        if params and not self.takes_params:
            raise ConfigurationError(
                f"{self.label} is a web site's chat and takes no request options "
                f"({', '.join(params)}): leave -o out, or use an OpenAI-compatible provider "
                "(-p openai, -p ollama, ...)."
            )
        if images and not self.takes_images:
            raise ConfigurationError(
                f"{self.label} is a web site's chat and cannot be sent an image "
                f"({', '.join(a.name for a in images)}): leave --attach out, or use a vision model on an "
                "OpenAI-compatible provider (-p openai, -p ollama, ...)."
            )

    @abc.abstractmethod
    def _reply(
        self,
        messages: list[dict[str, str]],
        model: str,
        params: dict[str, Any],
        images: tuple[Attachment, ...],
    ) -> AsyncIterator[Part]:
        """The site's protocol: yield the reply's text chunks in order (any :data:`Part` may come too).

        ``messages`` are checked and ``model`` resolved. ``params`` (the offered ``tools``
        among them) and ``images`` are empty unless the class ``takes_params``,
        ``takes_images`` or ``supports_tools``: :meth:`parts` refuses them before.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional: providers without connections keep it
        """Close the provider's HTTP sessions. Safe to call twice."""

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @classmethod
    async def create_async_generator(
        cls,
        model: str | None,
        messages: Sequence[Message],
        proxy: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str]:
        """One turn with a fresh provider, closed afterwards (the seeds' interface)."""
        async with cls(proxy=proxy, **kwargs) as provider:
            async for chunk in provider.stream(messages, model):
                yield chunk

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What ``%chat providers`` lists."""
        return {
            "name": cls.name,
            "label": cls.label,
            "url": cls.url,
            "default_model": cls.default_model,
            "models": list(cls.models),
            "aliases": dict(cls.model_aliases),
            "working": cls.working,
            "stream": cls.supports_stream,
            "system": cls.supports_system_message,
            "history": cls.supports_message_history,
            "options": cls.takes_params,
            "images": cls.takes_images,
        }


class HTTPProvider(Provider):
    """A provider over HTTP: one transport kept across turns, and the one way an exchange goes.

    POST (or GET), then: an error status becomes the error :meth:`_refused` makes of it
    (each family reads its own refusals there); an event stream is read by ``events``,
    anything else as one body by ``whole``. Subclasses set ``transport_class`` and
    :meth:`_session_headers`.
    """

    transport_class: ClassVar[type[Transport]] = AiohttpTransport
    #: an answer without an event-stream content type is still read as events unless it says JSON
    #: (servers that stream with another content type); else it is read whole
    events_unless_json: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._http = self.transport_class(
            self.label,
            proxy=self.proxy,
            timeout=self.timeout,
            headers=self._session_headers(),
            cookies=self.options.get("cookies"),
        )

    def _session_headers(self) -> dict[str, str]:
        """Headers of every request (a browser's, for the web sites)."""
        return {**BROWSER_HEADERS, "origin": self.site}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _refused(self, status: int, headers: Mapping[str, str], body: str) -> BaseException:
        """The error for an answer with an error status."""
        return status_error(self.label, status, headers, body)

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        events: Callable[[Answer, str], AsyncIterator[Part]],
        whole: Callable[[str, str], Awaitable[list[Part]] | list[Part]],
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        refused: Callable[[int, Mapping[str, str], str], Awaitable[BaseException]] | None = None,
    ) -> AsyncIterator[Part]:
        """Send one request and yield what its answer says (see the class docstring)."""
        async with self._http.request(
            method, self.endpoint(path), headers=headers, data=data, json_body=json_body
        ) as answer:
            if answer.status >= 400:
                body = (await answer.read()).decode("utf-8", "replace")
                raise await (refused or self._refused)(answer.status, answer.headers, body)
            ctype = content_type(answer)
            streamed = ctype == "text/event-stream" or (
                self.events_unless_json and ctype != "application/json"
            )
            if streamed:
                async for part in events(answer, ctype):
                    yield part
                return
            text = (await answer.read()).decode("utf-8", "replace")
            parts = whole(text, ctype)
            for part in parts if isinstance(parts, list) else await parts:
                yield part
