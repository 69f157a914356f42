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
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import (
    ConfigurationError,
    EmptyReplyError,
    ProviderError,
    UnknownModelError,
)
from ._http import DEFAULT_TIMEOUT
from ._lines import SurrogateMender, valid_text

Message = Mapping[str, str]
ROLES = ("system", "user", "assistant")


class Provider(abc.ABC):
    """Base of every provider. Subclasses set the class attributes and ``_stream``."""

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
        """Yield the reply to ``messages`` chunk by chunk.

        A failure after text has streamed carries that text as ``partial``. A reply
        with no text at all is an :class:`EmptyReplyError`.

        Every provider's text passes here, so this is where it is made valid Unicode: a
        lone surrogate (JSON ``"\\ud800"``, which ``json`` decodes as is) cannot be encoded
        as UTF-8 and would break every later turn and export of the conversation. It
        becomes U+FFFD; the halves of a pair split across two chunks are joined.
        """
        checked = check_messages(messages, self.label)
        resolved = self.get_model(model)
        received: list[str] = []
        mender = SurrogateMender()
        try:
            async for chunk in self._stream(checked, resolved):
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
        if not received:
            raise EmptyReplyError(
                self.label,
                "the site answered, but the reply was empty. Try again, rephrase, or use another provider.",
            )

    @abc.abstractmethod
    def _stream(self, messages: list[dict[str, str]], model: str) -> AsyncIterator[str]:
        """The site's protocol: yield text chunks in order."""

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
        }


def check_messages(messages: Iterable[Any], label: str) -> list[dict[str, str]]:
    """Validate the message list early, with a message a user can act on."""
    checked: list[dict[str, str]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, Mapping) else None
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if role not in ROLES or not isinstance(content, str):
            raise ConfigurationError(
                f"{label}: message {i} must be a dict with 'role' (one of {', '.join(ROLES)}) "
                f"and 'content' (text); got {msg!r:.80}."
            )
        checked.append({"role": role, "content": content})
    if not checked or not any(m["role"] == "user" for m in checked):
        raise ConfigurationError(f"{label}: there is no user message to send.")
    return checked


def format_prompt(messages: Sequence[Message]) -> str:
    """The conversation as one text (PROTOCOLS.md, "Prompt format").

    One message is its content alone; several become ``Role: content`` lines for the
    non-blank messages, then a last line ``Assistant:``.
    """
    if len(messages) == 1:
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages if m["content"].strip()]
    lines.append("Assistant:")
    return "\n".join(lines)


def last_user_content(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return ""
