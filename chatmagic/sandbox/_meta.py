"""What local servers say about their model: token endpoints, the template, the window.

Served at the paths the real servers use, below the site's root (not under ``/v1``):

- llama.cpp (site ``llamacpp``, or the mode ``llama_server``), tools/server/README.md:
  ``POST /tokenize`` ``{"content", "add_special": false, "parse_special": true,
  "with_pieces": false}`` -> ``{"tokens": [ids]}`` or ``[{"id", "piece"}]`` (no ``content``:
  ``{"tokens": []}``, as llama-server answers a body it cannot read);
  ``POST /detokenize`` ``{"tokens"}`` -> ``{"content"}``;
  ``POST /apply-template`` ``{"messages", "tools"?}`` -> ``{"prompt"}`` (the templated text
  without the BOS); ``GET /props`` (``default_generation_settings.n_ctx``, ``total_slots``,
  ``model_path``, ``chat_template``, ``chat_template_caps``, ``modalities``,
  ``build_info``, ``bos_token``, ``eos_token``, ``is_sleeping``); ``/v1/models`` entries
  carry ``meta`` (``n_ctx_train``: what the model was trained for, not the served window).
- vLLM (site ``vllm``, or the mode ``vllm``), ``TokenizeCompletionRequest`` /
  ``TokenizeChatRequest`` / ``TokenizeResponse`` in vllm/entrypoints/openai/protocol.py:
  ``POST /tokenize`` ``{"prompt", "add_special_tokens": true}`` or ``{"messages", "tools"?,
  "add_generation_prompt": true, "add_special_tokens": false, "return_token_strs": false}``
  -> ``{"count", "max_model_len", "tokens", "token_strs"}``; ``POST /detokenize``
  ``{"tokens"}`` -> ``{"prompt"}``; ``/v1/models`` entries carry ``max_model_len``, ``root``,
  ``parent`` and ``permission``.
- Ollama (site ``ollama``), docs/api.md "Show Model Information": ``POST /api/show``
  ``{"model"}`` -> ``{"modelfile", "parameters", "template", "details", "model_info",
  "capabilities"}`` with ``model_info["llama.context_length"]``; an unknown model is a 404
  ``{"error": "model 'x' not found"}``.

Every count comes from ``_tokens`` and equals what a chat answer reports as
``usage.prompt_tokens`` for the same messages.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ._errors import api_error, flavour, window
from ._respond import JSON_TYPE, Ctx, dumps, send_text
from ._tokens import BOS, CHAT_TEMPLATE, EOS, IM_START, detokenize, render, tokenize
from ._validate import invalid

__all__ = ["ROUTES", "answer", "model_entry"]

_CREATED = 1_700_000_000
#: what the stand-in's model was "trained" for: larger than the window it serves, as on real servers
N_CTX_TRAIN = 131072
#: (method, path below the site) -> the flavour that serves it
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/tokenize"): "llamacpp vllm",
    ("POST", "/detokenize"): "llamacpp vllm",
    ("POST", "/apply-template"): "llamacpp",
    ("GET", "/props"): "llamacpp",
    ("POST", "/api/show"): "ollama",
}


def _json(obj: Any, status: int = 200) -> web.Response:
    return send_text(status, dumps(obj), JSON_TYPE)


def model_entry(ctx: Ctx, name: str) -> dict[str, Any]:
    """A ``/v1/models`` entry as the site's server lists it."""
    kind = flavour(ctx)
    if kind == "vllm":
        permission = {
            "id": "modelperm-sandbox",
            "object": "model_permission",
            "created": _CREATED,
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
        return {
            "id": name,
            "object": "model",
            "created": _CREATED,
            "owned_by": "vllm",
            "root": name,
            "parent": None,
            "max_model_len": window(ctx),
            "permission": [permission],
        }
    if kind == "llamacpp":
        meta = {
            "vocab_type": 2,
            "n_vocab": 128256,
            "n_ctx_train": N_CTX_TRAIN,
            "n_embd": 4096,
            "n_params": 8030261312,
            "size": 4912898304,
        }
        return {"id": name, "object": "model", "created": _CREATED, "owned_by": "llamacpp", "meta": meta}
    owner = "openai" if name.startswith(("gpt-", "o1", "o3", "o4")) else "library"
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": owner}


async def answer(ctx: Ctx, route: str) -> web.Response | None:
    """The answer of a metadata endpoint, or None when this site's server has no such path."""
    method = "POST" if ctx.request.method == "POST" else "GET"
    served = ROUTES.get((method, route))
    kind = flavour(ctx)
    if served is None or kind not in served.split():
        return None
    raw = await ctx.request.read()
    try:
        body: Any = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    if route == "/props":
        return _json(_props(ctx))
    if not isinstance(body, dict):
        return api_error(400, "Invalid JSON body", dialect="llama_server" if kind == "llamacpp" else None)
    if route == "/api/show":
        return _show(ctx, body)
    if kind == "vllm":
        return _vllm(ctx, route, body)
    return _llamacpp(route, body)


def _llamacpp(route: str, body: dict[str, Any]) -> web.Response:
    if route == "/tokenize":
        content = body.get("content")
        if not isinstance(content, str):
            return _json({"tokens": []})
        found = tokenize(
            content,
            add_special=body.get("add_special") is True,
            parse_special=body.get("parse_special") is not False,
        )
        if body.get("with_pieces") is True:
            return _json({"tokens": [{"id": i, "piece": p} for i, p in found]})
        return _json({"tokens": [i for i, _ in found]})
    if route == "/detokenize":
        tokens = body.get("tokens", [])
        text = (
            detokenize(tokens)
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)
            else None
        )
        if text is None:
            return api_error(
                400, "Invalid tokens: not ids this model's vocabulary has", dialect="llama_server"
            )
        return _json({"content": text})
    refused = invalid({"model": "any", **body}, "llama_server")
    if refused is not None:
        return refused
    return _json({"prompt": render(body["messages"], body.get("tools"))})


