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

What is *sent* is scrubbed of whole values only, once, when the message is complete
(``ChatSession._redacted``): removing every 8-character piece of every secret would also
remove ordinary words from the user's text whenever a "secret" is a weak password or an
e-mail address (``GIT_AUTHOR_EMAIL`` takes ``example.com`` with it). So chatmagic's own
cuts (budgets, shortened values, the printed output kept of a cell) never leave part of
a secret behind: each cut goes through :func:`trim_cut`, which drops the piece of any
secret the cut went through, and whole values are then all that is left to find.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping

__all__ = [
    "MIN_SECRET_LENGTH",
    "key_env_names",
    "register_key_env",
    "scrub",
    "secrets",
    "strip_userinfo",
    "trim_cut",
]

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


def trim_cut(head: str, tail: str = "", found: Iterable[tuple[str, str]] | None = None) -> tuple[str, str]:
    """The two sides of a cut, without the piece of a secret the cut went through.

    ``head`` is what is kept before the cut, ``tail`` what is kept after it. ``head`` loses
    its end where that end is the beginning of a secret, ``tail`` its start where that is
    the end of one: a secret cut in two would otherwise go out in pieces that a search for
    whole values cannot find. A few characters of ordinary text that happen to look like
    the start of a secret may go with them, at a place that is cut anyway.
    """
    drop_head = drop_tail = 0
    for _, value in secrets() if found is None else found:
        # the character next to the cut rules out most lengths before any slicing
        for k in range(min(len(value) - 1, len(head)), drop_head, -1):
            if value[k - 1] == head[-1] and head.endswith(value[:k]):
                drop_head = k
                break
        for k in range(min(len(value) - 1, len(tail)), drop_tail, -1):
            if value[-k] == tail[0] and tail.startswith(value[-k:]):
                drop_tail = k
                break
    return head[: len(head) - drop_head], tail[drop_tail:]


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
