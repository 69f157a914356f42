"""What a local server says about a model: its context window, and its own token count.

Providers layer: imports neither the session nor the look. Every call is quiet: a server
that lacks an endpoint (OpenAI, LM Studio), refuses, times out or answers something else
gives ``None`` ("unknown"), never an error, because none of this is needed to chat.

The window, in this order (:func:`discover_window`):

=========== =============================================================== ==============
source      where                                                           ``Window.source``
=========== =============================================================== ==============
llama.cpp   ``GET {root}/props`` → ``default_generation_settings.n_ctx``     ``"llama.cpp /props"``
vLLM        ``GET {root}/v1/models`` → the model's ``max_model_len``         ``"vLLM /v1/models"``
Ollama      ``POST {root}/api/show {"model"}`` → ``model_info["<arch>.context_length"]`` ``"Ollama /api/show"``
config      ``ChatMagics.endpoints[name]["context_window"]``                ``"config"``
=========== =============================================================== ==============

(``{root}`` is the endpoint's ``base_url`` without its trailing ``/v1``.) Ollama serves a
model with ``num_ctx`` tokens, which a Modelfile's ``PARAMETER num_ctx`` sets (shown in
``/api/show``'s ``parameters``, read first) and which otherwise defaults to the server's
``OLLAMA_CONTEXT_LENGTH`` (not shown anywhere: ``context_length`` is then an upper bound; Ollama
cuts a longer prompt instead of refusing it). llama.cpp's
``/v1/models`` ``meta.n_ctx_train`` is what the model was trained for, not the window it is
served with, so it is never read. A server's answer wins over the configuration: the
configuration is for servers that do not say (OpenAI, LM Studio, a proxy). Results are
cached per (root, model) for the process; :func:`forget` clears the cache (a restarted
server with another ``-c``).

The server's own count (:func:`server_count`), exact against its ``usage.prompt_tokens``:
llama.cpp ``POST /apply-template {"messages", "tools"}`` then ``POST /tokenize {"content",
"add_special": true}``; vLLM ``POST /tokenize {"model", "messages", "tools",
"add_generation_prompt": true, "add_special_tokens": false}`` (the template's text already
starts with the BOS). Ollama has no tokenize endpoint: ``None``.

Integration: :mod:`chatmagic.tokens` calls :func:`server_count` when the endpoint is a
llama.cpp or vLLM server (``Window.kind``); the session runs these coroutines on its
runner's loop (:mod:`chatmagic.runner`) before ``%chat context`` / ``--dry-run`` draws, and
before a turn when a budget or the window has to be checked. ``context_window`` in an
endpoint's settings needs adding to ``providers/endpoints._FIELDS`` (checked with
:func:`check_context_window`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "Window",
    "check_context_window",
    "discover_window",
    "forget",
    "known_window",
    "server_count",
    "server_root",
]

_NUM_CTX = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)
#: a probe is a convenience: never hold up a turn long for it
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Window:
    """A model's context window in tokens (None: unknown), where that came from, and the server kind."""

    tokens: int | None
    source: str
    #: "llamacpp", "vllm", "ollama" or None (a server that said nothing about itself)
    kind: str | None = None

    @property
    def known(self) -> bool:
        return self.tokens is not None


UNKNOWN = Window(None, "unknown")
_cache: dict[tuple[str, str], Window] = {}


def server_root(base_url: str) -> str:
    """The server's root for its own endpoints: ``http://h:8080/v1`` → ``http://h:8080``."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def check_context_window(value: Any, where: str = "context_window") -> int:
    """A configured window checked: a whole number of tokens above zero, or one line saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(
            f"{where} must be a whole number of tokens above 0, e.g. 32768 (got {value!r})."
        )
    return value


def forget() -> None:
    """Forget every window found (a server restarted with another size)."""
    _cache.clear()


def known_window(base_url: str, model: str) -> Window | None:
    """The window found earlier for ``model`` behind ``base_url`` (None: not asked yet)."""
    return _cache.get((server_root(base_url), model))


async def discover_window(
    base_url: str,
    model: str,
    *,
    configured: int | None = None,
    headers: Mapping[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Window:
    """The window of ``model`` behind ``base_url``: the server's word, else ``configured``, else unknown."""
    root = server_root(base_url)
    key = (root, model)
    if key in _cache:
        return _cache[key]
    found = await _with_session(session, headers, lambda s: _ask_server(s, root, model))
    if found is None:
        found = Window(configured, "config") if configured is not None else UNKNOWN
    _cache[key] = found
    return found


async def server_count(
    base_url: str,
    model: str,
    kind: str | None,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> int | None:
    """The prompt tokens the server will report for ``messages`` (+ ``tools``), or None if it cannot say."""
    if kind not in ("llamacpp", "vllm"):
        return None
    root = server_root(base_url)
    body: dict[str, Any] = {"messages": list(messages)}
    if tools:
        body["tools"] = list(tools)

    async def ask(s: aiohttp.ClientSession) -> int | None:
        if kind == "llamacpp":
            applied = await _json(s, "POST", f"{root}/apply-template", body)
            prompt = applied.get("prompt") if isinstance(applied, dict) else None
            if not isinstance(prompt, str):
                return None
            tokenized = await _json(s, "POST", f"{root}/tokenize", {"content": prompt, "add_special": True})
            tokens = tokenized.get("tokens") if isinstance(tokenized, dict) else None
            return len(tokens) if isinstance(tokens, list) else None
        vbody = {"model": model, **body, "add_generation_prompt": True, "add_special_tokens": False}
        answer = await _json(s, "POST", f"{root}/tokenize", vbody)
        count = answer.get("count") if isinstance(answer, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    return await _with_session(session, headers, ask)


async def _ask_server(s: aiohttp.ClientSession, root: str, model: str) -> Window | None:
    props = await _json(s, "GET", f"{root}/props")
    n_ctx = _dig(props, "default_generation_settings", "n_ctx")
    if _positive(n_ctx):
        return Window(n_ctx, "llama.cpp /props", "llamacpp")
    listing = await _json(s, "GET", f"{root}/v1/models")
    entries = listing.get("data") if isinstance(listing, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model and _positive(entry.get("max_model_len")):
            return Window(entry["max_model_len"], "vLLM /v1/models", "vllm")
    shown = await _json(s, "POST", f"{root}/api/show", {"model": model})
    params = shown.get("parameters") if isinstance(shown, dict) else None
    num_ctx = _NUM_CTX.search(params) if isinstance(params, str) else None
    if num_ctx:  # a Modelfile's PARAMETER num_ctx: what Ollama serves, below what the model knows
        return Window(int(num_ctx.group(1)), "Ollama /api/show num_ctx", "ollama")
    info = shown.get("model_info") if isinstance(shown, dict) else None
    if isinstance(info, dict):
        arch = info.get("general.architecture")
        length = info.get(f"{arch}.context_length")
        if _positive(length):
            return Window(length, "Ollama /api/show", "ollama")
    return None


async def _with_session(
    session: aiohttp.ClientSession | None, headers: Mapping[str, str] | None, job: Any
) -> Any:
    # aiohttp (and asyncio) on first use only: the glass box's data (anatomy) reads Window, and the
    # endpoints' check (the registry) check_context_window, without a network stack
    import asyncio

    import aiohttp

    try:
        if session is not None:
            return await job(session)
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, headers=dict(headers or {})) as s:
            return await job(s)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        # quiet by design: a server that cannot tell leaves the answer unknown
        return None


async def _json(s: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with s.request(method, url, json=body) as resp:
        if resp.status != 200:
            return None
        return await resp.json(content_type=None)


def _dig(data: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
