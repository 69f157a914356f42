"""The gate a turn passes before it is sent: it fits, or it is refused, or the user is asked.

Skins layer: the cell and the terminal call :func:`gate` between ``ChatSession.prepare`` (and
:func:`chatmagic.preflight.check`) and ``ChatSession.start``. What it does with the turn's
glass box (``turn.anatomy``, decided by :mod:`chatmagic.budget`):

- **fits**: nothing; the turn goes.
- **cannot fit** (the model's window): the glass box is shown, and :class:`~chatmagic.errors.NotSent`
  says what to do in one line (a smaller ``--context``, a history budget, ``%chat compact``).
  Nothing is sent: the server's 400 never comes.
- **over budget** (``max_input_tokens``, ``max_cost``): asked through the session's
  :class:`~chatmagic.pause.Pauses` (the one pause tool approvals use), answered ``send`` or
  ``cancel``:

  - with no one to ask (nbclient, ``jupyter execute``: the cell's request allowed no stdin)
    it is refused at once, one line (:func:`chatmagic.budget.unattended`);
  - in a notebook, the cell shows the glass box in its reply view with **Send anyway** and
    **Cancel** buttons (``ReplyView.asks``, as a tool call's Run / Deny; ``static/replyview.js``
    sends the click; in JupyterLab >= 4.4 with
    ipykernel 7 it arrives while the cell waits); a frontend whose view never says hello
    (no widgets) is asked on the cell's input line instead (``input()``: the frontend's
    stdin box);
  - in the terminal, on the prompt line.

  Any thread may answer meanwhile (``%chat send`` / ``%chat cancel`` from a panel's kernel
  thread, a test): the first answer wins. Ctrl-C cancels. Cancel is one line too, nothing sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from IPython.display import display

from ._terminal import is_terminal
from .anatomy import Anatomy
from .budget import unattended
from .errors import NotSent, TurnStopped
from .glass import answer_buttons, glass_bundle, glass_html
from .pause import ANSWERS, Audience, PauseError, Pauses, Pending
from .toolrun import stdin_allowed

__all__ = ["ASK_LINE", "gate"]

#: the line under a glass box that waits
ASK_LINE = "Over budget: Send anyway, or Cancel (%chat send / %chat cancel)."
#: how long the cell waits for its reply view to say hello before it asks on the input line
VIEW_HELLO_S = 2.0
_YES = {"s", "send", "y", "yes", "send anyway"}


def gate(
    shell: Any,
    anatomy: Anatomy,
    pauses: Pauses,
    audience: Audience,
    *,
    make_view: Callable[[], Any] | None = None,
    ask: Callable[[str], str] = input,
) -> None:
    """Return when the turn may go; raise :class:`NotSent` (one line) when it may not.

    ``make_view``: makes the cell's reply view (``chatmagic._replyview.ReplyView``, or None where
    widgets cannot be made), only when a question is asked; ``ask``: how a question is put on
    the input or prompt line.
    """
    decision = anatomy.decision
    if decision is None or decision.fits:
        return
    terminal = is_terminal(shell)
    if decision.verdict == "cannot fit":
        _show(terminal, anatomy)
        raise NotSent(decision.message)
    audience.terminal = terminal
    audience.from_request(stdin_allowed(shell))
    if not audience.present and audience.stdin is False:
        raise NotSent(unattended(decision))
    pending = pauses.ask("budget", anatomy.model or anatomy.provider, {"glass": anatomy.text()})
    try:
        view = make_view() if make_view is not None and not terminal else None
        answer = _wait(terminal, anatomy, pauses, pending, view, ask)
    except KeyboardInterrupt:
        _settle(pauses, pending, "cancel")
        raise TurnStopped("Stopped by the user: nothing was sent.") from None
    if answer != "send":
        how = "" if pending.by == "user" else f" ({pending.by})"
        raise NotSent(f"Cancelled{how}: nothing was sent. {decision.message}")


def _wait(
    terminal: bool, anatomy: Anatomy, pauses: Pauses, pending: Pending, view: Any, ask: Callable[[str], str]
) -> str:
    question = f"Send anyway? [s]end / [c]ancel ({pending.id}): "
    if terminal:
        print(anatomy.text())
        _settle(pauses, pending, "send" if _read(ask, question) in _YES else "cancel")
        return pending.result()
    bundle = glass_bundle(anatomy, [ASK_LINE])
    handle = display(view.bundle(bundle) if view is not None else bundle, raw=True, display_id=True)
    try:
        if view is not None and view.wait_hello(VIEW_HELLO_S):
            view.on_answer = pauses.answer
            view.show(glass_html(anatomy, [ASK_LINE]))
            view.asks(answer_buttons(pending.id, ANSWERS["budget"]))
            while not pending.done:
                time.sleep(0.05)  # a click arrives on a subshell thread; Ctrl-C reaches this loop
        elif not pending.done:
            _settle(pauses, pending, "send" if _read(ask, question) in _YES else "cancel")
        return pending.result()
    finally:
        if view is not None:
            view.on_answer = None
            view.asks("")
        said = "sent anyway" if pending.answer == "send" else "cancelled: nothing was sent"
        # the static box replaces the view: the next reply's view is the only one showing it
        if handle is not None:
            handle.update(glass_bundle(anatomy, [f"Over budget: {said}."]), raw=True)


def _read(ask: Callable[[str], str], question: str) -> str:
    try:
        return ask(question).strip().lower()
    except (EOFError, OSError, RuntimeError):  # no stdin after all: no one answered
        return ""


def _settle(pauses: Pauses, pending: Pending, choice: str) -> None:
    try:
        pauses.answer(pending.id, choice)
    except PauseError:  # answered meanwhile (a click, %chat send): the first answer stands
        pass


def _show(terminal: bool, anatomy: Anatomy) -> None:
    if terminal:
        print(anatomy.text())
    else:
        display(glass_bundle(anatomy), raw=True)
