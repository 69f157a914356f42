"""Before a prepared turn goes: its glass box, and whether it may go.

Core layer (no IPython, no widgets, no HTML), above the session: the skins call it between
``ChatSession.prepare`` and ``ChatSession.start``, so one rule decides for a cell, the
terminal and ``%chat context`` alike.

:func:`check` takes a prepared :class:`~chatmagic.session.Turn` apart into the parts of
:mod:`chatmagic.anatomy` (system prompt, each earlier exchange kept, the earlier ones the
history budget left out, each ``--context`` item, attachments, tool schemas, the prompt),
counts them (:mod:`chatmagic.tokens`), finds the model's window (the server's word where it
says, :mod:`chatmagic.providers.window`; else ``context_window`` of the endpoint), prices it
with the user's :class:`~chatmagic.budget.Limits` and decides (:func:`chatmagic.budget.decide`). The result is
kept on the turn (``turn.anatomy``): after the turn, its total beside the server's usage is
what the record keeps (``estimated_prompt_tokens``).

The server's own tokenizer (llama.cpp, vLLM) costs a request: :func:`check` asks it when told
(``%chat context``, ``--dry-run``), and before a turn only when the offline count is within
:data:`NEAR` of a limit (:data:`NEAR_ESTIMATE` for a "≈" estimate), where a few tokens
decide. The window is asked once per server and model, and only for a request of
:data:`PROBE_ABOVE` tokens or more (a shorter one fits every window), or by a dry run. Nothing
asks OpenAI's own API (it says nothing about windows). A web site's provider has no server to
ask: its window is unknown unless configured.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._text import CUT_MARK, cut_end
from .anatomy import Anatomy, Part, build, image_part, left_out, part
from .budget import Limits, price_for
from .compacted import summary_label
from .errors import ConfigurationError
from .providers import get_provider
from .providers.openai import OFFICIAL_HOST, OpenAICompatible
from .providers.window import UNKNOWN, Window, discover_window, known_window, server_count
from .session.run import provider_for
from .session.toolhistory import plain, shown_text
from .tokens import CHARS_PER_TOKEN, loaded, warm
from .trim import exchange_chars

if TYPE_CHECKING:
    from .session import Turn

__all__ = ["NEAR", "NEAR_ESTIMATE", "assemble", "check", "max_output_tokens", "parts_of", "sent_messages"]

#: the offline count within this share of a limit: ask the server's tokenizer before deciding
#: (a BPE of the model's family is close; characters / 4 can be half the truth: code, non-Latin text)
NEAR = 0.1
NEAR_ESTIMATE = 0.5
#: a request under this many tokens (characters / 4) fits every window servers serve (the
#: smallest defaults: Ollama's 2,048 or 4,096, llama.cpp's 4,096): a turn that short asks the
#: server for its window only when a dry run or ``%chat context`` has not already
PROBE_ABOVE = 1024
#: how long a turn waits for the server's window and count before going on without them
CHECK_TIMEOUT_S = 8.0


#: how many of the exchanges the history budget left out the glass box names one by one (the newest)
LEFT_OUT_SHOWN = 10


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
    *,
    wait: bool = True,
) -> list[Part]:
    """The turn's request in parts, in the order they are sent, with what was left out.

    ``sections``: the ``--context`` items as (title, text) as they were attached to the
    prompt (``context.Context.sections``); each becomes a part of its own and the prompt
    part is what remains of the message.
    """
    model = turn.model
    messages = sent_messages(turn)
    parts: list[Part] = []
    start = 0
    if messages and messages[0]["role"] == "system":
        parts.append(part("system", "system prompt", messages[0]["content"], model, wait=wait))
        start = 1
    dropped = turn.history_total - turn.history_sent
    if dropped > 0 and not turn.fresh:
        conv = turn.conversation
        earlier = conv.earlier(conv.replaced_key(turn.key))[:dropped]
        # the newest ones left out one by one; older ones in one line (a turn at exchange
        # 1,000 would otherwise draw, and pay for, a line per exchange it does not send)
        older, recent = earlier[:-LEFT_OUT_SHOWN], earlier[-LEFT_OUT_SHOWN:]
        if older:
            size = sum(exchange_chars(ex) for ex in older)
            label = f"exchanges 1–{len(older)} ({len(older)} earlier exchanges)"
            parts.append(left_out("exchange", label, size, "history budget"))
        for n, ex in enumerate(recent, len(older) + 1):
            size = exchange_chars(ex)
            parts.append(
                left_out("exchange", f"exchange {n}: {_preview(ex.user.content)}", size, "history budget")
            )
    # each kept exchange once: its user message and what answered it (with tool calls: the
    # assistant messages that made them and their answers too)
    kept: list[list[dict[str, Any]]] = []
    for m in messages[start:-1]:
        if m["role"] == "user" or not kept:
            kept.append([m])
        else:
            kept[-1].append(m)
    for i, exchange in enumerate(kept):
        user = shown_text(exchange[0])
        label = f"exchange {dropped + i + 1}: {summary_label(turn.conversation, user) or _preview(user)}"
        text = "".join(shown_text(m) for m in exchange)
        parts.append(part("exchange", label, text, model, wait=wait))
    prompt = turn.prompt
    for title, text in sections:
        block = f"### {title}\n{text}"
        prompt = prompt.replace(block, "", 1)
        note = "cut to fit its budget" if CUT_MARK.search(text) else ""
        parts.append(part("context", f"--context: {title}", block, model, note=note, wait=wait))
    note = "with the context's preamble" if sections else ""
    for a in getattr(turn.options, "attachments", ()) or ():
        # describe() already says how the image was fitted (downscaled from ...)
        parts.append(image_part(f"attached {a.describe()}", len(a.data)))
    if tools:
        text = json.dumps(list(tools), ensure_ascii=False)
        parts.append(part("tools", f"tool schemas ({len(tools)})", text, model, wait=wait))
    parts.append(part("prompt", "your message", prompt, model, note=note, wait=wait))
    return parts


def _preview(text: str, width: int = 40) -> str:
    return cut_end(" ".join(text.split()), width)


def sent_messages(turn: Turn) -> list[dict[str, Any]]:
    """The messages as the turn's provider is sent them: earlier tool calls as text where it
    takes none (chatmagic.session.toolhistory, as chatmagic.session.run sends them)."""
    takes_tools = getattr(get_provider(turn.provider), "supports_tools", False)
    return turn.messages if takes_tools else plain(turn.messages)


def _counted_messages(turn: Turn) -> list[dict[str, Any]]:
    """The messages as counted: each attached image as an image part of the prompt."""
    messages: list[dict[str, Any]] = list(sent_messages(turn))
    attached = getattr(turn.options, "attachments", ()) or ()
    if attached and messages:
        last = messages[-1]
        content = [{"type": "text", "text": last["content"]}] + [{"type": "image_url"} for _ in attached]
        messages[-1] = {**last, "content": content}
    return messages


#: the window of a web site's chat: it says nothing, and no setting names it
SITE_UNKNOWN = Window(None, "a web site's chat does not say")


def _is_openai_compatible(provider: str) -> bool:
    cls = get_provider(provider)
    return isinstance(cls, type) and issubclass(cls, OpenAICompatible)


def _address(turn: Turn) -> tuple[str | None, int | None]:
    """The OpenAI-compatible server behind the turn's provider (None: a web site, or OpenAI's
    own API, which says nothing about windows) and the window its endpoint configures. Read
    without the session's loop: a short turn asks no one anything."""
    cls = get_provider(turn.provider)
    configured = getattr(cls, "context_window", None)
    if not (isinstance(cls, type) and issubclass(cls, OpenAICompatible)):
        return None, configured
    base = (turn.options.base_url or turn.session.base_url_for(cls.name) or cls.url).rstrip("/")
    parts = urlsplit(base)
    if parts.hostname == OFFICIAL_HOST:
        return None, configured
    if parts.username is not None or parts.password is not None:  # as the provider keeps it
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        base = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return base, configured


