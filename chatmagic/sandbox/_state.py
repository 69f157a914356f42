"""Settings and the mutable server state (tokens, injected faults, recorded requests).

The state is touched from the server's loop and from test code on other threads
(``Sandbox.start_in_thread``), so every access goes through one lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAMILY_A",
    "FAMILY_B",
    "OPENAI_APIS",
    "OPENAI_PRESETS",
    "OPENAI_SITE",
    "POST_IDS",
    "SITES",
    "RecordedRequest",
    "SandboxSettings",
    "State",
]

FAMILY_A = ("chatgptt", "chatgptes", "chatgptfree")
FAMILY_B = ("chatgpt4online", "opchatgpts")
#: an OpenAI-compatible chat-completions API (OpenAI, Ollama, llama.cpp, vLLM, ...)
OPENAI_SITE = "openai"
SITES = FAMILY_A + FAMILY_B + (OPENAI_SITE,)
#: the same API again under the names of chatmagic's presets for local servers
#: (``-p ollama``), each wanting no key, as those servers do out of the box
OPENAI_PRESETS = ("ollama", "llamacpp", "vllm", "lmstudio")
OPENAI_APIS = (OPENAI_SITE, *OPENAI_PRESETS)

# Distinct per site, so a client that mixes up its tokens is caught.
POST_IDS = {"chatgptt": "2", "chatgptes": "106", "chatgptfree": "123"}


@dataclass
class SandboxSettings:
    token_ttl: float = 3600.0
    """Seconds an issued nonce stays valid (WordPress: 12 to 24 hours)."""
    stream_sites: frozenset[str] | set[str] = frozenset({"chatgptfree"})
    """Family A sites that answer as an event stream instead of one JSON object."""
    stall_seconds: float = 30.0
    slow_seconds: float = 1.0
    slow_chunk_seconds: float = 0.2
    tiny_write_size: int = 3
    tiny_write_pause: float = 0.002
    """Pause after each tiny write so they reach the client as separate reads."""
    openai_api_key: str | None = "sk-sandbox"
    """The key the ``openai`` site wants as ``Authorization: Bearer``; None: no key (the presets want none)."""
    openai_models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "llama3.2")
    """The models the OpenAI-compatible API serves (``GET /openai/v1/models``)."""
    context_window: int = 32768
    """The local servers' window in tokens (llama.cpp ``n_ctx``, vLLM ``max_model_len``, Ollama's ``context_length``)."""
    openai_context_window: int = 128000
    """The window of the ``openai`` site's models (gpt-4o's)."""


@dataclass
class RecordedRequest:
    site: str | None
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    form: dict[str, str] | None = None
    json: Any = None
    via_proxy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "query": self.query,
            "form": self.form,
            "json": self.json,
            "via_proxy": self.via_proxy,
        }


@dataclass
class _Injection:
    faults: tuple[str, ...]
    remaining: int


@dataclass
class State:
    settings: SandboxSettings = field(default_factory=SandboxSettings)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)
    injections: dict[str, list[_Injection]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def issue_token(self, site: str) -> str:
        nonce = secrets.token_hex(5)
        with self.lock:
            self.tokens.setdefault(site, {})[nonce] = time.monotonic() + self.settings.token_ttl
        return nonce

    def token_valid(self, site: str, nonce: str | None) -> bool:
        if not nonce:
            return False
        with self.lock:
            expiry = self.tokens.get(site, {}).get(nonce)
        return expiry is not None and time.monotonic() < expiry

    def expire_tokens(self, site: str | None = None) -> None:
        with self.lock:
            if site is None:
                self.tokens.clear()
            else:
                self.tokens.pop(site, None)

    def inject(self, site: str, faults: tuple[str, ...], times: int) -> None:
        with self.lock:
            self.injections.setdefault(site, []).append(_Injection(faults, times))

    def take_injected(self, site: str) -> set[str]:
        """Faults for this chat request; each injection counts one use down."""
        with self.lock:
            active = self.injections.get(site, [])
            found: set[str] = set()
            for inj in active:
                found.update(inj.faults)
                inj.remaining -= 1
            self.injections[site] = [i for i in active if i.remaining > 0]
        return found

    def pending(self) -> list[tuple[str, tuple[str, ...], int]]:
        """The injected faults still waiting: (site, faults, requests left), oldest first."""
        with self.lock:
            return [(site, i.faults, i.remaining) for site, injs in self.injections.items() for i in injs]

    def clear_faults(self) -> int:
        """Forget the injected faults still waiting; returns how many there were."""
        with self.lock:
            count = sum(len(injs) for injs in self.injections.values())
            self.injections.clear()
        return count

    def record(self, rec: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(rec)

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)

    def clear(self) -> None:
        """Forget recorded requests and faults still waiting to be injected."""
        with self.lock:
            self.requests.clear()
            self.injections.clear()
