"""A reply in terminal IPython: plain text printed as it arrives, each piece once.

In a terminal, ``display()`` prints the ``text/plain`` of every bundle, so a display
handle updated N times prints the reply N times. Here the text is written to stdout as it
grows (the terminal keeps what was written), then the status line under it. No HTML, no
reprint; Ctrl-C interrupts the wait, and the caller stops the turn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from . import present

#: seconds between two looks at the reply: the terminal shows text within this delay
POLL = 0.05


def is_terminal(shell: Any) -> bool:
    """Terminal IPython with no rich frontend: a display would print its plain text."""
    if shell is None or not any(c.__name__ == "TerminalInteractiveShell" for c in type(shell).__mro__):
        return False
    from IPython.core.displaypub import DisplayPublisher

    # IPython's own tests and tools capture displays with another publisher: a rich frontend
    return type(getattr(shell, "display_pub", None)) is DisplayPublisher


class TerminalReply:
    """Writes what a turn adds to its text, once; then how it ended."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.printed = 0

    def follow(self, turn: Any, each: Callable[[], None] | None = None) -> None:
        """Print the reply as it grows until the turn ends (KeyboardInterrupt passes through).

        ``each``: called at every look (the tool calls: run them here, ask on the prompt line).
        """
        with _no_control_echo():
            while not turn.wait(POLL):
                self.catch_up(turn)
                if each is not None:
                    each()
            self.catch_up(turn)

    def catch_up(self, turn: Any) -> None:
        if turn.size <= self.printed:
            return
        text = turn.text
        if len(text) > self.printed:
            self.out.write(text[self.printed :])
            self.out.flush()
            self.printed = len(text)

    def end(self, turn: Any) -> None:
        """The rest of the text (a stopped turn may hold a last piece), then the status line."""
        self.catch_up(turn)
        status = present.final_status(turn)
        if self.printed:
            text = turn.text
            self.out.write("\n\n" if not text.endswith("\n") else "\n")
        self.out.write(f"— {status.text}\n")
        self.out.flush()


@contextmanager
def _no_control_echo() -> Iterator[None]:
    """While the reply prints, the terminal does not echo Ctrl-C as ``^C`` into its text.

    The terminal driver echoes control characters (ECHOCTL) at the cursor, which is in the
    middle of the reply: the stop is said by the status line instead.
    """
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):  # Windows, no terminal, a captured stdin
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHOCTL
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
