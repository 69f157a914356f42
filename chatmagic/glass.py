"""How the glass box looks: a request taken apart (:class:`chatmagic.anatomy.Anatomy`), drawn.

Look layer. One drawing for ``%chat context``, ``%%chat --dry-run`` and a turn that waits for
Send anyway / Cancel: a table of the parts (each with its characters, its tokens and how they
were counted; what was left out, and why, greyed), then the lines under it: the total, how it
was counted, the window and the share this request fills, the cost when a price is known, and
the decision. Every text from the request (a label quotes the user's words) is escaped here.
The plain-text form is :meth:`Anatomy.text`, for terminals and ``text/plain``.

The status line of a turn keeps two numbers apart (``present.tokens_note``): this request's
context against the window (:meth:`Anatomy.context`), and what the conversation has used so
far as the servers reported it. Never one for the other.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from .anatomy import Anatomy
from .present import FALLBACK_STYLE, Status, status_html, table_html

__all__ = [
    "ANSWER_LABELS",
    "answer_buttons",
    "glass_bundle",
    "glass_html",
]

#: what each answer of a question says on its button
ANSWER_LABELS: Mapping[str, str] = {"send": "Send anyway", "cancel": "Cancel"}

_LEFT_OUT = "color:color-mix(in srgb,currentColor 55%,transparent)"


def glass_html(anatomy: Anatomy, notes: Sequence[str] = ()) -> str:
    """The glass box as HTML (escaped), with ``notes`` as status lines under it."""
    rows = []
    for p in anatomy.parts:
        label = html.escape(p.label if p.sent else f"left out: {p.label}")
        note = f" <i>({html.escape(p.note)})</i>" if p.note else ""
        tokens = html.escape(str(p.tokens)) if p.tokens is not None else "–"
        style = "" if p.sent else f' style="{_LEFT_OUT}"'
        rows.append(f"<tr{style}><td>{label}{note}</td><td>{p.chars:,}</td><td>{tokens}</td></tr>")
    rows.append(
        f"<tr><td><i>template and message overhead</i></td><td></td><td>{anatomy.overhead:,}</td></tr>"
    )
    chars = sum(p.chars for p in anatomy.sent_parts)
    rows.append(
        f"<tr><td><b>total</b></td><td><b>{chars:,}</b></td><td><b>{html.escape(str(anatomy.total))}</b></td></tr>"
    )
    head = "<thead><tr><th>part</th><th>chars</th><th>tokens</th></tr></thead>"
    lines = [status_html(line) for line in anatomy.facts()]
    decision = anatomy.decision
    if decision is not None and not decision.fits:
        kind = "error" if decision.verdict == "cannot fit" else "stopped"
        lines.append(status_html(Status(f"{decision.verdict}: {decision.message}", kind)))
    lines += [status_html(note) for note in notes]
    title = status_html(_title(anatomy))
    table = table_html(f"{head}<tbody>{''.join(rows)}</tbody>")
    return f'{FALLBACK_STYLE}<div class="chatmagic-glass">{title}{table}{"".join(lines)}</div>'


def glass_bundle(anatomy: Anatomy, notes: Sequence[str] = ()) -> dict[str, str]:
    """The glass box for ``display``: HTML, and the plain text a terminal or a saved notebook reads."""
    plain = anatomy.text()
    if notes:
        plain += "\n" + "\n".join(f"  {note}" for note in notes)
    return {"text/html": glass_html(anatomy, notes), "text/plain": plain}


def answer_buttons(pending_id: str, answers: Iterable[str]) -> str:
    """Buttons that answer a waiting question from the cell's reply view (``ReplyView.asks``:
    replyview.js sends ``{"type": "answer", "id", "choice"}`` when one is clicked), in the shape
    the tool cards' buttons have."""
    ask = html.escape(pending_id)
    buttons = "".join(
        f'<button data-answer="{html.escape(a)}">{html.escape(ANSWER_LABELS.get(a, a))}</button>'
        for a in answers
    )
    return f'<div class="cm-ask" data-ask="{ask}">{buttons}</div>'


def _title(anatomy: Anatomy) -> str:
    who = f"{anatomy.provider} · {anatomy.model}" if anatomy.model else anatomy.provider
    return f"{who}: the request as it will be sent"
