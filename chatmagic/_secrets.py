"""What counts as a secret, and the one place that removes secrets from text.

Two kinds of text need it: what chatmagic *shows* (error messages, reprs, usage errors),
and what it *sends* (messages to a provider). Both call :func:`scrub`:

- credentials in URLs (``http://user:password@host``) become ``http://***@host``;
- values of environment variables whose names look secret (KEY, TOKEN, SECRET, PASSWORD,
  PASSWD, CREDENTIAL, AUTH) and of every variable a provider reads its key from, when
  8 characters or longer, become ``[redacted NAME]``.

For text that is shown, ``fragments=True`` also removes any piece of such a value of
8 characters or more: a server may echo a key back and the message may be cut in the
middle of it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping

__all__ = ["MIN_SECRET_LENGTH", "key_env_names", "register_key_env", "scrub", "secrets", "strip_userinfo"]

MIN_SECRET_LENGTH = 8

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# the lookbehind starts a match only where a scheme can start: without it, a long run of
# letters is tried from every position and the search is quadratic
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")

_lock = threading.Lock()
_key_envs: set[str] = {"OPENAI_API_KEY"}


def register_key_env(name: str) -> None:
    """A provider reads its API key from ``name``: its value is a secret whatever the name."""
    with _lock:
        _key_envs.add(name)


def key_env_names() -> set[str]:
    with _lock:
        return set(_key_envs)


def secrets(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(variable name, value)`` of every secret in the environment, longest value first."""
    env = os.environ if environ is None else environ
    keys = key_env_names()
    found = {
        value: name
        for name, value in env.items()
        if len(value) >= MIN_SECRET_LENGTH and (name in keys or _SECRET_NAME.search(name))
    }
    return sorted(((name, value) for value, name in found.items()), key=lambda nv: -len(nv[1]))


def strip_userinfo(text: str) -> str:
    """``scheme://user:password@host`` → ``scheme://***@host``, everywhere in ``text``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def scrub(
    text: str,
    *,
    fragments: bool = False,
    found: Iterable[tuple[str, str]] | None = None,
    replaced: list[str] | None = None,
) -> str:
    """``text`` without URL credentials and secret values (see the module docstring).

    ``found``: the secrets to remove (default: :func:`secrets` of the environment now).
    ``replaced``: names of the variables whose values were removed are appended to it.
    """
    text = strip_userinfo(text)
    for name, value in secrets() if found is None else found:
        label = f"[redacted {name}]"
        if value in text:
            text = text.replace(value, label)
            if replaced is not None:
                replaced.append(name)
        if fragments and len(text) >= MIN_SECRET_LENGTH:
            cut = _remove_fragments(text, value, label)
            if cut != text and replaced is not None and name not in replaced:
                replaced.append(name)
            text = cut
    return text


def _remove_fragments(text: str, value: str, label: str) -> str:
    """Replace every run of ``text`` of MIN_SECRET_LENGTH+ characters that occurs in ``value``."""
    n = MIN_SECRET_LENGTH
    grams = {value[i : i + n] for i in range(len(value) - n + 1)}
    out: list[str] = []
    i = start = 0
    while i <= len(text) - n:
        if text[i : i + n] not in grams:
            i += 1
            continue
        # extend the match as far as the text stays a piece of the value
        j = i + n
        while j < len(text) and text[i : j + 1] in value:
            j += 1
        out += [text[start:i], label]
        i = start = j
    out.append(text[start:])
    return "".join(out)
