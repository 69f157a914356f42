"""Before a prepared turn goes: its glass box, and whether it may go.

Core layer (no IPython, no widgets, no HTML), above the session: the skins call it between
``ChatSession.prepare`` and ``ChatSession.start``, so one rule decides for a cell, the
terminal and ``%chat context`` alike.

:func:`check` takes a prepared :class:`~chatmagic.session.Turn` apart into the parts of
:mod:`chatmagic.anatomy` (system prompt, each earlier exchange kept, the earlier ones the
history budget left out, each ``--context`` item, attachments, tool schemas, the prompt),
counts them (:mod:`chatmagic.tokens`), finds the model's window (the server's word where it
says, :mod:`chatmagic.providers.window`; else ``context_window`` of the endpoint), prices it
with the user's :class:`Limits` and decides (:func:`chatmagic.budget.decide`). The result is
kept on the turn (``turn.anatomy``): after the turn, its total beside the server's usage is
what the record keeps (``estimated_prompt_tokens``).

The server's own tokenizer (llama.cpp, vLLM) costs a request: :func:`check` asks it when told
(``%chat context``, ``--dry-run``), and before a turn only when the offline count is within
:data:`NEAR` of a limit (:data:`NEAR_ESTIMATE` for a "≈" estimate), where a few tokens
decide. Nothing else waits on the network once a window is known (it is cached per server
and model), and nothing asks OpenAI's own API (it says nothing about windows). A web site's
provider has no server to ask: its window is unknown unless configured.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .anatomy import Anatomy, Part, build, image_part, left_out, part
from .budget import Limits, price_for
from .errors import ConfigurationError
from .providers.openai import OpenAICompatible
from .providers.window import UNKNOWN, Window, discover_window, server_count
from .tokens import count_messages

if TYPE_CHECKING:
    from .session import Turn

__all__ = ["NEAR", "NEAR_ESTIMATE", "assemble", "check", "max_output_tokens", "parts_of", "survey_turn"]

#: the offline count within this share of a limit: ask the server's tokenizer before deciding
#: (a BPE of the model's family is close; characters / 4 can be half the truth: code, non-Latin text)
NEAR = 0.1
NEAR_ESTIMATE = 0.5
#: how long a turn waits for the server's window and count before going on without them
CHECK_TIMEOUT_S = 8.0


def max_output_tokens(params: Mapping[str, Any]) -> int | None:
    """The most a reply may be, when the request says (``max_tokens``, ``max_completion_tokens``)."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def parts_of(
    turn: Turn,
    sections: Sequence[tuple[str, str]] = (),
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> list[Part]:
    """The turn's request in parts, in the order they are sent, with what was left out.

    ``sections``: the ``--context`` items as (title, text) as they were attached to the
    prompt (``context.Context.sections``); each becomes a part of its own and the prompt
    part is what remains of the message.
    """
    model = turn.model
    messages = turn.messages
    parts: list[Part] = []
    start = 0
    if messages and messages[0]["role"] == "system":
        parts.append(part("system", "system prompt", messages[0]["content"], model))
        start = 1
    dropped = turn.history_total - turn.history_sent
    if dropped > 0 and not turn.fresh:
        conv = turn.conversation
        earlier = conv.earlier(conv.replaced_key(turn.key))
        for n, ex in enumerate(earlier[:dropped], 1):
            size = len(ex.user.content) + len(ex.assistant.content)
            parts.append(
                left_out("exchange", f"exchange {n}: {_preview(ex.user.content)}", size, "history budget")
            )
    kept = messages[start:-1]
    for i in range(0, len(kept) - 1, 2):
        user, reply = kept[i]["content"], kept[i + 1]["content"]
        label = f"exchange {dropped + i // 2 + 1}: {_preview(user)}"
        parts.append(part("exchange", label, user + reply, model))
    prompt = turn.prompt
    for title, text in sections:
        block = f"### {title}\n{text}"
        prompt = prompt.replace(block, "", 1)
        note = "cut to fit its budget" if "characters of" in text and "left out" in text else ""
        parts.append(part("context", f"--context: {title}", block, model, note=note))
    note = "with the context's preamble" if sections else ""
    for a in getattr(turn.options, "attachments", ()) or ():
        parts.append(image_part(f"attached {a.describe()}", len(a.data), a.note))
    if tools:
        text = json.dumps(list(tools), ensure_ascii=False)
        parts.append(part("tools", f"tool schemas ({len(tools)})", text, model))
    parts.append(part("prompt", "your message", prompt, model, note=note))
    return parts


