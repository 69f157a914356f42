"""The pause: a turn waits for the user's answer without blocking the kernel.

One mechanism for every question a turn asks the user before it goes on: a tool call to
approve (answers ``run``, ``deny``, ``always``: issue 18) and a request over budget
(``send``, ``cancel``: issue 19). The turn awaits a :class:`Pending` on the session's
background loop (chatmagic.runner); the kernel's main thread is free, so other cells run,
and the answer comes from any thread: a click in the cell or the panel, ``%chat approve
[ID]`` / ``%chat deny [ID]`` in any cell, or the terminal's prompt line.

Rules:

- **No one to ask, no wait.** A question is asked only when someone can answer it
  (:class:`Audience`): a person at a frontend (the cell's execute request allowed stdin:
  nbclient and ``jupyter execute`` send ``allow_stdin: false``), a widget a frontend has
  rendered (it said hello), or terminal IPython. Otherwise the question is answered at once
  with the decline (``deny`` / ``cancel``, ``by="no one to ask"``), so Run All never hangs
  and never runs a tool unapproved. A widget gets ``hello_grace`` seconds to say hello.
- **Approvals live in the running session only.** Nothing here reads a notebook file or a
  record: a saved notebook can never carry an approval to the next person who runs it.
- **"Always" is one function in one session**: the name of the tool in this
  :class:`Pauses` (one per ChatSession), until the kernel restarts or :meth:`Pauses.forget`.
- **An answer is taken once**: the first one wins (a click and ``%chat approve`` racing),
  a later one is a one-line error; so is an answer that is not one of the question's, an
  unknown id, or no id while several questions wait.
- **Stop ends the wait**: a stopped turn (Stop, Ctrl-C, ``%chat stop``) answers its
  questions with their decline (``by="stopped"``, :meth:`Pauses.cancel`; every question:
  :meth:`Pauses.cancel_all`), so the turn ends keeping what was said.

How it is used: the session owns ``pauses = Pauses()`` and an ``audience = Audience()``;
a cell that offers tools calls ``audience.from_request(toolrun.stdin_allowed(shell))``, the
terminal sets ``audience.terminal``. A turn's tool loop (chatmagic.toolloop) asks
``pauses.ask("tool", name, {"arguments": ...})`` and awaits ``pauses.reach(pending,
audience)``; the cell draws the waiting calls as cards whose buttons (the reply view) call
``pauses.answer(id, choice)``, as ``%chat approve [ID] [--always]`` / ``%chat deny [ID]`` do
(chatmagic._toolcell). The budget pause asks ``pauses.ask("budget", model, shown)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["ANSWERS", "DECLINE", "Audience", "Pauses", "Pending", "PauseError"]

#: the answers each kind of question takes
ANSWERS: Mapping[str, tuple[str, ...]] = {"tool": ("run", "deny", "always"), "budget": ("send", "cancel")}
#: the answer given when no one can answer, or the turn is stopped
DECLINE: Mapping[str, str] = {"tool": "deny", "budget": "cancel"}
#: one answer at a time, in every session (answers are rare: no lock per question)
_SETTLING = threading.Lock()
#: how long a question waits for a widget to say hello before it counts as not shown
HELLO_GRACE = 2.0


class PauseError(ConfigurationError):
    """An answer that cannot be taken (one line: the skin shows it as a UsageError)."""


@dataclass
class Pending:
    """One question a turn waits on."""

    id: str
    kind: str  # tool | budget
    #: what the question is about: the tool's name (what "always" remembers), or the model
    subject: str
    #: what is shown: for a tool, {"arguments": {...}} in full; for a budget, the glass box
    shown: Mapping[str, Any] = field(default_factory=dict)
    answer: str | None = None
    #: who answered: "user", "always", "no one to ask", "stopped"
    by: str | None = None
    _future: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future, repr=False)

    @property
    def done(self) -> bool:
        return self._future.done()

    async def wait(self) -> str:
        """The answer, awaited on any asyncio loop (the session's background loop)."""
        return await asyncio.wrap_future(self._future)

    def result(self, timeout: float | None = None) -> str:
        """The answer, waited for by a thread (a terminal prompt, a test)."""
        return self._future.result(timeout)

    def _settle(self, answer: str, by: str) -> bool:
        with _SETTLING:  # who answered is known before the turn wakes on the answer
            if self._future.done():
                return False  # answered already (or the turn was stopped): the first answer wins
            self.answer, self.by = answer, by
            self._future.set_result(answer)
        return True


class Audience:
    """Who can answer a question now (see the module docstring)."""

    def __init__(self, hello_grace: float = HELLO_GRACE) -> None:
        self.hello_grace = hello_grace
        #: the running cell's execute request allowed stdin (None: not in a kernel's cell)
        self.stdin: bool | None = None
        #: terminal IPython: the prompt line can ask
        self.terminal = False
        self._hello = threading.Event()

    def from_request(self, allow_stdin: bool | None) -> None:
        """A cell starts: what its execute request said (``allow_stdin``)."""
        self.stdin = allow_stdin

    def hello(self) -> None:
        """A widget was rendered by a frontend (its first message came)."""
        self._hello.set()

    @property
    def present(self) -> bool:
        return self.terminal or bool(self.stdin) or self._hello.is_set()

    async def reachable(self) -> bool:
        """Someone can answer: present now, or a widget says hello within the grace time."""
        if self.present:
            return True
        if self.stdin is False or self.hello_grace <= 0:
            return False  # headless: nbclient and jupyter execute; a widget there proves nothing
        await asyncio.get_running_loop().run_in_executor(None, self._hello.wait, self.hello_grace)
        return self.present


class Pauses:
    """The questions waiting in one session, and the "always" answers given in it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, Pending] = {}
        self._always: set[str] = set()
        self._ids = itertools.count(1)

    def ask(self, kind: str, subject: str, shown: Mapping[str, Any] | None = None) -> Pending:
        """A new question; answered already when "always" covers it (call :meth:`reach` next)."""
        if kind not in ANSWERS:
            raise ValueError(f"no kind of question {kind!r}")
        pending = Pending(f"{kind[0]}{next(self._ids)}", kind, subject, dict(shown or {}))
        with self._lock:
            always = kind == "tool" and subject in self._always
            if not always:
                self._waiting[pending.id] = pending
        if always:  # settled outside the lock: settling takes _SETTLING, and _drop this lock
            pending._settle("run", "always")
            return pending
        pending._future.add_done_callback(lambda _: self._drop(pending.id))
        return pending

    async def reach(self, pending: Pending, audience: Audience) -> str:
        """Wait for the answer, or decline at once when no one can give it."""
        if not pending.done and not await audience.reachable():
            pending._settle(DECLINE[pending.kind], "no one to ask")
        return await pending.wait()

    def answer(self, pending_id: str | None, choice: str) -> Pending:
        """Answer a waiting question (from any thread); ``pending_id`` None: the only one waiting."""
        with self._lock:
            waiting = dict(self._waiting)
        if pending_id is None:
            if not waiting:
                raise PauseError("Nothing is waiting for an answer.")
            if len(waiting) > 1:
                raise PauseError(
                    f"Several questions are waiting ({', '.join(waiting)}): name one, e.g. {next(iter(waiting))}."
                )
            (pending,) = waiting.values()
        else:
            found = waiting.get(pending_id.strip())
            if found is None:
                listed = f" (waiting: {', '.join(waiting)})" if waiting else ""
                raise PauseError(
                    f"No question {pending_id.strip()!r} is waiting{listed}: it may have been answered already."
                )
            pending = found
        choice = {"approve": "run", "yes": "run", "no": "deny"}.get(choice, choice)
        if pending.kind == "budget":
            choice = {"run": "send", "deny": "cancel"}.get(choice, choice)
        if choice not in ANSWERS[pending.kind]:
            raise PauseError(f"{pending.id} takes {', '.join(ANSWERS[pending.kind])}, not {choice!r}.")
        remember = choice == "always" and not self.always(pending.subject)
        if remember:  # remembered before the turn hears the answer: its next call asks no more
            with self._lock:
                self._always.add(pending.subject)
        if not pending._settle("run" if choice == "always" else choice, "user"):
            if remember:
                self.forget(pending.subject)
            raise PauseError(f"{pending.id} was answered already ({pending.answer}).")
        return pending

    def waiting(self) -> list[Pending]:
        with self._lock:
            return list(self._waiting.values())

    def always(self, subject: str) -> bool:
        with self._lock:
            return subject in self._always

    def allow(self, subject: str) -> None:
        """ "Always" for ``subject`` before it is asked (pre-approval, in this session only)."""
        with self._lock:
            self._always.add(subject)

    def forget(self, subject: str | None = None) -> None:
        """Forget "always" for one tool, or for all."""
        with self._lock:
            if subject is None:
                self._always.clear()
            else:
                self._always.discard(subject)

    def cancel_all(self, by: str = "stopped") -> None:
        """Answer every waiting question with its decline (Stop, Ctrl-C, the kernel closing)."""
        self.cancel([p.id for p in self.waiting()], by)

    def cancel(self, ids: Iterable[str], by: str = "stopped") -> None:
        """Answer these questions with their decline, those still waiting (one turn stopped)."""
        with self._lock:
            found = [self._waiting[i] for i in ids if i in self._waiting]
        for pending in found:
            pending._settle(DECLINE[pending.kind], by)

    def _drop(self, pending_id: str) -> None:
        with self._lock:
            self._waiting.pop(pending_id, None)
