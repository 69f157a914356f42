"""Counting a request's tokens the way the model counts them, and saying how they were counted.

Core layer: no IPython, no widgets, no HTML. Three ways, best first; every :class:`Count`
carries its ``how`` so nothing shows an estimate as a fact:

``"server"``
    The server's own tokenizer over its own chat template (llama.cpp ``/apply-template`` +
    ``/tokenize``, vLLM ``/tokenize`` with messages: :func:`chatmagic.providers.window.server_count`).
    Exact: it is how the server computes ``usage.prompt_tokens``. Only for a whole request
    (the template's tokens belong to no one part); parts are then shown by BPE or estimate.
``"bpe"``
    An offline BPE of the model's family (:func:`encoding_for`): ``o200k_base`` for gpt-4o,
    gpt-4.1, gpt-4.5, gpt-5, chatgpt-4o and the o-series; ``cl100k_base`` for gpt-3.5 and
    gpt-4 (turbo). The library is ``bpe-openai``, which ships both vocabularies inside its
    wheel (``tiktoken`` downloads them on first use and fails offline; ``toktok-rs`` ships
    them too and is 9x smaller, but wants Python >= 3.11 and this package supports 3.10).
    It is imported on first count, never at ``%load_ext`` (0.75 to 1.4 s in a fresh process
    here, vocabulary included; the integration can warm it on the runner's thread after
    the extension loads, so the first glass box does not wait). A whole request adds OpenAI's chat overhead as the OpenAI cookbook
    ("How to count tokens with tiktoken") counts it for these models: 3 tokens per message,
    1 more per ``name``, 3 to prime the reply (``<|start|>assistant<|message|>``). Tool
    schemas are counted as their JSON text, which OpenAI rewrites into its own
    TypeScript-like form: close, not exact, so such a count says ``"bpe≈"``.
``"≈"``
    An estimate for any other model: ``ceil(chars / 4)`` (OpenAI's rule of thumb for English),
    plus the same per-message overhead. Shown with "≈" in front.

Images in a message (``{"type": "image_url"}`` parts) count as :data:`IMAGE_TOKENS` each
(OpenAI's high-detail 1024x1024 tile cost, 765) and make the count an estimate.

Integration (after the turn and the package restructure): the session builds a request's
messages as today (``ChatSession._context`` + the prompt), then for the glass box
(:mod:`chatmagic.anatomy`) counts each part with :func:`count_text` and the whole with
:func:`count_messages`, replaced by the server's figure when :func:`server_count` answers;
after a turn, the server's ``usage.prompt_tokens`` is the truth and the record keeps
``estimate - usage`` (see ``bench/token_estimate.py`` for how far apart they are).
"""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "IMAGE_TOKENS",
    "Count",
    "count_messages",
    "count_text",
    "encoding_for",
    "estimate_tokens",
    "loaded",
    "versus_usage",
    "warm",
]

#: OpenAI's cookbook chat overhead for gpt-3.5-turbo-0613 onward, gpt-4, gpt-4o and later
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER = 3
#: characters per token of the estimate (OpenAI: "about 4 characters of English text")
CHARS_PER_TOKEN = 4
#: one image part, counted as OpenAI's high-detail 1024x1024 cost (85 + 4 tiles x 170)
IMAGE_TOKENS = 765

# model name (after any "provider/" prefix) -> the encoding; first match wins
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o\d)(\b|-|$)"), "o200k_base"),
    (re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002)(\b|-|$)"), "cl100k_base"),
)


@dataclass(frozen=True)
class Count:
    """A number of tokens and how it was counted: "server", "bpe", "bpe≈" or "≈"."""

    tokens: int
    how: str

    @property
    def exact(self) -> bool:
        return self.how in ("server", "bpe")

    def __str__(self) -> str:
        return f"{self.tokens:,}" if self.exact else f"≈{self.tokens:,}"

    def __add__(self, other: Count) -> Count:
        return Count(self.tokens + other.tokens, _weaker(self.how, other.how))


@lru_cache(maxsize=256)  # asked for every message of every turn; model names are few
def encoding_for(model: str) -> str | None:
    """The offline BPE of ``model``'s family (``"o200k_base"``, ``"cl100k_base"``), or None."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for pattern, encoding in _FAMILIES:
        if pattern.match(name):
            return encoding
    return None


def estimate_tokens(text: str) -> int:
    """The "≈" estimate: characters / 4, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def loaded(model: str) -> bool:
    """Counting for ``model`` waits for nothing: its BPE is in memory, or it has none."""
    encoding = encoding_for(model)
    return encoding is None or encoding in _encodings


def warm(model: str) -> None:
    """Load ``model``'s BPE on a thread of its own (0.6 to 1.4 s once per process), so that a
    turn that does not need it exact yet (no window, no budget) never waits for it."""
    encoding = encoding_for(model)
    if encoding is None or encoding in _encodings or encoding in _warming:
        return
    _warming.add(encoding)
    threading.Thread(target=_warm, args=(encoding,), name=f"chatmagic-bpe-{encoding}", daemon=True).start()


def count_text(text: str, model: str, *, wait: bool = True) -> Count:
    """The tokens of one piece of text, by the model's BPE when it has one, else "≈".

    ``wait=False``: "≈" too while the BPE is not loaded yet (see :func:`warm`)."""
    encoding = encoding_for(model)
    if encoding is None or (not wait and encoding not in _encodings):
        return Count(estimate_tokens(text), "≈")
    return Count(_bpe_len(encoding, text), "bpe")


