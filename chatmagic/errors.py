"""The one error tree of chatmagic.

Every failure a user can meet is one of these, and its message names the provider,
says what happened and what to try::

    ChatMagicError
    ├── ConfigurationError            bad arguments or settings, caught before any request
    │   ├── UnknownProviderError      no provider by that name
    │   └── UnknownModelError         the provider has no such model
    ├── MissingDependencyError        an optional package (curl_cffi) is not installed
    ├── ConversationBusy              a reply is still streaming into the conversation
    ├── TurnStopped                   the user stopped a reply (Stop, Ctrl-C); keeps the text so far
    ├── NotSent                       refused before sending: over the window, or over budget unconfirmed
    ├── AllProvidersFailed            every provider of a fallback chain failed (``.failures``)
    └── ProviderError                 the provider failed; ``.provider``, ``.partial``
        ├── ProviderConnectionError   could not connect, or the proxy refused
        ├── ProviderTimeout           no bytes for ``timeout`` seconds
        ├── StreamInterrupted         the connection was lost after the reply began
        ├── HTTPStatusError           an HTTP error status (``.status``, ``.retry_after``)
        │   └── BotCheckError         a Cloudflare challenge page answered instead of the chat
        ├── TokenRefusedError         the site refused its nonce even after fetching a new one
        ├── ProtocolError             the answer is not the site's protocol
        ├── ServiceError              the site answered with an error of its own
        └── EmptyReplyError           the site answered, but with no text

Foreign exceptions are mapped to these in one place per library (``chatmagic.providers._aiohttp``,
``chatmagic.providers._curl``), and chained with ``raise ... from exc``.
Neither credentials nor secrets appear in a message: see :func:`redact`.
"""

from __future__ import annotations

from ._secrets import scrub

__all__ = [
    "AllProvidersFailed",
    "BotCheckError",
    "ChatMagicError",
    "ConfigurationError",
    "ConversationBusy",
    "EmptyReplyError",
    "HTTPStatusError",
    "MissingDependencyError",
    "NotSent",
    "ProtocolError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "ServiceError",
    "StreamInterrupted",
    "TokenRefusedError",
    "TurnStopped",
    "UnknownModelError",
    "UnknownProviderError",
    "redact",
]


def redact(text: str) -> str:
    """``text`` as it may be shown: no URL credentials, no secret, nor any piece of one.

    Every error message goes through this when the error is made, so a message that was
    cut in the middle of a key echoed by a server still shows none of it.
    """
    return scrub(text, fragments=True)


class ChatMagicError(Exception):
    """Base of every chatmagic error.

    In IPython the error prints as one short line instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the stack: users see one line.
        return [f"{type(self).__name__}: {self.message}"]


class ConfigurationError(ChatMagicError, ValueError):
    """Bad arguments or settings, found before any request was sent."""


class UnknownProviderError(ConfigurationError, KeyError):
    """No provider is registered under the name asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class UnknownModelError(ConfigurationError):
    """The provider does not offer the model asked for."""


class MissingDependencyError(ChatMagicError, ImportError):
    """A package a provider needs is not installed."""


class ConversationBusy(ChatMagicError):
    """A second turn was started while a reply still streams into the same conversation."""


class TurnStopped(ChatMagicError):
    """The user stopped the reply. ``partial`` holds the text received until then."""

    def __init__(self, message: str = "Stopped.", *, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class NotSent(ChatMagicError):
    """A request refused before it was sent: it cannot fit the model's window, or it is over the
    user's budget and no one confirmed it (chatmagic.budget). Nothing went to the provider."""


class AllProvidersFailed(ChatMagicError):
    """Every provider of a fallback chain failed before any text; ``failures`` says how."""

    def __init__(self, failures: list[tuple[str, ChatMagicError]]) -> None:
        # a line each: every provider's own reason (and its attempts), not one run-on sentence
        reasons = "\n".join(f"  {name}: {getattr(e, 'detail', e.message)}" for name, e in failures)
        super().__init__(f"every provider failed:\n{reasons}")
        self.failures = failures


class ProviderError(ChatMagicError):
    """A provider failed. ``partial`` is the text it had streamed before failing."""

    def __init__(self, provider: str, message: str, *, partial: str = "") -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.partial = partial
        self.detail = redact(message)
        #: how many times the provider was asked (1 unless retried)
        self.attempts = 1

    def note_attempts(self, attempts: int) -> None:
        """Say in the message that the provider was asked ``attempts`` times."""
        if attempts > 1 and self.attempts == 1:
            self.attempts = attempts
            self.args = (f"{self.provider} ({attempts} attempts): {self.detail}", *self.args[1:])
            self.detail = f"{attempts} attempts, {self.detail}"


class ProviderConnectionError(ProviderError):
    """Could not connect to the site (or to the proxy)."""


class ProviderTimeout(ProviderError):
    """The site sent nothing for longer than the timeout."""


class StreamInterrupted(ProviderError):
    """The connection broke after the reply had begun; ``partial`` keeps what arrived."""


class HTTPStatusError(ProviderError):
    """The site answered with an HTTP error status."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(provider, message, partial=partial)
        self.status = status
        self.retry_after = retry_after


class BotCheckError(HTTPStatusError):
    """A bot check (Cloudflare challenge page) answered instead of the chat."""


class TokenRefusedError(ProviderError):
    """The site refused its security token (nonce), even after a fresh one was fetched."""


class ProtocolError(ProviderError):
    """The answer does not follow the site's protocol (broken line, wrong type, missing field)."""


class ServiceError(ProviderError):
    """The site answered with an error of its own (``status: error``, an ``error`` event)."""


class EmptyReplyError(ProviderError):
    """The site answered successfully but the reply had no text."""
