"""The glass box's data: a request taken apart before it is sent, and its plain-text drawing.

Core layer: no IPython, no widgets, no HTML (the HTML drawing belongs to the look,
``present``, after the restructure; it reads the same :class:`Anatomy`).

An :class:`Anatomy` lists the request's parts in the order they are sent (system prompt,
each earlier exchange kept, each ``--context`` item, attachments, tool schemas, the prompt)
and what was left out and why (the history budget, a cut), each with its characters and
tokens (a :class:`chatmagic.tokens.Count`, which says how it was counted); then the whole
request's tokens (the server's count when it gave one, else the BPE or estimate with the
chat overhead), the model's context window and where it came from, the share used, the
estimated cost when a price is known, and the budget's decision.

The status line keeps two numbers apart, and this module gives only the first: *this
request's* tokens against the window (:attr:`Anatomy.status`). The conversation's cumulative
usage (``%chat usage``) is summed from the server's reports and is never shown as context.

Integration:

- ``%chat context [NAME]`` and ``%%chat --dry-run``: the session builds the request as for a
  turn (``ChatSession.prepare``), the skin turns its pieces into :func:`part` /
  :func:`left_out` / :func:`image_part` entries (the earlier exchanges from ``_context`` with
  the rest of ``conv.earlier`` as "left out: history budget", each ``--context`` item with
  its cut note from ``context.py``, attachments, ``tools``), and runs :func:`survey` on the
  session's runner loop with the provider's ``base_url`` and headers (None for a web site),
  the endpoint's ``context_window`` and the user's prices and budgets (:mod:`chatmagic.budget`):
  it asks the server for its window and its own count, then calls :func:`build`. The skin
  prints :meth:`Anatomy.text` (a terminal) or the look's HTML of the same object (a
  notebook). Nothing is sent.
- The budget pause: when :attr:`Anatomy.decision` is "over budget", the cell shows the glass
  box and waits on :mod:`chatmagic.pause` for Send anyway / Cancel; "cannot fit" refuses
  with :attr:`Decision.message <chatmagic.budget.Decision.message>`.
- After the turn, the record keeps :func:`chatmagic.tokens.versus_usage` of ``anatomy.total``
  and the server's ``usage.prompt_tokens``; with no one to ask, an over-budget turn is
  refused with :func:`chatmagic.budget.unattended`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .budget import Cost, Decision, Price, decide, estimate_cost
from .providers.window import Window, discover_window, server_count
from .tokens import IMAGE_TOKENS, Count, count_messages, count_text, encoding_for

__all__ = ["Anatomy", "Part", "build", "image_part", "left_out", "part", "survey", "with_estimate"]

#: the kinds of part, in the order a request sends them
KINDS = ("system", "exchange", "context", "attachment", "tools", "prompt")


@dataclass(frozen=True)
class Part:
    """One piece of a request: what it is, its size, and (when left out) why."""

    kind: str
    label: str
    chars: int
    #: None for a part left out (it costs nothing)
    tokens: Count | None
    note: str = ""

    @property
    def sent(self) -> bool:
        return self.tokens is not None


def part(kind: str, label: str, text: str, model: str, note: str = "", *, wait: bool = True) -> Part:
    """A part that is sent, its tokens counted as ``model`` counts them (BPE of its family, else "≈";
    ``wait=False``: "≈" while that BPE is still loading)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    return Part(kind, label, len(text), count_text(text, model, wait=wait), note)


def image_part(label: str, size_bytes: int, note: str = "") -> Part:
    """An image sent as an image part (a plot, an attachment): its bytes, and OpenAI's tile cost, estimated."""
    return Part("attachment", label, size_bytes, Count(IMAGE_TOKENS, "≈"), note)


def left_out(kind: str, label: str, chars: int, why: str) -> Part:
    """A part that is not sent, and why ("history budget", "over the window", ...)."""
    return Part(kind, label, chars, None, why)


