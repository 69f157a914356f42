"""What counts as a secret, and the one place that removes secrets from text.

Two kinds of text need it: what chatmagic *shows* (error messages, reprs, usage errors),
and what it *sends* (messages to a provider). Both call :func:`scrub`:

- credentials in URLs (``http://user:password@host``) become ``http://***@host``;
- values of environment variables whose names look secret (KEY, TOKEN, SECRET, PASSWORD,
  PASSWD, CREDENTIAL, AUTH) and of every variable a provider reads its key from, when
  8 characters or longer, become ``[redacted NAME]``.

Secrets that are in no variable are found by their shape (:data:`SHAPES`): private key
blocks, AWS access key ids, GitHub and Slack tokens, OpenAI-style ``sk-`` keys, and the
credentials of an ``Authorization`` or ``Proxy-Authorization`` header, each becoming
``[redacted <what>]``. Credentials chatmagic holds itself (a proxy's password, and the
base64 form a proxy sees) are registered while chatmagic uses them (:func:`register_secret`).

What is kept (the history, the notebook's records, the log) is what was sent: a message
is scrubbed once, when it enters the history, and again only when the secrets changed;
a :class:`Table` is the secrets of one turn, with a version that says whether they did.

A reply is shown while it streams: :mod:`chatmagic._livescrub` applies :func:`scrub` to it
piece by piece, holding back a tail that may still become a secret (:func:`shape_spans` says
where the shapes match, so that no secret is cut in two).

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

import base64
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTH_MARKS",
    "MIN_SECRET_LENGTH",
    "SHAPES",
    "SHAPE_MARKS",
    "HiddenCredentials",
    "Table",
    "key_env_names",
    "register_credentials",
    "register_key_env",
    "register_secret",
    "scrub",
    "scrub_values",
    "secrets",
    "shape_spans",
    "strip_userinfo",
    "table",
    "trim_cut",
]

MIN_SECRET_LENGTH = 8

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# the lookbehind starts a match only where a scheme can start: without it, a long run of
# letters is tried from every position and the search is quadratic
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")

#: what a secret of each shape is called (in ``[redacted ...]`` and the status line), its
#: shape, and pieces of text one of which it must hold (cheap tests that spare ordinary text
#: the regular expression). Each is specific enough to leave ordinary text alone: the fixed
#: prefixes, lengths and alphabets of the real formats. An ``sk-`` key needs a digit and a
#: capital (a random key has both; ``sk-learn-compatible-estimators`` has neither). Each
#: pattern starts with its literal prefix, the "no letter before it" test coming just after
#: (a lookbehind first would make the search try every position of the text).
SHAPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "private key",
        # the whole block; a block cut short (a budget, a shortened value) to the end of
        # its base64 lines, which a repr joins with a literal \n
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,16000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,.-]*)",
        ("PRIVATE KEY",),
    ),
    (
        "AWS key",
        r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    (
        "GitHub token",
        r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("Slack token", r"x(?<![A-Za-z0-9]x)ox[abposr]-[A-Za-z0-9-]{10,255}", ("xox",)),
    (
        "API key",
        r"s(?<![A-Za-z0-9_-]s)k-(?=[A-Za-z0-9_-]{0,300}[0-9])(?=[A-Za-z0-9_-]{0,300}[A-Z])[A-Za-z0-9_-]{20,}",
        ("sk-",),
    ),
)
_SHAPES = tuple((what, re.compile(pattern), hints) for what, pattern, hints in SHAPES)
_ANY_HINT = re.compile("|".join(re.escape(hint) for _what, _pattern, hints in SHAPES for hint in hints))
#: how an Authorization header is found before its pattern runs (any case of its first letter)
AUTH_MARKS = ("uthorization", "UTHORIZATION")
#: every mark a scrub by shape looks for (URL credentials, an Authorization header, the hints of
#: :data:`SHAPES`): text holding none of them holds no secret by its shape
SHAPE_MARKS = re.compile("|".join([_ANY_HINT.pattern, "://", *AUTH_MARKS]))
# an Authorization or Proxy-Authorization header as a repr, a log or an echo shows it:
# its credentials go, whatever they are
_AUTH_HEADER = re.compile(
    r"(?i)(authorization[\"']?\s*[:=,]\s*[\"']?(?:basic|bearer|token|digest)\s+)[A-Za-z0-9+/=._~-]{4,}"
)
_AUTH_LABEL = "authorization header"

_lock = threading.Lock()
_key_envs: set[str] = {"OPENAI_API_KEY"}
#: value -> what it is: credentials chatmagic holds that are in no variable (a proxy's)
_registered: dict[str, str] = {}


def register_key_env(name: str) -> None:
    """A provider reads its API key from ``name``: its value is a secret whatever the name."""
    with _lock:
        _key_envs.add(name)


def key_env_names() -> set[str]:
    with _lock:
        return set(_key_envs)


def register_secret(value: str, what: str) -> None:
    """``value`` is a secret though no variable holds it (e.g. a proxy's password)."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered[value] = what


def register_credentials(username: str | None, password: str | None, what: str) -> None:
    """A user and password chatmagic sends (a proxy's, a server's): the password, and the
    base64 ``user:password`` of Basic auth, which a server or proxy may echo back."""
    if username is None and password is None:
        return
    if password:
        register_secret(password, what)
    raw = f"{username or ''}:{password or ''}".encode()
    register_secret(base64.b64encode(raw).decode("ascii"), what)


def secrets(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(name, value)`` of every secret: those of the environment, and the registered
    credentials; longest value first."""
    env = os.environ if environ is None else environ
    keys = key_env_names()
    found = {
        value: name
        for name, value in env.items()
        if len(value) >= MIN_SECRET_LENGTH and (name in keys or _SECRET_NAME.search(name))
    }
    with _lock:
        for value, what in _registered.items():
            found.setdefault(value, what)
    return sorted(((name, value) for value, name in found.items()), key=lambda nv: -len(nv[1]))


@dataclass(frozen=True)
class Table:
    """The secrets of one moment (one turn): what :func:`scrub` removes, and a version that
    changes when they change, so that text scrubbed with an older table is scrubbed again."""

    found: tuple[tuple[str, str], ...]
    version: int


def table() -> Table:
    """The secrets now (reads the whole environment: once per turn, not once per message)."""
    found = tuple(secrets())
    return Table(found, hash((found, SHAPES)))


def strip_userinfo(text: str) -> str:
    """``scheme://user:password@host`` → ``scheme://***@host``, everywhere in ``text``."""
    return _USERINFO.sub(r"\g<scheme>***@", text) if "://" in text else text


class HiddenCredentials(str):
    """A URL whose repr hides its credentials (``'http://***@host'``): a setting's value
    is listed by its repr (``%config ChatMagics``, ``Out``, a dict holding it); the text
    itself is the URL, credentials included, for whatever uses it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(strip_userinfo(str(self)))


def scrub(
    text: str,
    *,
    fragments: bool = False,
    found: Iterable[tuple[str, str]] | None = None,
    replaced: list[str] | None = None,
) -> str:
    """``text`` without URL credentials, secret values and secret shapes (see the module docstring).

    ``found``: the secrets to remove (default: :func:`secrets` now).
    ``replaced``: names of what was removed (variables, shapes) are appended to it.
    """
    bare = strip_userinfo(text)
    if replaced is not None and bare != text and _has_password(text):
        replaced.append("password in a URL")
    text = bare
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
    # after the values, so that a key a variable holds is named by its variable
    return _scrub_shapes(text, replaced)


def scrub_values(value: Any, found: Iterable[tuple[str, str]], replaced: list[str] | None = None) -> Any:
    """A JSON value (request options) with every string in it scrubbed, keys included."""
    found = list(found)
    if isinstance(value, str):
        return scrub(value, found=found, replaced=replaced)
    if isinstance(value, dict):
        return {scrub_values(k, found, replaced): scrub_values(v, found, replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_values(v, found, replaced) for v in value]
    return value


def _has_password(text: str) -> bool:
    return any(":" in m.group(0)[len(m.group("scheme")) :] for m in _USERINFO.finditer(text))


def _shapes_in(text: str) -> Iterator[tuple[str, re.Pattern[str], str]]:
    """The shapes whose hints ``text`` holds, each ``(label, pattern, replacement)``: an
    Authorization header first, then :data:`SHAPES` in order. (A replacement brings no hint
    with it, so what text held before one shape was replaced decides the next.)"""
    if any(mark in text for mark in AUTH_MARKS):
        yield _AUTH_LABEL, _AUTH_HEADER, rf"\g<1>[redacted {_AUTH_LABEL}]"
    if _ANY_HINT.search(text) is None:  # most text: one scan instead of one per hint
        return
    for what, pattern, hints in _SHAPES:
        if any(hint in text for hint in hints):
            yield what, pattern, f"[redacted {what}]"


def _scrub_shapes(text: str, replaced: list[str] | None) -> str:
    for what, pattern, replacement in _shapes_in(text):
        cut = pattern.sub(replacement, text)
        if cut != text and replaced is not None:
            replaced.append(what)
        text = cut
    return text


def shape_spans(text: str) -> list[tuple[int, int]]:
    """Where in ``text`` :func:`scrub` finds a secret by its shape (URL credentials, an
    Authorization header, :data:`SHAPES`): ``(start, end)`` of each match, in no order."""
    spans = [m.span() for m in _USERINFO.finditer(text)] if "://" in text else []
    for _what, pattern, _replacement in _shapes_in(text):
        spans += [m.span() for m in pattern.finditer(text)]
    return spans


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