def _headers(turn: Turn) -> dict[str, str]:
    """What the provider sends to authenticate (its key, or the base URL's user and password)."""
    provider: Any = provider_for(turn, turn.provider)
    try:
        return dict(provider._headers(provider.api_key()))
    except ConfigurationError:  # the turn itself will say what is wrong with the key
        return {}


def assemble(
    turn: Turn,
    sections: Sequence[tuple[str, str]] = (),
    tools: Sequence[Mapping[str, Any]] | None = None,
    limits: Limits | None = None,
    *,
    window: Window = UNKNOWN,
    server_tokens: int | None = None,
    wait: bool = True,
    detail: bool = True,
) -> Anatomy:
    """The glass box from what is known without asking anyone (and what the server said).

    ``detail=False``: the total, window, cost and decision only, no parts (a turn that fits
    shows no glass box; counting each earlier exchange apart would cost it time that grows
    with the conversation)."""
    limits = limits or Limits()
    model = turn.model
    return build(
        turn.provider,
        model,
        parts_of(turn, sections, tools, wait=wait) if detail else (),
        messages=_counted_messages(turn),
        tools=tools,
        server_tokens=server_tokens,
        window=window,
        price=price_for(limits.prices, model) if model else None,
        max_output_tokens=max_output_tokens(_params(turn)),
        max_input_tokens=limits.max_input_tokens,
        max_cost=limits.max_cost,
        wait=wait,
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
    """The glass box of a prepared turn, kept on it as ``turn.anatomy``.

    Called from the cell's thread: the network (the window, the server's count) goes through
    the session's loop; the counting is done here, so a long count never holds up a reply
    streaming on that loop. ``ask_server``: True (a dry run, ``%chat context``) asks the
    server for its window and its tokenizer (llama.cpp, vLLM) for the total; False never
    asks for the count; None asks for it only when the offline count is within :data:`NEAR`
    of the window or the budget. A turn asks for the window only at :data:`PROBE_ABOVE`
    tokens or more (once per server and model); below, it uses one found earlier, or the
    configured one.
    """
    limits = limits or Limits()
    runner = turn.session.runner
    look = bool(ask_server)
    base_url, configured = _address(turn)
    window = Window(configured, "config") if configured else UNKNOWN
    if base_url is None and not configured and not _is_openai_compatible(turn.provider):
        window = SITE_UNKNOWN  # a web site's chat: no setting of ours can tell it
    if base_url is not None:
        found = known_window(base_url, turn.model)
        # a short request fits every window a server serves: it asks the server nothing
        if found is None and (look or _estimate(turn, tools) >= PROBE_ABOVE):
            probe = discover_window(base_url, turn.model, configured=configured, headers=_headers(turn))
            found = _run(runner, probe, timeout)
        window = found or window
    # the offline BPE only when it matters now: asked for (a dry run), a window or a budget to
    # check; otherwise "≈" until a thread has loaded it (the first turn never waits for it)
    wait = bool(look or window.tokens or limits.max_input_tokens or limits.max_cost)
    if not wait and not loaded(turn.model):
        warm(turn.model)
    anatomy = assemble(turn, sections, tools, limits, window=window, wait=wait, detail=look)
    # images: the server's template may not take them, and their tokens are estimates anyway
    if (
        base_url is not None
        and window.kind in ("llamacpp", "vllm")
        and not _has_images(_counted_messages(turn))
    ):
        if ask_server is None:
            near = NEAR if anatomy.total.exact else NEAR_ESTIMATE
            most_out = max_output_tokens(_params(turn)) or 0
            bounds = [x for x in (window.tokens, limits.max_input_tokens) if x]
            ask_server = any(anatomy.total.tokens + most_out >= x * (1 - near) for x in bounds)
        if ask_server:
            ask = server_count(
                base_url, turn.model, window.kind, turn.messages, tools, headers=_headers(turn)
            )
            counted = _run(runner, ask, timeout)
            if counted is not None:
                anatomy = assemble(
                    turn,
                    sections,
                    tools,
                    limits,
                    window=window,
                    server_tokens=counted,
                    wait=wait,
                    detail=look,
                )
    if not anatomy.parts and not (anatomy.decision is None or anatomy.decision.fits):
        # it will be shown (asked over budget, refused over the window): every part, counted;
        # the total, cost and decision stand as they are (they come from the messages)
        anatomy = dataclasses.replace(anatomy, parts=tuple(parts_of(turn, sections, tools, wait=wait)))
    turn.anatomy = anatomy
    return anatomy


def _estimate(turn: Turn, tools: Sequence[Mapping[str, Any]] | None) -> int:
    """The request's size in "≈" tokens (characters / 4): cheap, for deciding what to ask."""
    chars = sum(len(shown_text(m)) for m in turn.messages) + len(json.dumps(list(tools or [])))
    return chars // CHARS_PER_TOKEN


def _run(runner: Any, coro: Any, timeout: float) -> Any:
    """``coro`` on the session's loop; None when it takes over ``timeout`` (the server's word is a
    convenience: the turn goes on with what is known here)."""
    future = runner.submit(coro)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return None