@dataclass(frozen=True)
class Anatomy:
    provider: str
    model: str
    parts: tuple[Part, ...]
    #: the whole request as the model counts it (template and message overhead included)
    total: Count
    window: Window
    cost: Cost | None = None
    decision: Decision | None = None

    @property
    def sent_parts(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.sent)

    @property
    def overhead(self) -> int:
        """Tokens that belong to no part: the chat template's and each message's framing."""
        return self.total.tokens - sum(p.tokens.tokens for p in self.sent_parts if p.tokens is not None)

    @property
    def share(self) -> float | None:
        """The share of the context window this request fills (None: window unknown)."""
        return None if self.window.tokens is None else self.total.tokens / self.window.tokens

    @property
    def status(self) -> str:
        """This request's context for the status line: "1,234 of 32,768 tokens (3.8%)"."""
        if self.window.tokens is None:
            return f"{self.total} tokens in"
        return f"{self.total} of {self.window.tokens:,} tokens ({_pct(self.share)})"

    def context(self, prompt_tokens: int | None = None) -> str:
        """This request's context against the window, for the status line ("context 1,234 of
        32,768 tokens (3.8%)"): the server's ``prompt_tokens`` after the turn when it reported
        them, else the count made before sending."""
        tokens = f"{prompt_tokens:,}" if prompt_tokens is not None else str(self.total)
        if self.window.tokens is None:
            return f"context {tokens} tokens"
        used = (prompt_tokens if prompt_tokens is not None else self.total.tokens) / self.window.tokens
        return f"context {tokens} of {self.window.tokens:,} tokens ({_pct(used)})"

    def text(self) -> str:
        """The glass box for a terminal: a table of parts, then totals, window, cost, decision."""
        rows: list[tuple[str, str, str]] = []
        for p in self.parts:
            label = p.label if p.sent else f"left out: {p.label}"
            note = f" ({p.note})" if p.note else ""
            rows.append((label + note, f"{p.chars:,}", str(p.tokens) if p.tokens is not None else "-"))
        rows.append(("template and message overhead", "", f"{self.overhead:,}"))
        rows.append(("total", f"{sum(p.chars for p in self.sent_parts):,}", str(self.total)))
        width = max(len(r[0]) for r in rows)
        lines = [f"{self.provider} · {self.model}: the request as it will be sent (nothing sent)"]
        lines.append(f"  {'part'.ljust(width)}  {'chars':>9}  {'tokens':>9}")
        lines += [f"  {a.ljust(width)}  {b:>9}  {c:>9}" for a, b, c in rows]
        lines += [f"  {fact}" for fact in self.facts()]
        if self.decision is not None and not self.decision.fits:
            lines.append(f"  {self.decision.verdict}: {self.decision.message}")
        return "\n".join(lines)

    def facts(self) -> list[str]:
        """The lines under the table: how the tokens were counted, the window and share, the cost."""
        facts = [f"tokens counted by: {_how(self.total.how, self.model)}"]
        if self.window.tokens is None and self.window.source != "unknown":
            facts.append(f"context window: unknown ({self.window.source})")
        elif self.window.tokens is None:
            facts.append("context window: unknown (set context_window in ChatMagics.endpoints)")
        else:
            facts.append(
                f"context window: {self.window.tokens:,} tokens ({self.window.source}); "
                f"this request fills {_pct(self.share)}"
            )
        if self.cost is not None:
            facts.append(f"estimated cost: ${self.cost.usd:.4f} ({self.cost.how})")
        return facts


def build(
    provider: str,
    model: str,
    parts: Sequence[Part],
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    server_tokens: int | None = None,
    window: Window | None = None,
    price: Price | None = None,
    max_output_tokens: int | None = None,
    max_input_tokens: int = 0,
    max_cost: float = 0.0,
    wait: bool = True,
) -> Anatomy:
    """The glass box of a request: its parts, and its total, window, cost and decision.

    The total is the server's count when given (exact), else ``messages`` (+ ``tools``)
    counted with the chat overhead (:func:`chatmagic.tokens.count_messages`), else the sum
    of the parts with no overhead.
    """
    if server_tokens is not None:
        total = Count(server_tokens, "server")
    elif messages is not None:
        total = count_messages(messages, model, tools, wait=wait)
    else:
        total = sum((p.tokens for p in parts if p.tokens is not None), Count(0, "bpe"))
    window = window or Window(None, "unknown")
    cost = estimate_cost(total.tokens, price, max_output_tokens) if price is not None else None
    decision = decide(
        total.tokens,
        window=window.tokens,
        model=model,
        max_output_tokens=max_output_tokens,
        max_input_tokens=max_input_tokens,
        cost=cost,
        max_cost=max_cost,
    )
    return Anatomy(provider, model, tuple(parts), total, window, cost, decision)


async def survey(
    provider: str,
    model: str,
    parts: Sequence[Part],
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    base_url: str | None = None,
    configured_window: int | None = None,
    headers: Mapping[str, str] | None = None,
    price: Price | None = None,
    max_output_tokens: int | None = None,
    max_input_tokens: int = 0,
    max_cost: float = 0.0,
) -> Anatomy:
    """:func:`build`, after asking the server (an OpenAI-compatible ``base_url``) for its window and
    its own count; a web site's provider (no ``base_url``) gets the configured window or none."""
    if base_url is None:
        window = Window(configured_window, "config") if configured_window else Window(None, "unknown")
        counted = None
    else:
        window = await discover_window(base_url, model, configured=configured_window, headers=headers)
        counted = await server_count(base_url, model, window.kind, messages, tools, headers=headers)
    return build(
        provider,
        model,
        parts,
        messages=messages,
        tools=tools,
        server_tokens=counted,
        window=window,
        price=price,
        max_output_tokens=max_output_tokens,
        max_input_tokens=max_input_tokens,
        max_cost=max_cost,
    )


def with_estimate(usage: dict[str, int] | None, anatomy: Anatomy | None) -> dict[str, int] | None:
    """The server's usage with the count made before sending beside it (``estimated_prompt_tokens``):
    what the record keeps, so the difference stays known (None: the server reported nothing)."""
    if not usage or anatomy is None or not isinstance(usage.get("prompt_tokens"), int):
        return usage
    return {**usage, "estimated_prompt_tokens": anatomy.total.tokens}


def _pct(share: float | None) -> str:
    if share is None:
        return "?"
    return "under 0.1%" if 0 < share < 0.001 else f"{share:.1%}"


def _how(how: str, model: str) -> str:
    if how == "server":
        return "the server's own tokenizer (exact)"
    encoding = encoding_for(model)
    if how == "bpe":
        return f"offline BPE {encoding} + OpenAI's cookbook chat overhead (exact for OpenAI's models)"
    if how == "bpe≈":
        return f"offline BPE {encoding}; tool schemas or images estimated (≈)"
    if encoding is not None:
        return f"≈ an estimate: characters / 4 + 3 per message (the offline BPE {encoding} was still loading)"
    return "≈ an estimate: characters / 4 + 3 per message (no tokenizer known for this model)"
