"""How a turn looks, wherever it is shown: one module draws it.

The cell display (``%%chat``), the terminal, the chat panel, ``%chat history`` and
``%chat export`` all take from here the heading of a reply (who answered, after which
failures and retries), its status line (waiting, streaming, how it ended), the wording of
its timings and the one stylesheet. Nothing here imports IPython or ipywidgets, and
nothing renders model text: that is :mod:`chatmagic.render` (sanitized Markdown).

Final status lines, as a cell shows them::

    chatgptt · gpt-4o · first text 120 ms · total 1.4 s
    opchatgpts · gpt-3.5-turbo (after chatgptes failed, 2 retries) · first text 1.1 s · total 3.0 s
    chatgptt · gpt-4o · ■ stopped · first text 90 ms · total 2.2 s
    chatgptt · gpt-4o · failed · the text above was not added to the conversation
    chatgptt · gpt-4o · failed · nothing was added
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .session import Conversation, Exchange, Turn

__all__ = [
    "CSS",
    "FALLBACK_STYLE",
    "FULL_STYLE",
    "HISTORY_LAST",
    "PALETTE_CSS",
    "REPLY_CSS",
    "STYLE",
    "Status",
    "assistant_html",
    "cut_note",
    "earlier_note",
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
    "usage_note",
    "user_html",
    "waiting",
]

#: the mark of a reply stopped before its end (cell, panel, history, export)
STOPPED_MARK = "■ stopped"

# One stylesheet for every skin. Every text reaches a contrast of 4.5:1 in JupyterLab's light
# and dark themes (measured in tests/browser): text and surfaces take the theme's variables
# (--jp-content-font-color1, --jp-layout-color1), and what the themes do not offer at that
# contrast (muted text, links, bubbles, code colours) is one palette of --cm-* variables with
# a dark variant, chosen by the theme's own flag (JupyterLab and Notebook 7:
# body[data-jp-theme-light=false]; VS Code: body.vscode-dark). Code colours are the markup
# render.highlight sets (keywords <b>, comments <i>, the rest one-letter classes): a few bytes
# a token instead of an inline style, and each theme gets its own colours.
# REPLY_CSS is what a cell's reply needs (it travels with the reply's outputs); the rest
# draws the transcript of the panel and of %chat history.
_SCOPES = (
    ".chatmagic-reply",
    ".chatmagic-panel",
    ".chatmagic-transcript",
    ".chatmagic-status",
    ".chatmagic-thinking",
)
_LIGHT = (
    "--cm-fg:var(--jp-content-font-color1,#1f1f1f);--cm-bg:var(--jp-layout-color1,#fff);"
    "--cm-muted:#595959;--cm-link:#0d47a1;--cm-error:#c62828;--cm-warn:#9a4700;"
    "--cm-bubble:#f0f0f0;--cm-user:#e3f2fd;--cm-code-bg:#f5f5f5;--cm-rule:#c4c4c4;"
    "--cm-kw:#007000;--cm-comment:#3d6666;--cm-str:#a31515;--cm-def:#0030b0;--cm-builtin:#1a6b1a;"
    "--cm-deco:#7a2fb5;--cm-tag:#11661a;--cm-attr:#6b5b00"
)
_DARK = (
    "--cm-fg:var(--jp-content-font-color1,#fff);--cm-bg:var(--jp-layout-color1,#212121);"
    "--cm-muted:#b3b3b3;--cm-link:#8ab4f8;--cm-error:#ff8a80;--cm-warn:#ffb74d;"
    "--cm-bubble:#2b2b2b;--cm-user:#173451;--cm-code-bg:#161616;--cm-rule:#5c5c5c;"
    "--cm-kw:#6fd46f;--cm-comment:#9ab8b8;--cm-str:#ff9b9b;--cm-def:#82aaff;--cm-builtin:#8fd68f;"
    "--cm-deco:#d7a8ff;--cm-tag:#7ee08a;--cm-attr:#e2c466"
)
_DARK_THEMES = ("body[data-jp-theme-light=false]", "body.vscode-dark", "body.vscode-high-contrast")
PALETTE_CSS = (
    f":is({','.join(_SCOPES)}){{{_LIGHT}}}:is({','.join(_DARK_THEMES)}) :is({','.join(_SCOPES)}){{{_DARK}}}"
)
# a reply in a cell sits in JupyterLab's rendered-HTML styles: the doubled class outranks them
_R = ".chatmagic-reply.chatmagic-reply"
REPLY_CSS = PALETTE_CSS + (
    ".chatmagic-status{color:var(--cm-muted);font-size:85%;margin-top:.3em}"
    ".chatmagic-status.chatmagic-error,.chatmagic-error{color:var(--cm-error)}"
    ".chatmagic-status.chatmagic-stopped,.chatmagic-stopped{color:var(--cm-warn)}"
    ".chatmagic-text{white-space:pre-wrap;margin:0}"
    ".chatmagic-thinking{color:var(--cm-muted);font-size:90%;margin:.2em 0 .4em}"
    ".chatmagic-thinking summary{cursor:pointer}"
    ".chatmagic-thinking-text{white-space:pre-wrap;border-left:3px solid var(--cm-rule);"
    "padding-left:.6em;max-height:24em;overflow:auto}"
    f"{_R} pre:not(.chatmagic-text){{background:var(--cm-code-bg);color:var(--cm-fg);padding:.5em .7em;"
    "border-radius:4px;overflow-x:auto;line-height:1.35}"
    f"{_R} pre code{{background:none;padding:0;color:inherit}}"
    f"{_R} :not(pre)>code{{background:var(--cm-code-bg);color:var(--cm-fg);padding:.05em .3em;border-radius:3px}}"
    f"{_R} table{{border-collapse:collapse;margin:.5em 0}}"
    f"{_R} th,{_R} td{{border:1px solid var(--cm-rule);padding:.2em .6em;color:var(--cm-fg);"
    "background:var(--cm-bg)}"
    f"{_R} th{{background:var(--cm-code-bg)}}"
    f"{_R} a:link,{_R} a:visited{{color:var(--cm-link);text-decoration:underline}}"
    f"{_R} blockquote{{border-left:3px solid var(--cm-rule);margin:.4em 0;padding-left:.8em;color:var(--cm-fg)}}"
    ".chatmagic-reply pre b{color:var(--cm-kw)}"
    ".chatmagic-reply pre i{color:var(--cm-comment)}"
    ".chatmagic-reply .s{color:var(--cm-str)}"
    ".chatmagic-reply .f{color:var(--cm-def)}"
    ".chatmagic-reply .n{color:var(--cm-builtin)}"
    ".chatmagic-reply .d{color:var(--cm-deco)}"
    ".chatmagic-reply .t{color:var(--cm-tag)}"
    ".chatmagic-reply .a{color:var(--cm-attr)}"
)
CSS = REPLY_CSS + (
    ".chatmagic-msg{padding:4px 10px;margin:4px 0;border-radius:8px;line-height:1.45;overflow-wrap:anywhere;"
    "color:var(--cm-fg)}"
    ".chatmagic-msg p{margin:.35em 0}"
    ".chatmagic-msg h1,.chatmagic-msg h2,.chatmagic-msg h3,.chatmagic-msg h4{margin:.5em 0 .3em;line-height:1.25}"
    ".chatmagic-msg h1{font-size:1.3em}.chatmagic-msg h2{font-size:1.18em}.chatmagic-msg h3{font-size:1.06em}"
    ".chatmagic-msg ul,.chatmagic-msg ol{margin:.3em 0;padding-left:1.6em}"
    ".chatmagic-msg hr{border:0;border-top:1px solid var(--cm-rule)}"
    ".chatmagic-user{background:var(--cm-user);margin-left:12%}"
    ".chatmagic-assistant{background:var(--cm-bubble);margin-right:4%}"
    ".chatmagic-who{font-size:80%;font-weight:600;color:var(--cm-muted)}"
    ".chatmagic-user-text{white-space:pre-wrap;margin:.3em 0}"
    ".chatmagic-empty{color:var(--cm-muted);font-style:italic;padding:.6em .2em}"
)
#: what a table (%chat providers, --dry-run) carries: JupyterLab's rendered-HTML style aligns
#: cells right (.jp-RenderedHTMLCommon td), which also pushes each line of a multi-line prompt
#: to the right and so hides its indentation; the doubled class outranks it
TABLE_STYLE = "<style>.chatmagic-table.chatmagic-table :is(th,td){text-align:left;vertical-align:top}</style>"
#: what a cell's reply carries (the first output and the final update)
STYLE = f"<style>{REPLY_CSS}</style>"
#: what the panel and %chat history carry
FULL_STYLE = f"<style>{CSS}</style>"
#: what every reply of a cell carries when an earlier one of the kernel session carried STYLE
#: (chatmagic._cellstream.SHEET), and the notes under a table (--dry-run, %chat providers: they
#: need nothing else of STYLE): rules of zero specificity (:where), so that STYLE, wherever it
#: is in the page, wins every property; without it (that output cleared), the status line is
#: still small and muted, an error red, a stop orange, in light and dark themes alike
FALLBACK_STYLE = (
    "<style>:where(.chatmagic-status){color:color-mix(in srgb,currentColor 70%,transparent);"
    "font-size:85%}:where(.chatmagic-error){color:#e5484d}:where(.chatmagic-stopped){color:#d97917}</style>"
)


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
        notes += [cut, usage_note(turn.usage)]
        if turn.code_to_cell and turn.state == "done":
            from .code import INSERTED, code_of

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


def thinking_html(reasoning: str, *, streaming: bool = False, tail: int = 1500) -> str:
    """The collapsed "Thinking" block above an answer. While it streams, its last ``tail``
    characters (what is being thought now), open; once done, all of it, closed."""
    if not reasoning:
        return ""
    shown = reasoning if not streaming or len(reasoning) <= tail else "…" + reasoning[-tail:]
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
    return " · ".join([text, *filter(None, extra)])


def exchange_title(ex: Exchange) -> str:
    """The heading of a recorded reply in an export: ``Assistant · provider · model (stopped)``."""
    return f"Assistant · {ex.provider} · {ex.model}" + (" (stopped)" if ex.stopped else "")


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
    from .render import markdown_html

    body = markdown_html(ex.assistant.content) if ex.assistant.content else ""
    return assistant_html(thinking_html(ex.reasoning) + body, exchange_head(ex), stopped=ex.stopped)


def exchange_markdown(ex: Exchange) -> list[str]:
    """The same exchange as Markdown lines (``%chat export``): the user's message, the reply's
    heading, its reasoning quoted under a "Thinking" line, and its answer."""
    lines = ["## User", "", ex.user.content, "", f"## {exchange_title(ex)}", ""]
    if ex.reasoning:
        quoted = "\n".join(f"> {line}".rstrip() for line in ex.reasoning.splitlines())
        lines += [f"**{thinking_summary(ex.reasoning)}**", "", quoted, ""]
    return [*lines, ex.assistant.content, ""]


def exchange_plain(ex: Exchange) -> list[str]:
    """The same exchange as plain text (``%chat history``'s text form), reasoning included."""
    mark = f" ({exchange_head(ex)}{', stopped' if ex.stopped else ''})"
    thinking = [f"thinking: {ex.reasoning}"] if ex.reasoning else []
    return [f"user: {ex.user.content}", *thinking, f"assistant{mark}: {ex.assistant.content}"]


#: exchanges ``%chat history`` shows unless told otherwise: the newest, as the panel opens
HISTORY_LAST = 20


def history_bundle(conv: Conversation, last: int | None = HISTORY_LAST) -> dict[str, str]:
    """``%chat history``: the conversation as the panel shows it, and as plain text.

    Only the newest ``last`` exchanges are drawn (all of them when None), so that showing
    a long conversation costs what is shown; a line above them says how many earlier ones
    were left out and how to see them.
    """
    with conv.lock:
        total = len(conv.exchanges)
        shown = conv.exchanges[-last:] if last is not None and last < total else list(conv.exchanges)
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