def _preview(text: str, width: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _counted_messages(turn: Turn) -> list[dict[str, Any]]:
    """The messages as counted: each attached image as an image part of the prompt."""
    messages: list[dict[str, Any]] = list(turn.messages)
    attached = getattr(turn.options, "attachments", ()) or ()
    if attached and messages:
        last = messages[-1]
        content = [{"type": "text", "text": last["content"]}] + [{"type": "image_url"} for _ in attached]
        messages[-1] = {**last, "content": content}
    return messages


async def _server(turn: Turn) -> tuple[str | None, dict[str, str], int | None]:
    """The OpenAI-compatible server behind the turn's provider: its address, headers and the
    configured window (address None: a web site, or OpenAI's own API, which says nothing)."""
    provider = await turn.session._provider_for(turn, turn.provider)
    configured = getattr(type(provider), "context_window", None)
    if not isinstance(provider, OpenAICompatible) or provider.is_official:
        return None, {}, configured
    try:
        headers = provider._headers(provider.api_key())
    except ConfigurationError:  # the turn itself will say what is wrong with the key
        headers = {}
    return provider.site, headers, configured


async def survey_turn(
    turn: Turn,
    *,
    sections: Sequence[tuple[str, str]] = (),
    tools: Sequence[Mapping[str, Any]] | None = None,
    limits: Limits | None = None,
    ask_server: bool | None = None,
) -> Anatomy:
    """The glass box of a prepared turn, on the session's loop.

    ``ask_server``: True asks the server's tokenizer (llama.cpp, vLLM) for the total, False
    never, None only when the offline count is within :data:`NEAR` of the window or budget.
    """
    limits = limits or Limits()
    messages = _counted_messages(turn)
    base_url, headers, configured = await _server(turn)
    if base_url is None:
        window = Window(configured, "config") if configured else UNKNOWN
    else:
        window = await discover_window(base_url, turn.model, configured=configured, headers=headers)
    counted = None
    # images: the server's template may not take them, and their tokens are estimates anyway
    if base_url is not None and window.kind in ("llamacpp", "vllm") and not _has_images(messages):
        if ask_server is None:
            local = count_messages(messages, turn.model, tools)
            near = NEAR if local.exact else NEAR_ESTIMATE
            most_out = max_output_tokens(_params(turn)) or 0
            bounds = [x for x in (window.tokens, limits.max_input_tokens) if x]
            ask_server = any(local.tokens + most_out >= x * (1 - near) for x in bounds)
        if ask_server:
            counted = await server_count(
                base_url, turn.model, window.kind, turn.messages, tools, headers=headers
            )
    return assemble(turn, sections, tools, limits, window=window, server_tokens=counted)


def assemble(
    turn: Turn,
    sections: Sequence[tuple[str, str]] = (),
    tools: Sequence[Mapping[str, Any]] | None = None,
    limits: Limits | None = None,
    *,
    window: Window = UNKNOWN,
    server_tokens: int | None = None,
) -> Anatomy:
    """The glass box from what is known without asking anyone (and what the server said)."""
    limits = limits or Limits()
    model = turn.model
    return build(
        turn.provider,
        model,
        parts_of(turn, sections, tools),
        messages=_counted_messages(turn),
        tools=tools,
        server_tokens=server_tokens,
        window=window,
        price=price_for(limits.prices, model) if model else None,
        max_output_tokens=max_output_tokens(_params(turn)),
        max_input_tokens=limits.max_input_tokens,
        max_cost=limits.max_cost,
    )


def _params(turn: Turn) -> dict[str, Any]:
    return {**turn.session.default_params, **(turn.options.params or {})}


def _has_images(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) for m in messages)


def check(
    turn: Turn,
    *,
    sections: Sequence[tuple[str, str]] = (),
    tools: Sequence[Mapping[str, Any]] | None = None,
    limits: Limits | None = None,
    ask_server: bool | None = None,
    timeout: float = CHECK_TIMEOUT_S,
) -> Anatomy:
    """:func:`survey_turn` from the caller's thread (a cell), kept on the turn as ``turn.anatomy``."""
    coro = survey_turn(turn, sections=sections, tools=tools, limits=limits, ask_server=ask_server)
    future = turn.session.runner.submit(coro)
    try:
        anatomy = future.result(timeout)
    except concurrent.futures.TimeoutError:
        # the server's word is a convenience: go on with what is known here
        future.cancel()
        anatomy = assemble(turn, sections, tools, limits)
    turn.anatomy = anatomy  # type: ignore[attr-defined]
    return anatomy
