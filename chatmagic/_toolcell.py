"""A turn's tool calls in a cell: the cards, the buttons, the questions, the main thread.

While a ``%%chat`` cell follows its turn (chatmagic.magics), each look:

- runs the tool calls queued for the kernel's main thread (``MainThread.drain``): the cell
  blocks the main thread while it streams, so it runs them itself;
- draws the cards (chatmagic._toolcards) in their own output above the reply, when they
  changed, and gives the reply view (chatmagic._replyview) the Run / Deny / Always
  buttons of the calls that wait;
- in terminal IPython, asks on the prompt line.

A call that waits in a notebook **does not hold the kernel**: the cell ends (``paused``),
and a thread goes on following the turn in the same outputs (in a copy of the cell's
context, so its updates are the cell's), while other cells run and ``%chat approve`` /
``%chat deny`` / a button answers. The tool then runs on the main thread between cells
(the kernel's ``io_loop``: chatmagic.toolrun).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ._terminal import is_terminal
from ._toolbox import make_toolbox, parse_names, resolve
from ._toolcards import ask_html, card_plain, cards_bundle
from .errors import ConfigurationError
from .pause import PauseError, Pauses
from .providers import get_provider
from .session import Turn
from .toolloop import chain_for_tools
from .toolrun import MainThread, stdin_allowed

__all__ = ["ToolCell", "answer_line", "offer_tools", "tool_cell"]

#: each shell's way to its main thread (one queue a kernel)
_MAIN: dict[int, MainThread] = {}


def main_thread(shell: Any) -> MainThread:
    """How tool calls reach ``shell``'s main thread (chatmagic.toolrun)."""
    found = _MAIN.get(id(shell))
    if found is None:
        found = _MAIN[id(shell)] = MainThread(shell)
    return found


def offer_tools(magics: Any, turn: Turn, given: str) -> None:
    """``--tools`` and ``ChatMagics.tools``: the turn's :class:`Toolbox`, or a UsageError naming
    what cannot be offered (a name, a signature, a provider that takes no tools), before
    anything is sent."""
    names = parse_names(magics.tools, given)
    if not names:
        return
    shell = magics.shell

    def insert(code: str) -> None:  # propose_cell: a new cell below, never run
        if shell is not None:
            shell.set_next_input(code, replace=False)

    try:
        specs = resolve(names, magics.user_ns(), shell, magics.printed, insert)
        able, note = chain_for_tools([get_provider(n) for n in turn.chain], list(specs))
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    turn.chain = [cls.name for cls in able]
    turn.provider = turn.chain[0]
    if note:
        turn.notes.append(note)
    session = magics.session
    session.audience.terminal = is_terminal(shell)
    session.audience.from_request(stdin_allowed(shell))
    turn.tools = make_toolbox(
        specs,
        main_thread(shell),
        session.pauses,
        session.audience,
        max_steps=magics.max_tool_steps,
        secrets=turn.secrets,
        redact=session.redact_secrets,
        wake=turn.poke,
    )


def tool_cell(magics: Any, turn: Turn, view: Any, *, terminal: bool) -> ToolCell | None:
    """The tool side of a started turn: it offers tools, or is a replay with saved calls."""
    if turn.tools is None and not turn.steps:
        return None
    return ToolCell(turn, main_thread(magics.shell), view, terminal=terminal)


#: what the terminal's prompt line takes
_TERMINAL_ANSWERS = {
    "y": "run",
    "yes": "run",
    "n": "deny",
    "no": "deny",
    "a": "always",
    "always": "always",
    "": "deny",
}


class ToolCell:
    """The tool side of one cell's turn (see the module docstring)."""

    def __init__(
        self,
        turn: Turn,
        main: MainThread,
        view: Any = None,
        *,
        terminal: bool = False,
        ask: Callable[[str], str] = input,
    ) -> None:
        self.turn = turn
        self.main = main
        self.view = view
        self.terminal = terminal
        self._ask = ask
        self.handle: Any = None
        self._drawn: tuple[Any, ...] = ()
        self._asked: set[str] = set()
        if view is not None:
            pauses = turn.session.pauses
            view.on_answer = lambda pending, choice: pauses.answer(pending, choice)

    def open(self) -> None:
        """The cards' output, above the reply (empty until the first call)."""
        if not self.terminal:
            self.handle = display({"text/plain": ""}, raw=True, display_id=True)

    def look(self) -> None:
        """Run what waits for the main thread; redraw what changed; ask in a terminal."""
        if threading.current_thread() is threading.main_thread():
            self.main.drain()
        steps = list(self.turn.steps)
        drawn = tuple((s.id, s.state, s.ask, s.ms, len(s.result)) for s in steps)
        if drawn != self._drawn:
            self._drawn = drawn
            if self.handle is not None:
                self.handle.update(cards_bundle(steps), raw=True)
            if self.view is not None:
                self.view.asks(ask_html(steps))
        if self.terminal:
            self._ask_on_prompt()

    @property
    def paused(self) -> bool:
        """A call waits for someone at a notebook frontend: the cell may end and let others run."""
        audience = self.turn.session.audience
        return bool(self.turn.waiting) and not self.terminal and bool(audience.stdin)

    def end(self) -> None:
        self.look()
        if self.view is not None:
            self.view.asks("")
            self.view.held = False

    def hold(self) -> None:
        """The cell ends while the turn waits: its view is this turn's until the turn ends."""
        if self.view is not None:
            self.view.held = True

    def _ask_on_prompt(self) -> None:
        for step in self.turn.waiting:
            if step.ask is None or step.ask in self._asked:
                continue
            self._asked.add(step.ask)
            sys.stdout.write("\n" + card_plain(step).split("\n")[0] + "\n")
            sys.stdout.flush()
            word = self._ask(f"Run {step.name}? [y]es, [n]o, [a]lways for {step.name} in this session: ")
            choice = _TERMINAL_ANSWERS.get(word.strip().lower(), "deny")
            try:
                self.turn.session.pauses.answer(step.ask, choice)
            except PauseError:  # answered meanwhile (Stop)
                pass


def cmd_approve(magics: Any, args: Any) -> None:
    """``%chat approve [ID] [--always]``."""
    _answer(magics, args.id, "always" if args.always else "run")


def cmd_deny(magics: Any, args: Any) -> None:
    """``%chat deny [ID]``."""
    _answer(magics, args.id, "deny")


def _answer(magics: Any, pending: str | None, choice: str) -> None:
    try:
        print(answer_line(magics.session.pauses, pending, choice))
    except PauseError as exc:
        raise UsageError(str(exc)) from None


def answer_line(pauses: Pauses, pending: str | None, choice: str) -> str:
    """``%chat approve [ID]`` / ``%chat deny [ID]``: one line saying what was answered."""
    answered = pauses.answer(pending, choice)
    name = answered.subject
    if choice == "always":
        return f"{answered.id}: {name} runs now, and from now on without asking in this session."
    if answered.answer == "run":
        return f"{answered.id}: {name} runs now; its reply goes on where it was asked."
    return f"{answered.id}: {name} was declined; the model is told so."