def count_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    wait: bool = True,
) -> Count:
    """A whole request's prompt tokens as the cookbook counts them: contents + per-message overhead."""
    encoding = encoding_for(model)
    exact = encoding is not None and (wait or encoding in _encodings)
    # a turn's request begins with the previous turn's (the history budget keeps its start
    # between steps, and the same message objects are sent again): only what follows is counted
    # between steps (a few conversations at once: cells, a panel), so the last few are kept
    way = (encoding, exact)
    recent = _last.setdefault(way, [])
    start, sums = 0, [(REPLY_PRIMER, "bpe" if exact else "≈")]
    for before, running in list(recent):
        for k in (len(before), len(before) - 1):  # the previous prompt: as history, or a new one
            if start < k <= len(messages) and messages[:k] == before[:k]:  # compared in C
                start, sums = k, running[: k + 1]
                break
    tokens, how = sums[-1]
    for message in messages[start:]:
        part = _message_tokens(message, model, encoding, exact, wait)
        tokens += part.tokens
        how = _weaker(how, part.how)
        sums.append((tokens, how))
    recent.insert(0, (list(messages), sums))
    del recent[KEPT_REQUESTS:]
    total = Count(tokens, how)
    if tools:
        total += _approx(count_text(json.dumps(list(tools), ensure_ascii=False), model, wait=wait))
    return total


def _message_tokens(
    message: Mapping[str, Any], model: str, encoding: str | None, exact: bool, wait: bool
) -> Count:
    """One message of a request: its texts, tool calls and images, and its framing."""
    tokens = TOKENS_PER_MESSAGE
    how = "bpe" if exact else "≈"
    for key, value in message.items():
        if isinstance(value, str):  # a role, a name, a text content: the same count as count_text's
            tokens += _bpe_len(encoding, value) if exact and encoding else estimate_tokens(value)
            if key == "name":
                tokens += TOKENS_PER_NAME
            continue
        if key == "content":
            part = content_tokens(value, model, wait=wait)
        elif value is not None:  # tool calls on an assistant message: their JSON, approximately
            part = _approx(count_text(json.dumps(value, ensure_ascii=False), model, wait=wait))
        else:
            continue
        tokens += part.tokens
        how = _weaker(how, part.how)
    return Count(tokens, how)


#: the last requests counted, each way of counting (encoding, exact), newest first: their
#: messages, and the running total and weakest way after each (the first: the primer alone)
_last: dict[tuple[str | None, bool], list[tuple[list[Mapping[str, Any]], list[tuple[int, str]]]]] = {}
#: how many: a turn in each of a few conversations at once
KEPT_REQUESTS = 8


def content_tokens(content: Any, model: str, *, wait: bool = True) -> Count:
    """A message's content: text, or a list of parts (text counted, each image as :data:`IMAGE_TOKENS`)."""
    if content is None:
        return Count(0, "bpe")
    if isinstance(content, str):
        return count_text(content, model, wait=wait)
    total = Count(0, "bpe")
    for part in content if isinstance(content, list) else []:
        if isinstance(part, Mapping) and part.get("type") == "text":
            total += count_text(str(part.get("text", "")), model, wait=wait)
        else:
            total += Count(IMAGE_TOKENS, "≈")
    return total


def _approx(count: Count) -> Count:
    return Count(count.tokens, "bpe≈" if count.how == "bpe" else count.how)


_ORDER = ("server", "bpe", "bpe≈", "≈")


def _weaker(a: str, b: str) -> str:
    """The less certain of two ways (a sum is only as exact as its least exact part)."""
    return max(a, b, key=_ORDER.index)


#: encodings in memory by name, and those a thread is loading (see warm)
_encodings: dict[str, Any] = {}
_warming: set[str] = set()
_load_lock = threading.Lock()


def _encoding(name: str, *, quiet: bool = True) -> Any:
    # heavy (a 74 MB extension, ~1.5 s cold): only when something is counted. One at a time: a
    # thread warming one encoding and a count of another must not import the library twice at once
    found = _encodings.get(name)
    if found is not None:
        return found
    with _load_lock:
        if name not in _encodings:
            if quiet:
                with warnings.catch_warnings():
                    # bpe-openai 0.1.4 reads its vocabulary with importlib.resources.open_binary
                    # (deprecated since 3.11): not the user's concern, and an error under -W error
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _encodings[name] = _get_encoding(name)
            else:
                _encodings[name] = _get_encoding(name)
    return _encodings[name]


def _get_encoding(name: str) -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(name)


def _warm(name: str) -> None:
    # no catch_warnings on a thread: it swaps the process's filters under the main thread's feet.
    # The library's DeprecationWarning is ignored by Python's default filters; where warnings are
    # errors (-W error), the load fails here quietly and the next count that needs it loads it
    try:
        _encoding(name, quiet=False)
    except Exception:  # noqa: BLE001 - a convenience: counting never depends on it
        pass
    finally:
        _warming.discard(name)


@lru_cache(maxsize=4096)
def _bpe_len(encoding: str, text: str) -> int:
    # remembered: a step of the history budget counts the exchanges it keeps again.
    # encode_ordinary: text that looks like a special token ("<|endoftext|>") counts as text, as the API does
    return len(_encoding(encoding).encode_ordinary(text))


def versus_usage(estimate: Count, prompt_tokens: int) -> dict[str, int | str]:
    """What the record keeps after a turn: the count made before sending against the server's
    ``usage.prompt_tokens`` (the truth), e.g. ``{"estimate": 1203, "how": "bpe", "usage": 1210,
    "difference": -7}``."""
    return {
        "estimate": estimate.tokens,
        "how": estimate.how,
        "usage": prompt_tokens,
        "difference": estimate.tokens - prompt_tokens,
    }
