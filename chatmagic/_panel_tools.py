"""A panel turn's tools and its budget question: what the chat panel offers, asks and answers.

The panel (chatmagic.panel) calls, with its lock held:

- :func:`offer` as a message is prepared: the tools the panel offers (``ChatPanel.tools``, or
  ``ChatMagics.tools`` when it names none: the cell's setting), made into the turn's toolbox
  as a cell's ``--tools`` are (chatmagic._toolbox), running on the kernel's main thread
  (chatmagic.toolrun: between cells, the kernel's ``io_loop`` runs them; no cell blocks for a
  panel turn). A call that waits is asked of **the panel's audience**: a panel a frontend
  drew (it said hello) can answer; one no frontend drew cannot, and the call is declined.
- :func:`gate` before it starts: the glass box (chatmagic.preflight ``check``) and the
  budget's decision, as the cell's gate (chatmagic._gate): over the window, refused in one
  line; over ``ChatMagics.max_input_tokens`` / ``max_cost``, the glass box waits in the
  transcript with Send anyway / Cancel (the session's :class:`~chatmagic.pause.Pauses`, the
  pause tool calls use), or is refused in one line when no frontend drew the panel. The
  answer comes from any thread (a click, ``%chat send`` / ``%chat cancel``); a thread of its
  own waits for it, so no callback of the panel waits.
- :func:`answer` when a Run / Deny / Always or Send anyway / Cancel button is clicked.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _state
from ._defaults import DEFAULT_MAX_TOOL_STEPS
from ._panel_look import ask_line, question_html
from ._toolbox import make_toolbox, parse_names, resolve
from ._toolcell import main_thread
from .budget import unattended
from .errors import ChatMagicError, NotSent
from .pause import PauseError, Pending
from .preflight import check
from .present import user_html
from .providers import get_provider
from .session import Turn
from .toolloop import chain_for_tools

#: a chat panel (chatmagic.panel.ChatPanel: the layers let this module know it only so)
ChatPanel = Any

__all__ = ["answer", "cancel", "gate", "offer"]


def offer(panel: ChatPanel, turn: Turn) -> None:
    """Give ``turn`` the panel's tools (see the module docstring); a ConfigurationError names
    what cannot be offered (a name, a signature, a provider that takes no tools)."""
    magics = _state._loaded_magics()
    names = parse_names(panel.tools if panel.tools is not None else getattr(magics, "tools", None))
    if not names:
        return
    shell = getattr(magics, "shell", None)
    if shell is None:
        from IPython import get_ipython  # a panel made from Python with the extension not loaded

        shell = get_ipython()
    ns = magics.user_ns() if magics is not None else getattr(shell, "user_ns", {})
    printed = getattr(magics, "printed", None)
    # propose_cell: its card's "Insert as cell" button makes the cell (static/panel.js); the
    # kernel has no cell to put it under (no cell runs for a panel turn)
    specs = resolve(names, ns, shell, printed, insert=lambda _code: None)
    able, note = chain_for_tools([get_provider(n) for n in turn.chain], list(specs))
    turn.chain = [cls.name for cls in able]
    turn.provider = turn.chain[0]
    if note:
        turn.notes.append(note)
    session = panel.session
    turn.tools = make_toolbox(
        specs,
        main_thread(shell),
        session.pauses,
        panel.audience,
        max_steps=getattr(magics, "max_tool_steps", DEFAULT_MAX_TOOL_STEPS),
        secrets=turn.secrets,
        redact=session.redact_secrets,
        wake=turn.poke,
    )


def gate(panel: ChatPanel, turn: Turn, typed: str) -> bool:
    """True: ``turn`` may start now. False: it waits for Send anyway / Cancel in the panel,
    which starts it or gives ``typed`` back. :class:`NotSent` (one line): refused."""
    offered = turn.tools.wire() if turn.tools is not None else None
    anatomy = check(turn, tools=offered, limits=panel.session.limits)
    decision = anatomy.decision
    if decision is None or decision.fits:
        return True
    if decision.verdict == "cannot fit":
        raise NotSent(decision.message)
    if not panel.audience.present:  # no frontend drew this panel: no one to ask
        raise NotSent(unattended(decision))
    pending = panel.session.pauses.ask("budget", anatomy.model or anatomy.provider, {"glass": anatomy.text()})
    panel.asking = pending
    panel._transcript.question = [
        (f"q{pending.id}u", user_html(turn.prompt)),
        (f"q{pending.id}", question_html(anatomy, pending.id, ask_line(decision.reasons))),
    ]
    panel._transcript.request()
    panel._set_status(ask_line(decision.reasons), warn=True)
    threading.Thread(
        target=_after, args=(panel, turn, pending, typed, decision.message), name="chatmagic-ask", daemon=True
    ).start()
    return False


def _after(panel: ChatPanel, turn: Turn, pending: Pending, typed: str, over: str) -> None:
    """The answer came: start the turn, or say it was cancelled and give the message back."""
    choice = pending.result()
    with panel._lock:
        panel.asking = None  # (before start: its "start" makes the panel busy again)
        panel._transcript.question = []
        # the draw takes the question away and says the panel is free, in one go
        panel._transcript.request()
        if panel._closed:
            return
        if choice == "send":
            try:
                panel.session.start(turn)  # "start" makes the panel follow it (busy, status)
                return
            except ChatMagicError as exc:
                note = f"{exc}"
        else:
            how = "" if pending.by == "user" else f" ({pending.by})"
            note = f"Cancelled{how}: nothing was sent. {over}"
        panel._give_back(typed)
        panel._set_status(f"{note} Your message is back in the box.", warn=True)


def answer(panel: ChatPanel, content: dict[str, Any]) -> None:
    """A button was clicked: ``{"type": "answer", "id": ..., "choice": ...}``."""
    try:
        panel.session.pauses.answer(str(content.get("id")), str(content.get("choice")))
    except PauseError as exc:  # answered already (a cell's %chat approve), or a stale button
        panel._set_status(str(exc), error=True)


def cancel(panel: ChatPanel) -> None:
    """Stop while a question waits: Cancel."""
    pending = panel.asking
    if pending is not None:
        try:
            panel.session.pauses.answer(pending.id, "cancel")
        except PauseError:  # answered meanwhile: the first answer stands
            pass
