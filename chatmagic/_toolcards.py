"""A tool call as a card: the same words in a cell, the panel, ``%chat history`` and exports.

A card shows the tool's name, **every argument in full** (a long or multi-line one folds
into a ``<details>``, never cut), the state (waiting for an answer, running, done in N ms,
failed, declined, refused, skipped, stopped) and the result the model was sent, bounded
(chatmagic.toolrun) and folded. Everything is text escaped here: nothing a model or a tool
wrote becomes live HTML. The buttons that answer a waiting call are the reply view's
(chatmagic._replyview: ``ask_html``); the card itself says how to answer from any cell
(``%chat approve t1``).

Input is :class:`chatmagic.toolstep.ToolStep` (or its dict, as a record keeps it).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .toolstep import ToolStep, is_image_uri

__all__ = ["ask_html", "cards_bundle", "cards_html", "cards_plain", "state_words"]

#: an argument longer than this (characters), or on several lines, folds
_FOLD = 120
_WRAPPER = re.compile(r"^<tool_output name=[^\n]*>\nData returned by the tool [^\n]*\n|\n</tool_output>$")
_CSS = (
    "<style>.cm-tools{margin:.3em 0;font-size:.92em}"
    ".cm-tool{border:1px solid var(--jp-border-color2,#ccc);border-radius:4px;padding:.25em .5em;margin:.25em 0;"
    "background:var(--jp-layout-color1,transparent);color:var(--jp-content-font-color1,inherit)}"
    ".cm-tool pre{white-space:pre-wrap;word-break:break-word;margin:.2em 0;max-height:24em;overflow:auto}"
    ".cm-tool-state{opacity:.8}.cm-tool-failed .cm-tool-state,.cm-tool-refused .cm-tool-state{color:var(--jp-error-color1,#c00)}"
    ".cm-tool-waiting{border-color:var(--jp-warn-color1,#e0a000)}"
    ".cm-tool-args{margin:.15em 0 .15em 1em}.cm-ask button{margin-right:.4em}"
    ".cm-tool-image{display:block;max-width:100%;height:auto;margin:.3em 0}</style>"
)


def _step(step: ToolStep | Mapping[str, Any]) -> ToolStep:
    return step if isinstance(step, ToolStep) else ToolStep.from_dict(step)


def state_words(step: ToolStep) -> str:
    """The state as a card says it."""
    if step.state == "waiting":
        return f"waiting for your answer ({step.ask})" if step.ask else "waiting for your answer"
    if step.state == "running":
        return "running…"
    if step.state == "done":
        how = "" if step.by in (None, "user") else f" ({step.by})"
        return f"done in {_ms(step.ms)}{how}"
    if step.state == "failed":
        return f"failed in {_ms(step.ms)}: {step.error}"
    if step.state == "declined":
        return "declined by you" if step.by == "user" else f"declined: {step.by or 'no answer'}"
    if step.state == "refused":
        return f"refused: {step.error}"
    if step.state == "skipped":
        return step.error or "not run"
    return "stopped: not run" if step.ms is None else "stopped"


def _ms(ms: float | None) -> str:
    if ms is None:
        return "? ms"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _arguments(text: str) -> list[tuple[str, str]] | None:
    """(name, value as text) of each argument, or None when they are not one JSON object."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for k, v in value.items()
    ]


def _result(step: ToolStep) -> str:
    """What the model was told, without the marks around a tool's output."""
    return _WRAPPER.sub("", step.result)


def _fold(summary: str, body: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f"<details{klass}><summary>{html.escape(summary)}</summary><pre>{html.escape(body)}</pre></details>"
    )


def card_html(step: ToolStep) -> str:
    """One card (escaped: see the module docstring)."""
    pairs = _arguments(step.arguments)
    if pairs is None:
        args = _fold(f"arguments as sent ({len(step.arguments):,} characters)", step.arguments)
    else:
        rows = []
        for name, value in pairs:
            if len(value) > _FOLD or "\n" in value:
                rows.append(_fold(f"{name} ({len(value):,} characters)", value))
            else:
                rows.append(f"<div><b>{html.escape(name)}</b>: <code>{html.escape(value)}</code></div>")
        args = "".join(rows) or "<div><i>no arguments</i></div>"
    result = _result(step)
    folded = _fold(f"result ({len(result):,} characters)", result, "cm-tool-result") if result else ""
    # what it displayed, drawn (the model was told only that it displayed an image)
    shown = "".join(
        f'<img class="cm-tool-image" src="{html.escape(uri)}" alt="displayed by {html.escape(step.name)}">'
        for uri in step.images
        if is_image_uri(uri)
    )
    hint = ""
    if step.state == "waiting" and step.ask:
        hint = (
            f'<div class="cm-tool-hint">Answer from any cell: <code>%chat approve {html.escape(step.ask)}</code>'
            f" · <code>%chat deny {html.escape(step.ask)}</code>"
            f" · <code>%chat approve {html.escape(step.ask)} --always</code></div>"
        )
    return (
        f'<div class="cm-tool cm-tool-{html.escape(step.state)}" data-call="{html.escape(step.id)}">'
        f"Tool <code>{html.escape(step.name)}</code> · "
        f'<span class="cm-tool-state">{html.escape(state_words(step))}</span>'
        f'<div class="cm-tool-args">{args}</div>{hint}{shown}{folded}</div>'
    )


def cards_html(steps: Iterable[ToolStep | Mapping[str, Any]]) -> str:
    made = [card_html(_step(s)) for s in steps]
    return f'{_CSS}<div class="cm-tools">{"".join(made)}</div>' if made else ""


def card_plain(step: ToolStep) -> str:
    pairs = _arguments(step.arguments)
    shown = step.arguments if pairs is None else ", ".join(f"{k}={v}" for k, v in pairs)
    line = f"[tool] {step.name}({shown}) · {state_words(step)}"
    if step.state == "waiting" and step.ask:
        line += f"\n  answer: %chat approve {step.ask} · %chat deny {step.ask}"
    return line


def cards_plain(steps: Iterable[ToolStep | Mapping[str, Any]]) -> str:
    return "\n".join(card_plain(_step(s)) for s in steps)


def cards_bundle(steps: Iterable[ToolStep | Mapping[str, Any]]) -> dict[str, str]:
    """A display of the cards (empty when there are none yet)."""
    listed = list(steps)
    if not listed:
        return {"text/plain": ""}
    return {"text/html": cards_html(listed), "text/plain": cards_plain(listed)}


def ask_html(steps: Iterable[ToolStep]) -> str:
    """The Run / Deny / Always buttons of the calls that wait (the reply view wires them)."""
    rows = []
    for step in steps:
        if step.state != "waiting" or not step.ask:
            continue
        ask, name = html.escape(step.ask), html.escape(step.name)
        rows.append(
            f'<div class="cm-ask" data-ask="{ask}">{ask} <code>{name}</code>: '
            f'<button data-answer="run">Run</button><button data-answer="deny">Deny</button>'
            f'<button data-answer="always">Always for {name} in this session</button></div>'
        )
    return "".join(rows)
