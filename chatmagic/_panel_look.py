"""What the chat panel shows besides messages: a turn's tool cards, a question, the reopen line.

The panel draws a live turn's tool calls as the cell does (chatmagic._toolcards: the same
cards, every argument in full, escaped) with the same Run / Deny / Always buttons
(``ask_html``), in an item of the transcript between the user's message and the reply. A
call of ``propose_cell`` gets an **Insert as cell** button: the code travels escaped in an
attribute, and ``static/panel.js`` puts it into a new cell below the panel (it never runs).
A turn over budget shows its glass box with **Send anyway** / **Cancel** (chatmagic.glass),
the question of :mod:`chatmagic._panel_tools`.

Look layer: everything here is text escaped; nothing a model or a tool wrote becomes live
HTML.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ._toolcards import ask_html, cards_html
from .anatomy import Anatomy
from .glass import answer_buttons, glass_html
from .pause import ANSWERS
from .toolstep import ToolStep

__all__ = ["PANEL_REOPEN", "ask_line", "display_panel", "inserts_html", "question_html", "tools_html"]


def tools_html(steps: Iterable[ToolStep]) -> str:
    """A live turn's cards, the buttons of the calls that wait, and Insert as cell (escaped)."""
    listed = list(steps)
    if not listed:
        return ""
    return f'<div class="cm-panel-tools">{cards_html(listed)}{ask_html(listed)}{inserts_html(listed)}</div>'


def inserts_html(steps: Iterable[ToolStep]) -> str:
    """An **Insert as cell** button for each code ``propose_cell`` put forward ("" for none)."""
    inserts = []
    for step in steps:
        code = _proposed(step)
        if code is not None:
            inserts.append(
                f'<button class="cm-insert" data-code="{html.escape(code, quote=True)}" '
                f'title="A new code cell below the panel, not run">Insert as cell</button>'
            )
    return f'<div class="cm-inserts">{"".join(inserts)}</div>' if inserts else ""


def _proposed(step: ToolStep) -> str | None:
    """The code a ``propose_cell`` call put forward (None: another tool, or nothing usable)."""
    if step.name != "propose_cell" or step.state != "done":
        return None
    try:
        args = json.loads(step.arguments)
    except ValueError:
        return None
    code = args.get("code") if isinstance(args, dict) else None
    return code if isinstance(code, str) and code.strip() else None


def ask_line(reasons: Sequence[str]) -> str:
    """The line under a glass box that waits in the panel."""
    over = " and ".join(f"ChatMagics.{r}" for r in reasons) or "the budget"
    return f"Over {over}: Send anyway, or Cancel (or %chat send / %chat cancel in a cell)."


def question_html(anatomy: Anatomy, pending_id: str, line: str) -> str:
    """A turn over budget, waiting in the panel: its glass box and Send anyway / Cancel."""
    return (
        f'<div class="chatmagic-msg chatmagic-assistant cm-question">'
        f"{glass_html(anatomy, [line])}{answer_buttons(pending_id, ANSWERS['budget'])}</div>"
    )


# -- the line under a chat panel ------------------------------------------------------

_REOPEN_TEXT = (
    "If the chat panel does not show above (the kernel restarted, or the notebook was reopened), "
    "run this cell again, or %chat panel, to reopen it."
)
#: the line under a panel (see ChatPanel._ipython_display_); hidden while the panel is drawn
PANEL_REOPEN = {
    "text/html": (
        "<style>.jp-OutputArea-child:has(.chatmagic-panel)+.jp-OutputArea-child .cm-reopen{display:none}</style>"
        f'<div class="cm-reopen chatmagic-status">{html.escape(_REOPEN_TEXT)}</div>'
    ),
    "text/plain": _REOPEN_TEXT,
}


def display_panel(bundle: Any) -> None:
    """A panel's display (``ChatPanel._ipython_display_``): the widget, then the reopen line.

    A saved panel cannot come back by itself: after a restart, or in a notebook reopened
    without its kernel, the frontend only says "Error displaying widget: model not found".
    The line under it says what happened and how to reopen the panel; while the panel is
    drawn (JupyterLab, Notebook 7) its stylesheet hides the line.
    """
    from IPython.display import display  # the notebook's, at display time

    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    if data:
        display(data, raw=True, metadata=metadata)
    display(PANEL_REOPEN, raw=True)
