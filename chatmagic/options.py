"""A turn's options and the one place where their values are checked.

Every way in (``%%chat`` arguments, ``%config ChatMagics.*``, the panel, Python) builds
a :class:`TurnOptions` or calls the checks below, so a value that cannot work is refused
before anything is sent, with a message that says what to write instead.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import unquote, urlsplit

from ._secrets import HiddenCredentials, register_credentials, scrub, strip_userinfo
from .attachments import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, Attachment, attachment_from
from .errors import ConfigurationError

# the image names (Attachment, attachment_from, MAX_IMAGE_*) live in attachments and stay
# importable from here, beside the TurnOptions that carries them
__all__ = [
    "DEFAULT_PROVIDER",
    "DEFAULT_TIMEOUT",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_SIDE",
    "Attachment",
    "TurnOptions",
    "attachment_from",
    "check_base_url",
    "check_params",
    "check_proxy",
    "check_timeout",
    "parse_chain",
    "parse_option",
]

PROXY_SCHEMES = ("http", "https")
#: the provider a turn uses when nothing names one (ChatMagics.default_provider, the session)
DEFAULT_PROVIDER = "chatgptt"
#: seconds to wait for a connection or the next bytes (ChatMagics.timeout, the session, transports)
DEFAULT_TIMEOUT = 120.0


def parse_chain(spec: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``; an empty name anywhere is an error."""
    names = [name.strip().lower() for name in spec.split(",")]
    if not any(names):
        raise ConfigurationError(
            "No provider given: name one with --provider, e.g. -p chatgptt (%chat providers lists them)."
        )
    if not all(names):
        raise ConfigurationError(
            f"The provider list {spec!r} has an empty name: separate names with single commas, "
            "e.g. -p chatgptes,opchatgpts."
        )
    return names


def check_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"--timeout must be a positive number of seconds, e.g. --timeout 60 (got {value!r})."
        )
    return float(value)