def _vllm(ctx: Ctx, route: str, body: dict[str, Any]) -> web.Response:
    def bad(message: str) -> web.Response:
        return _json(
            {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}, 400
        )

    if route == "/detokenize":
        tokens = body.get("tokens")
        text = (
            detokenize(tokens)
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)
            else None
        )
        return (
            bad("Invalid 'tokens': expected token ids of this model.")
            if text is None
            else _json({"prompt": text})
        )
    if isinstance(body.get("messages"), list):
        refused = invalid({"model": "any", **body})
        if refused is not None:
            return refused
        if body.get("continue_final_message") and body.get("add_generation_prompt"):
            return bad("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
        text = render(body["messages"], body.get("tools"), bos=True)
        if body.get("add_generation_prompt") is False or body.get("continue_final_message"):
            text = text.removesuffix(f"{IM_START}assistant\n")
        add_special = body.get("add_special_tokens") is True
    elif isinstance(body.get("prompt"), str):
        text, add_special = body["prompt"], body.get("add_special_tokens") is not False
    else:
        return bad("Either 'prompt' (a string) or 'messages' (a list) is required.")
    found = tokenize(text, add_special=add_special)
    strs = [p for _, p in found] if body.get("return_token_strs") is True else None
    return _json(
        {
            "count": len(found),
            "max_model_len": window(ctx),
            "tokens": [i for i, _ in found],
            "token_strs": strs,
        }
    )


def _props(ctx: Ctx) -> dict[str, Any]:
    n_ctx = window(ctx)
    params = {
        "n_predict": -1,
        "seed": 4294967295,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.05,
        "max_tokens": -1,
        "n_keep": 0,
        "stream": True,
        "samplers": ["top_k", "top_p", "min_p", "temperature"],
    }
    caps = {
        "supports_tools": True,
        "supports_tool_calls": True,
        "supports_tool_responses": True,
        "supports_system_role": True,
        "supports_parallel_tool_calls": True,
        "requires_typed_content": False,
    }
    return {
        "default_generation_settings": {
            "id": 0,
            "id_task": -1,
            "n_ctx": n_ctx,
            "speculative": False,
            "is_processing": False,
            "params": params,
            "prompt": "",
            "next_token": {
                "has_next_token": True,
                "has_new_line": False,
                "n_remain": -1,
                "n_decoded": 0,
                "stopping_word": "",
            },
        },
        "total_slots": 1,
        "model_path": "models/sandbox-toy-8B-Q4_K_M.gguf",
        "chat_template": CHAT_TEMPLATE,
        "chat_template_caps": caps,
        "modalities": {"vision": False},
        "bos_token": BOS,
        "eos_token": EOS,
        "build_info": "b0000-sandbox",
        "is_sleeping": False,
    }


def _show(ctx: Ctx, body: dict[str, Any]) -> web.Response:
    name = body.get("model", body.get("name"))
    models = ctx.settings.openai_models
    if not isinstance(name, str) or (name not in models and name.removesuffix(":latest") not in models):
        return _json({"error": f"model '{name}' not found"}, 404)
    info = {
        "general.architecture": "llama",
        "general.file_type": 2,
        "general.parameter_count": 8030261248,
        "general.quantization_version": 2,
        "llama.block_count": 32,
        "llama.context_length": window(ctx),
        "llama.embedding_length": 4096,
        "llama.vocab_size": 128256,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.model": "gpt2",
    }
    return _json(
        {
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
            "parameters": 'stop                           "<|im_end|>"',
            "template": "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
            "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "8.0B",
                "quantization_level": "Q4_0",
            },
            "model_info": info,
            # the stand-in's gpt-4o models see images, as a vision model does; llama3.2 does not
            "capabilities": ["completion", "tools", *(["vision"] if name.startswith("gpt-4o") else [])],
            "modified_at": "2025-01-01T00:00:00Z",
        }
    )
