"""Named OpenAI-compatible endpoints: presets for the common local servers, and your own.

Each endpoint is a provider name, usable wherever one is (``-p ollama -m llama3.2``, chains
``-p work,ollama``, ``%chat models ollama``, the panel):

======== =========== ============================== ==================
name     server      address                        key variable
======== =========== ============================== ==================
ollama   Ollama      ``http://localhost:11434/v1``  ``OLLAMA_API_KEY``
llamacpp llama.cpp   ``http://localhost:8080/v1``   ``LLAMA_API_KEY``
vllm     vLLM        ``http://localhost:8000/v1``   ``VLLM_API_KEY``
lmstudio LM Studio   ``http://localhost:1234/v1``   ``LMSTUDIO_API_KEY``
======== =========== ============================== ==================

A key is sent only when its variable is set (local servers want none unless started with
one). Your own come from ``%config ChatMagics.endpoints = {"work": {"base_url":
"https://llm.example.com/v1", "key_env": "WORK_KEY"}}`` (or :func:`configure_endpoints`);
one named like a preset replaces it. ``ChatMagics.base_urls`` still overrides an endpoint's
address, as for every provider (the tests point the presets at the local stand-in so).

Every key variable is registered as a secret (:func:`chatmagic._secrets.register_key_env`):
its value is removed from everything shown and sent.

Endpoints are not in :func:`chatmagic.providers.provider_names` (the provider classes);
:func:`chatmagic.providers.get_provider` and ``list_providers`` find them here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._secrets import register_key_env, strip_userinfo
from ..errors import ConfigurationError
from ..options import check_base_url
from ._builtin import BUILTIN
from .window import check_context_window

if TYPE_CHECKING:
    from .openai import OpenAICompatible

__all__ = [
    "PRESETS",
    "Endpoint",
    "check_endpoints",
    "configure_endpoints",
    "endpoint_names",
    "find_endpoint",
]


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server under a provider name."""

    name: str
    base_url: str
    #: the environment variable holding its API key; None: never send one
    key_env: str | None = None
    label: str = ""
    #: the model used when none is given; "" asks the server (its first model)
    default_model: str = ""
    #: names shown by %chat providers (the server's own list is what counts: %chat models)
    models: tuple[str, ...] = ()
    #: the models' context window in tokens, for servers that do not say (providers/window.py)
    context_window: int | None = None


PRESETS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY", "Ollama", "llama3.2", ("llama3.2",)
        ),
        Endpoint("llamacpp", "http://localhost:8080/v1", "LLAMA_API_KEY", "llama.cpp"),
        Endpoint("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", "vLLM"),
        Endpoint("lmstudio", "http://localhost:1234/v1", "LMSTUDIO_API_KEY", "LM Studio"),
    )
}

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELDS = ("base_url", "key_env", "label", "default_model", "models", "context_window")

_lock = threading.Lock()
_user: dict[str, Endpoint] = {}
_classes: dict[Endpoint, type[OpenAICompatible]] = {}


def check_endpoints(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``ChatMagics.endpoints`` checked: every name and field, with a message that says what to write."""
    example = "{'work': {'base_url': 'https://llm.example.com/v1', 'key_env': 'WORK_KEY'}}"
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"ChatMagics.endpoints must be a dict, e.g. {example}.")
    checked: dict[str, dict[str, Any]] = {}
    for raw_name, spec in config.items():
        name = str(raw_name).strip().lower()
        if not _NAME.match(name):
            raise ConfigurationError(
                f"Endpoint name {raw_name!r}: use lower-case letters, digits, '-' and '_', starting with a letter."
            )
        if name in BUILTIN:
            raise ConfigurationError(
                f"Endpoint name {name!r} is a built-in provider: call your endpoint something else."
            )
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"Endpoint {name!r} must be a dict of settings, e.g. {example}.")
        unknown = sorted(set(spec) - set(_FIELDS))
        if unknown:
            raise ConfigurationError(
                f"Endpoint {name!r} has unknown settings {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(_FIELDS)}."
            )
        if "base_url" not in spec and name not in PRESETS:
            raise ConfigurationError(f"Endpoint {name!r} needs a base_url, e.g. {example}.")
        out: dict[str, Any] = {}
        if "base_url" in spec:
            if not isinstance(spec["base_url"], str):
                raise ConfigurationError(f"Endpoint {name!r}: base_url must be text, e.g. {example}.")
            out["base_url"] = check_base_url(spec["base_url"])
        key_env = spec.get("key_env")
        if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.match(key_env)):
            raise ConfigurationError(
                f"Endpoint {name!r}: key_env names the environment variable holding the key, e.g. "
                f"'WORK_KEY' (got {key_env!r}); the key itself never goes into the configuration."
            )
        if "key_env" in spec:
            out["key_env"] = key_env
        for text_field in ("label", "default_model"):
            if text_field in spec:
                if not isinstance(spec[text_field], str):
                    raise ConfigurationError(f"Endpoint {name!r}: {text_field} must be text.")
                out[text_field] = spec[text_field]
        if "models" in spec:
            models = spec["models"]
            if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
                raise ConfigurationError(f"Endpoint {name!r}: models must be a list of model names.")
            out["models"] = tuple(models)
        if "context_window" in spec:
            out["context_window"] = check_context_window(
                spec["context_window"], f"Endpoint {name!r}: context_window"
            )
        checked[name] = out
    return checked


def configure_endpoints(config: Mapping[str, Any]) -> None:
    """Make ``config`` (as ``ChatMagics.endpoints``) the user's endpoints; those not in it are gone."""
    checked = check_endpoints(config)
    endpoints: dict[str, Endpoint] = {}
    for name, spec in checked.items():
        preset = PRESETS.get(name)
        base = preset or Endpoint(name, spec["base_url"], label=name)
        endpoints[name] = Endpoint(
            name,
            spec.get("base_url", base.base_url),
            spec.get("key_env", base.key_env),
            spec.get("label", base.label),
            spec.get("default_model", base.default_model),
            spec.get("models", base.models),
            spec.get("context_window", base.context_window),
        )
    for endpoint in endpoints.values():
        if endpoint.key_env:
            register_key_env(endpoint.key_env)
    with _lock:
        _user.clear()
        _user.update(endpoints)


def endpoint_names() -> list[str]:
    """The presets and the user's endpoints, sorted."""
    with _lock:
        return sorted({*PRESETS, *_user})


def find_endpoint(name: str) -> type[OpenAICompatible] | None:
    """The provider class of endpoint ``name`` (the user's first, then the presets), or None."""
    key = name.strip().lower()
    with _lock:
        endpoint = _user.get(key) or PRESETS.get(key)
        if endpoint is None:
            return None
        cls = _classes.get(endpoint)
        if cls is None:
            cls = _classes[endpoint] = _make_class(endpoint)
        return cls


def _make_class(endpoint: Endpoint) -> type[OpenAICompatible]:
    from .openai import OpenAICompatible

    if endpoint.key_env:
        register_key_env(endpoint.key_env)
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"The OpenAI-compatible server {endpoint.label or endpoint.name} at "
        f"{strip_userinfo(endpoint.base_url)}.",
        "name": endpoint.name,
        "label": endpoint.label or endpoint.name,
        "url": endpoint.base_url.rstrip("/"),
        "key_env": endpoint.key_env,
        "default_model": endpoint.default_model,
        "models": endpoint.models,
        "context_window": endpoint.context_window,
        "model_aliases": {},
    }
    class_name = "Endpoint_" + re.sub(r"\W", "_", endpoint.name)
    return type(class_name, (OpenAICompatible,), attrs)
