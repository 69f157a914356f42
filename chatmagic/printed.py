"""What each cell printed, kept while the extension is loaded (for ``--context cells:N``).

The stream objects stay; their ``write`` also copies into a small buffer of the running
cell's, in constant memory: the first and last characters and how many there were.

Nothing here imports IPython: the extension calls :meth:`PrintedOutput.start` and
:meth:`PrintedOutput.finish` from the shell's events.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._text import cut_ends, cut_middle

__all__ = ["Printed", "PrintedOutput"]

#: the most of a cell's output kept at each end: all the ``cells`` budget can show
KEEP_CHARS = 3000


class PrintedOutput(Mapping[int, "Printed"]):
    """What the last ``cells`` cells printed, by cell number (:class:`Printed`).

    The extension calls :meth:`start` before a cell runs and :meth:`finish` after it (the
    shell's ``pre_run_cell`` and ``post_run_cell`` events). In between, the ``write`` of
    ``sys.stdout`` and ``sys.stderr`` also copies into the cell's :class:`Printed`: the
    stream objects themselves stay, as in IPython's own output history, because ipykernel
    checks the class of ``sys.stdout``. ``quiet()`` says when a write is not the cell's
    printing (a terminal's display hook writing ``Out[n]:``, a display, a traceback).
    :meth:`stop` puts the streams back at once (unloading the extension).
    """

    def __init__(self, quiet: Callable[[], bool] = lambda: False, cells: int = 100) -> None:
        self._quiet = quiet
        self._cells = cells
        self._done: OrderedDict[int, Printed] = OrderedDict()
        self._running: Printed | None = None
        self._key: object = None
        self._patched: list[tuple[Any, Any, Any]] = []  # stream, our write, its own write if any

    def start(self, key: object) -> None:
        """A cell starts; ``key`` is what :meth:`finish` will be given for it. A cell that
        runs cells itself (``get_ipython().run_cell``) keeps one output for them all."""
        if self._running is not None:
            return
        output = self._running = Printed()
        self._key = key
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if stream is not None and not any(stream is s for s, _, _ in self._patched):
                self._patch(stream, output)

    def _patch(self, stream: Any, output: Printed) -> None:
        write = stream.write
        quiet = self._quiet

        def tee(data: Any, *args: Any, **kwargs: Any) -> Any:
            result = write(data, *args, **kwargs)
            # once its cell has ended (something wrapped this write since), a write is not kept
            if output.open and isinstance(data, str) and data and not quiet():
                output.add(data)
            return result

        own = getattr(stream, "__dict__", {}).get("write")
        try:
            stream.write = tee
        except (AttributeError, TypeError):  # a stream that takes no attributes: not watched
            return
        self._patched.append((stream, tee, own))

    def finish(self, key: object, number: int | None) -> None:
        """The cell of ``key`` ended (``None``: whichever runs); keep its output as ``number``."""
        output = self._running
        if output is None or (key is not None and key is not self._key):
            return
        self.stop()
        if number is not None:
            self._done.pop(number, None)
            self._done[number] = output
            while len(self._done) > self._cells:
                self._done.popitem(last=False)

    def stop(self) -> None:
        """Put the streams' ``write`` back (unless something else has replaced ours since)."""
        if self._running is not None:
            self._running.open = False
        self._running = self._key = None
        for stream, tee, own in self._patched:
            if getattr(stream, "__dict__", {}).get("write") is tee:
                if own is None:
                    del stream.write
                else:
                    stream.write = own
        self._patched.clear()

    def __getitem__(self, number: int) -> Printed:
        return self._done[number]

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._done))

    def __len__(self) -> int:
        return len(self._done)


# colours and cursor moves (terminal tracebacks, progress bars)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


class Printed:
    """One cell's printed text: its first and last ``keep`` characters (the most a cell
    can show within the ``cells`` budget) and how long it was, in constant memory."""

    def __init__(self, keep: int = KEEP_CHARS) -> None:
        self.open = True
        self._lock = threading.Lock()
        self._keep = keep
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.total = 0

    def add(self, data: str) -> None:
        with self._lock:
            self.total += len(data)
            if self._head_len < self._keep:
                self._head.append(data[: self._keep - self._head_len])
                self._head_len += len(self._head[-1])
                data = data[len(self._head[-1]) :]
            if data:
                self._tail.append(data[-self._keep :])
                self._tail_len += len(self._tail[-1])
                while self._tail_len - len(self._tail[0]) >= self._keep:
                    self._tail_len -= len(self._tail.popleft())

    def text(self, budget: int) -> str:
        """The text within ``budget``, as a terminal shows it (no colour codes; of a line
        rewritten with \\r, such as a progress bar, its last state); a cut is marked."""
        with self._lock:
            head = "".join(self._head)
            tail = "".join(self._tail)[-self._keep :]
            total = self.total
        if len(head) + len(tail) == total:
            return cut_middle(_as_shown(head + tail), budget, "the printed output")
        start, end = _as_shown(head), _as_shown(tail)
        total -= len(head) - len(start) + len(tail) - len(end)
        return cut_ends(start, end, total, budget, "the printed output")


def _as_shown(text: str) -> str:
    lines = _ANSI.sub("", text).replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)
