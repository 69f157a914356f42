"""How a turn looks, wherever it is shown: one module draws it.

The cell display (``%%chat``), the terminal, the chat panel, ``%chat history`` and
``%chat export`` all take from here the heading of a reply (who answered, after which
failures and retries), its status line (waiting, streaming, how it ended), the wording of
its timings; the one stylesheet they carry is :mod:`chatmagic.style`. Nothing here imports
IPython or ipywidgets, and nothing renders model text: that is :mod:`chatmagic.render`
(sanitized Markdown).

Final status lines, as a cell shows them::

    chatgptt · gpt-4o · first text 120 ms · total 1.4 s
    opchatgpts · gpt-3.5-turbo (after chatgptes failed, 2 retries) · first text 1.1 s · total 3.0 s
    chatgptt · gpt-4o · ■ stopped · first text 90 ms · total 2.2 s
    chatgptt · gpt-4o · failed · the text above was not added to the conversation
    chatgptt · gpt-4o · failed · nothing was added
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._text import cut_start
from ._toolcards import card_plain, cards_html, state_words
from .code import INSERTED, code_of
from .compacted import label, originals, sent_note
from .errors import ConfigurationError
from .render import markdown_html

# the stylesheet is style's; the names stay here for the skins and tests that take them from present
from .style import CSS, FALLBACK_STYLE, FULL_STYLE, REPLY_CSS, STYLE, TABLE_STYLE

if TYPE_CHECKING:
    from .session import Conversation, Exchange, Turn

__all__ = [
    "CSS",
    "FALLBACK_STYLE",
    "FULL_STYLE",
    "HISTORY_LAST",
    "REPLY_CSS",
    "STYLE",
    "Status",
    "assistant_html",
    "cut_note",
    "earlier_note",
    "exchange_bundle",
    "exchange_head",
    "exchange_html",
    "exchange_markdown",
    "exchange_plain",
    "exchange_title",
    "final_status",
    "head",
    "outcome",
    "history_bundle",
    "plain_with_status",
    "seconds",
    "status_html",
    "streaming",
    "TABLE_STYLE",
    "table_bundle",
    "table_html",
    "thinking_html",
    "thinking_summary",
    "timing",
    "tokens_note",
    "usage_note",
    "user_html",
    "waiting",
]

#: the mark of a reply stopped before its end (cell, panel, history, export)
STOPPED_MARK = "■ stopped"


def seconds(value: float | None) -> str:
    """A duration as the status lines say it: ``850 ms``, ``2.3 s``, ``–`` when unknown."""
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def timing(first_text_s: float | None, total_s: float | None) -> str:
    return f"first text {seconds(first_text_s)} · total {seconds(total_s)}"


def head(turn: Turn) -> str:
    """Who answers: provider and model, and which providers of a chain failed first."""
    text = _who(turn.provider, turn.model)
    if turn.state == "failed":  # the error names each provider and its attempts
        return text
    notes = [f"{name} failed" for name, _ in turn.failures]
    # the retries of the providers that failed are theirs: only this one's are counted here
    own = turn.retries - sum(getattr(exc, "attempts", 1) - 1 for _, exc in turn.failures)
    if own > 0:
        notes.append(f"{own} {'retry' if own == 1 else 'retries'}")
    return text + (f" (after {', '.join(notes)})" if notes else "")


def _who(provider: str, model: str | None) -> str:
    # an endpoint asked for no model: its server chose, and did not say which
    return f"{provider} · {model}" if model else provider


def _notes(turn: Turn) -> str:
    """What else the status line says about the turn: how it ended beyond the timings (cut,
    tokens), what it carried (attachments, secrets redacted, earlier exchanges left out) and
    ``turn.notes`` (context added, replayed, ...)."""
    notes = []
    if turn.done:
        cut = cut_note(turn.finish_reason) if turn.cut else ""
        notes += [cut, tokens_note(turn)]
        if turn.code_to_cell and turn.state == "done":
            code = code_of(turn.text)
            if not code:
                notes.append("no code block to put in a new cell")
            elif INSERTED.is_new(turn.key, code):
                notes.append("code put in a new cell below")
            else:
                notes.append("the same code is already in the cell below")
    attached = getattr(turn.options, "attachments", ())
    if attached and not (turn.state == "failed" and isinstance(turn.error, ConfigurationError)):
        # a refused attachment (a provider that takes no image) was not attached
        notes.append("attached " + ", ".join(a.describe() for a in attached))
    notes += turn.notes
    # facts the core set while preparing the turn: said here, so a cell and the panel say them
    if turn.redacted:
        notes.append(f"redacted {', '.join(turn.redacted)}")
    if turn.history_sent < turn.history_total:
        notes.append(f"sent {turn.history_sent} of {turn.history_total} earlier exchanges")
    notes.append(sent_note(turn.conversation, turn.history_sent, turn.history_total))
    return "".join(f" · {note}" for note in notes if note)


def cut_note(finish_reason: str | None) -> str:
    """Why a reply is not whole, as the status line and the history say it."""
    reasons = {"length": "cut: token limit", "content_filter": "cut: content filter"}
    return reasons.get(finish_reason or "", f"cut: {finish_reason}")


def usage_note(usage: dict[str, int] | None) -> str:
    """``120 tokens in · 48 out`` (and the reasoning's share), or nothing when not reported."""
    if not usage:
        return ""
    parts = []
    if isinstance(usage.get("prompt_tokens"), int):
        parts.append(f"{usage['prompt_tokens']:,} tokens in")
    if isinstance(usage.get("completion_tokens"), int):
        parts.append(f"{usage['completion_tokens']:,} out")
    if isinstance(usage.get("reasoning_tokens"), int) and usage["reasoning_tokens"]:
        parts.append(f"{usage['reasoning_tokens']:,} thinking")
    return " · ".join(parts)


def tokens_note(turn: Turn) -> str:
    """Two numbers kept apart: this request's context (the glass box's count, or the server's
    once it reported one, against the window when it is known) and the reply's tokens; then
    what the conversation has used so far, as the servers reported it (``%chat usage``)."""
    usage, anatomy = turn.usage or {}, turn.anatomy
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else None
    if anatomy is None or (prompt is None and anatomy.window.tokens is None):
        return usage_note(turn.usage)  # a web site: neither the server's count nor a window to show
    parts = [anatomy.context(prompt)]
    rest = usage_note({k: v for k, v in usage.items() if k != "prompt_tokens"})
    parts += [rest] if rest else []
    total = turn.conversation.used_tokens()  # kept as exchanges join: no sum over them all per turn
    if total and len(turn.conversation) > 1:
        parts.append(f"conversation {total:,} tokens so far (%chat usage)")
    return " · ".join(parts)


def thinking_html(reasoning: str, *, streaming: bool = False, tail: int = 1500) -> str:
    """The collapsed "Thinking" block above an answer. While it streams, its last ``tail``
    characters (what is being thought now), open; once done, all of it, closed."""
    if not reasoning:
        return ""
    shown = cut_start(reasoning, tail) if streaming else reasoning
    words = html.escape(thinking_summary(reasoning, streaming=streaming))
    return (
        f'<details class="chatmagic-thinking"{" open" if streaming else ""}><summary>{words}</summary>'
        f'<div class="chatmagic-thinking-text">{html.escape(shown)}</div></details>'
    )


def thinking_summary(reasoning: str, *, streaming: bool = False) -> str:
    """The summary line of the Thinking block (text): what was thought, and whether it goes on."""
    return f"Thinking{'…' if streaming else ''} ({len(reasoning):,} characters)"


def waiting(turn: Turn) -> str:
    return f"{head(turn)} · waiting…{_notes(turn)}"


def streaming(turn: Turn) -> str:
    return f"{head(turn)} · streaming…"


@dataclass(frozen=True)
class Status:
    """A status line: its words, and ``kind`` "" (fine), "stopped" or "error"."""

    text: str
    kind: str = ""

    @property
    def css_class(self) -> str:
        return f"chatmagic-status chatmagic-{self.kind}" if self.kind else "chatmagic-status"


def final_status(turn: Turn) -> Status:
    """How a turn ended, in the words every skin uses."""
    lead, notes = head(turn), _notes(turn)
    if turn.state == "done":
        return Status(f"{lead} · {timing(turn.first_text_s, turn.total_s)}{notes}")
    if turn.state == "stopped":
        return Status(
            f"{lead} · {STOPPED_MARK} · {timing(turn.first_text_s, turn.total_s)}{notes}", "stopped"
        )
    kept = "the text above was not added to the conversation" if turn.text else "nothing was added"
    return Status(f"{lead} · failed · {kept}{notes}", "error")


def outcome(turn: Turn) -> str:
    """What an ended turn left on its conversation, in the sentence every skin says after a
    stop or a failure ("" for a whole reply). Read from ``turn.exchange``: the core's rule."""
    if turn.exchange is None:
        return "Nothing was added to the conversation."
    return (
        "The text so far is kept in the conversation, marked as stopped." if turn.state == "stopped" else ""
    )


def status_html(status: Status | str) -> str:
    if isinstance(status, str):
        status = Status(status)
    return f'<div class="{status.css_class}">{html.escape(status.text)}</div>'


def plain_with_status(text: str, status: str) -> str:
    """The plain-text form of a reply with its status line under it."""
    if not status:
        return text
    return f"{text}\n\n— {status}" if text else f"— {status}"


# -- exchanges in a transcript (panel, %chat history, export) -------------------------


def exchange_head(ex: Exchange) -> str:
    """The heading of a recorded reply: ``provider · model · total``."""
    text = _who(ex.provider, ex.model) + (f" · {seconds(ex.total_s)}" if ex.total_s else "")
    extra = [cut_note(ex.finish_reason) if ex.cut else "", usage_note(ex.usage)]
    return " · ".join(filter(None, [label(ex), text, *extra]))


def exchange_title(ex: Exchange) -> str:
    """The heading of a recorded reply in an export: ``Assistant · provider · model (stopped)``."""
    mark = f" ({label(ex)})" if ex.summarizes else " (stopped)" if ex.stopped else ""
    return f"Assistant · {ex.provider} · {ex.model}{mark}"


def user_html(text: str) -> str:
    # what the user typed is shown as typed (escaped), not as Markdown
    return (
        '<div class="chatmagic-msg chatmagic-user"><div class="chatmagic-who">You</div>'
        f'<div class="chatmagic-user-text">{html.escape(text)}</div></div>'
    )


def assistant_html(body_html: str, title: str, *, stopped: bool = False) -> str:
    """A reply's bubble; ``body_html`` must already be sanitized (render.markdown_html)."""
    mark = f' <span class="chatmagic-stopped">{STOPPED_MARK}</span>' if stopped else ""
    return (
        '<div class="chatmagic-msg chatmagic-assistant chatmagic-reply">'
        f'<div class="chatmagic-who">{html.escape(title)}{mark}</div>{body_html}</div>'
    )


def exchange_html(ex: Exchange) -> str:
    """A recorded exchange's reply as the panel and ``%chat history`` draw it: its Thinking
    block (closed), its answer (sanitized Markdown) and its heading. One drawing for both,
    so what one shows the other shows."""
    body = markdown_html(ex.assistant.content) if ex.assistant.content else ""
    cards = cards_html(ex.tools)  # what was called, shown again: a record never runs anything
    return assistant_html(thinking_html(ex.reasoning) + cards + body, exchange_head(ex), stopped=ex.stopped)


def exchange_markdown(ex: Exchange) -> list[str]:
    """The same exchange as Markdown lines (``%chat export``): the user's message, the reply's
    heading, its reasoning quoted under a "Thinking" line, and its answer."""
    lines = ["## User", "", ex.user.content, "", f"## {exchange_title(ex)}", ""]
    if ex.reasoning:
        quoted = "\n".join(f"> {line}".rstrip() for line in ex.reasoning.splitlines())
        lines += [f"**{thinking_summary(ex.reasoning)}**", "", quoted, ""]
    for step in ex.tools:
        lines += [f"**Tool call** `{step.name}` · {state_words(step)}", "", *_fenced(step.arguments, "json")]
        if step.result:
            lines += _fenced(step.result, "text")
    return [*lines, ex.assistant.content, ""]


def _fenced(text: str, info: str) -> list[str]:
    """``text`` in a code fence longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence, ""]


def exchange_plain(ex: Exchange) -> list[str]:
    """The same exchange as plain text (``%chat history``'s text form), reasoning included."""
    mark = f" ({exchange_head(ex)}{', stopped' if ex.stopped else ''})"
    thinking = [f"thinking: {ex.reasoning}"] if ex.reasoning else []
    calls = [card_plain(step) for step in ex.tools]
    return [f"user: {ex.user.content}", *thinking, *calls, f"assistant{mark}: {ex.assistant.content}"]


#: exchanges ``%chat history`` shows unless told otherwise: the newest, as the panel opens
HISTORY_LAST = 20


def history_bundle(conv: Conversation, last: int | None = HISTORY_LAST) -> dict[str, str]:
    """``%chat history``: the conversation as the panel shows it, and as plain text.

    Only the newest ``last`` exchanges are drawn, so that showing a long conversation costs
    what is shown; a line above them says how many earlier ones were left out and how to see
    them. ``last=None`` (``--all``) draws every one, a summary's originals too (before it).
    """
    with conv.lock:
        exchanges = originals(conv.exchanges) if last is None else list(conv.exchanges)
        total = len(exchanges)
        shown = exchanges[-last:] if last is not None and last < total else exchanges
    parts = [FULL_STYLE, '<div class="chatmagic-transcript">']
    plain = []
    if conv.system:
        parts.append(status_html(f"system prompt: {conv.system}"))
        plain.append(f"system: {conv.system}")
    if len(shown) < total:
        note = earlier_note(conv.name, total - len(shown))
        parts.append(status_html(note))
        plain.append(note)
    for ex in shown:
        parts += [user_html(ex.user.content), exchange_html(ex)]
        plain += exchange_plain(ex)
    parts.append("</div>")
    return {"text/html": "".join(parts), "text/plain": "\n\n".join(plain)}


def exchange_bundle(ex: Exchange, note: str = "") -> dict[str, str]:
    """One exchange as ``%chat history`` draws it, with a line under it (``%chat compact``)."""
    parts = [FULL_STYLE, '<div class="chatmagic-transcript">', user_html(ex.user.content), exchange_html(ex)]
    parts += [status_html(note), "</div>"] if note else ["</div>"]
    plain = "\n\n".join(exchange_plain(ex) + ([f"— {note}"] if note else []))
    return {"text/html": "".join(parts), "text/plain": plain}


def earlier_note(name: str, left_out: int) -> str:
    """What ``%chat history`` says above the exchanges it shows when it left earlier ones out."""
    one = left_out == 1
    command = f"%chat history {shlex.quote(name)}"
    return (
        f"{left_out:,} earlier exchange{'' if one else 's'} not shown: "
        f"{command} --last N shows the newest N, {command} --all shows every one."
    )


# -- tables and notes (%chat providers, conversations, --dry-run) ---------------------


def table_bundle(
    head_row: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()
) -> dict[str, str]:
    """A table as HTML and as aligned plain text, with note lines under it."""
    widths = [max(len(str(x)) for x in col) for col in zip(head_row, *rows, strict=False)]
    plain = "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
        for r in [list(head_row), *rows]
    )
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head_row)
    table = table_html(f"<thead><tr>{th}</tr></thead><tbody>{cells}</tbody>")
    if notes:
        lines = "".join(status_html(note) for note in notes)
        return {"text/html": FALLBACK_STYLE + table + lines, "text/plain": plain + "\n\n" + "\n".join(notes)}
    return {"text/html": table, "text/plain": plain}


def table_html(inner: str) -> str:
    """A table of chatmagic's (rows of text, left-aligned in every frontend), with its style."""
    return f'{TABLE_STYLE}<table class="chatmagic-table">{inner}</table>'
