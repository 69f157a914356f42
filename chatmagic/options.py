"""A turn's options and the one place where their values are checked.

Every way in (``%%chat`` arguments, ``%config ChatMagics.*``, the panel, Python) builds
a :class:`TurnOptions` or calls the checks below, so a value that cannot work is refused
before anything is sent, with a message that says what to write instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from ._secrets import strip_userinfo
from .errors import ConfigurationError

__all__ = ["TurnOptions", "check_base_url", "check_proxy", "check_timeout", "parse_chain"]

PROXY_SCHEMES = ("http", "https")


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
    except ValueError as exc:
        raise ConfigurationError(
            f"{what} {shown!r} is not a valid address ({exc}); e.g. {example}."
        ) from None
    if parts.scheme.lower() not in schemes:
        raise ConfigurationError(
            f"{what} {shown!r} must start with {' or '.join(s + '://' for s in schemes)}; e.g. {example}."
        )
    if not parts.hostname:
        raise ConfigurationError(f"{what} {shown!r} has no host name; e.g. {example}.")
    if port == 0:
        raise ConfigurationError(f"{what} {shown!r} has port 0; e.g. {example}.")
    return url


def check_proxy(url: str | None) -> str | None:
    if not url:
        return None
    return _check_url(url, "The proxy", PROXY_SCHEMES, "--proxy http://user:password@host:3128")


def check_base_url(url: str | None) -> str | None:
    if not url:
        return None
    return _check_url(url, "The base URL", ("http", "https"), "--base-url http://localhost:11434/v1")


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

    @property
    def chain(self) -> list[str] | None:
        return None if self.provider is None else parse_chain(self.provider)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                value = strip_userinfo(value) if isinstance(value, str) else value
                shown.append(f"{f.name}={value!r}")
        return f"TurnOptions({', '.join(shown)})"