def _check_url(url: str, what: str, schemes: tuple[str, ...], example: str) -> str:
    shown = strip_userinfo(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port outside 0-65535
        # as the HTTP library will encode it (IDNA): a lone surrogate, a label of more
        # than 63 characters or an empty one would pass here and fail at the first request
        if parts.hostname and not _is_ip(parts.hostname):
            parts.hostname.encode("idna")
    except (ValueError, UnicodeError) as exc:
        reason = "its host name cannot be encoded" if isinstance(exc, UnicodeError) else str(exc)
        raise ConfigurationError(
            f"{what} {shown!r} is not a valid address ({reason}); e.g. {example}."
        ) from None
    if parts.scheme.lower() not in schemes:
        raise ConfigurationError(
            f"{what} {shown!r} must start with {' or '.join(s + '://' for s in schemes)}; e.g. {example}."
        )
    if not parts.hostname:
        raise ConfigurationError(f"{what} {shown!r} has no host name; e.g. {example}.")
    if port == 0:
        raise ConfigurationError(f"{what} {shown!r} has port 0; e.g. {example}.")
    # known as secrets from now on: a message that quotes them is scrubbed from its first turn
    register_credentials(
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        "proxy password" if what == "The proxy" else "server password",
    )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_proxy(url: str | None) -> str | None:
    """The proxy URL, checked; its repr hides the credentials (``%config ChatMagics`` lists it)."""
    if not url:
        return None
    return HiddenCredentials(
        _check_url(url, "The proxy", PROXY_SCHEMES, "--proxy http://user:password@host:3128")
    )


def check_base_url(url: str | None) -> str | None:
    """The base URL, checked; its repr hides the credentials it may carry."""
    if not url:
        return None
    return HiddenCredentials(
        _check_url(url, "The base URL", ("http", "https"), "--base-url http://localhost:11434/v1")
    )


#: request fields chatmagic writes itself, and what to write instead; a name is compared as
#: servers may read it (Go's encoding/json, Ollama's, matches keys case-insensitively):
#: without case, spaces, "-" and "_"
RESERVED_PARAMS = {
    "model": "choose the model with -m/--model",
    "messages": "the cell is the message",
    "stream": "chatmagic always streams",
    "apikey": "the key goes in the environment variable the provider reads (OPENAI_API_KEY, or an "
    "endpoint's key_env), never into the request",
    "authorization": "the key goes in the environment variable the provider reads, never into the request",
    "tools": "chatmagic runs no tools, so a model's tool call could not be answered",
    "toolchoice": "chatmagic runs no tools, so a model's tool call could not be answered",
    "functions": "chatmagic runs no tools (functions), so a model's call could not be answered",
    "functioncall": "chatmagic runs no tools (functions), so a model's call could not be answered",
}
#: how deep a value may nest: deeper would raise RecursionError in json, and no request
#: parameter needs more
MAX_PARAM_DEPTH = 32


def _param_name(key: str) -> str:
    return "".join(c for c in key.lower() if c not in " \t-_")


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → ``(key, value)``: the value as JSON when it parses, else as text.

    ``temperature=0.2`` → 0.2, ``stop=["\\n\\n"]`` → a list, ``user=alice`` → "alice".
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigurationError(
            f"-o/--option takes KEY=VALUE, e.g. -o temperature=0.2 or -o max_tokens=500 (got {text!r})."
        )
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    except RecursionError:
        raise ConfigurationError(
            f"-o/--option {key}: the value nests deeper than JSON can be read; at most "
            f"{MAX_PARAM_DEPTH} levels."
        ) from None
    return key, value


def check_params(params: Mapping[str, Any] | None, what: str = "-o/--option") -> dict[str, Any]:
    """Request parameters as they will be sent: text keys, JSON values, none chatmagic writes itself."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"{what} must be a dict of request parameters, e.g. {{'temperature': 0.2}}.")
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"{what}: {strip_userinfo(repr(key))[:80]} is not a parameter name.")
        name = _param_name(key)
        if name in RESERVED_PARAMS:
            raise ConfigurationError(f"{what}: {key!r} is not sent: {RESERVED_PARAMS[name]}. Leave it out.")
        if _depth(value) > MAX_PARAM_DEPTH:
            raise ConfigurationError(
                f"{what}: the value of {key!r} nests more than {MAX_PARAM_DEPTH} levels deep."
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise ConfigurationError(
                f"{what}: the value of {key!r} cannot be sent as JSON (got {type(value).__name__})."
            ) from None
    return dict(params)


def _depth(value: Any, limit: int = MAX_PARAM_DEPTH + 1) -> int:
    """How deep lists and dicts nest in ``value``, counted up to ``limit`` (no recursion)."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (list, tuple, dict)):
            if level >= limit:
                return level
            deepest = max(deepest, level)
            todo += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


@dataclass(frozen=True)
class TurnOptions:
    """Per-turn settings; ``None`` falls back to the conversation, then the session.

    Checked when made: an empty provider name, a model given as ``""``, an impossible
    timeout, proxy or base URL raise :class:`~chatmagic.errors.ConfigurationError`.
    """

    provider: str | None = None
    model: str | None = None
    system: str | None = None
    proxy: str | None = None
    base_url: str | None = None
    timeout: float | None = None
    #: request parameters for this turn (``-o KEY=VALUE``), sent in the request body
    params: Mapping[str, Any] | None = None
    #: images sent with the message (``--attach NAME``)
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if self.provider is not None:
            parse_chain(self.provider)
        if self.model is not None and not self.model.strip():
            raise ConfigurationError(
                "The model name is empty: leave --model out for the provider's default model."
            )
        check_timeout(self.timeout)
        check_proxy(self.proxy)
        check_base_url(self.base_url)
        if self.params is not None:
            object.__setattr__(self, "params", check_params(self.params))
        if not all(isinstance(a, Attachment) for a in self.attachments):
            raise ConfigurationError("attachments must be Attachment objects (see attachment_from).")
        object.__setattr__(self, "attachments", tuple(self.attachments))

    @property
    def chain(self) -> list[str] | None:
        return None if self.provider is None else parse_chain(self.provider)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != ():
                # a proxy's password, a secret in the system prompt
                value = scrub(value) if isinstance(value, str) else value
                shown.append(f"{f.name}={value!r}")
        return f"TurnOptions({', '.join(shown)})"
