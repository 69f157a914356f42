"""The user's last error: what ``%chat fix`` and ``-e`` explain.

IPython keeps the last exception it showed in ``sys.last_value``, whoever raised it: after
``1/0`` and then a stopped reply, that is chatmagic's ``TurnStopped``; after a mistyped
``%chat`` command, its ``UsageError``. Neither is the user's error. So the extension
watches cells end (the shell's ``post_run_cell`` event) and keeps the last exception of a
cell unless chatmagic raised it itself (:meth:`LastError.ours` marks those).

Nothing here imports IPython: the caller passes the shell's ``ExecutionResult``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LastError"]

_CELL_MAGICS = ("%%chat ", "%%chat\n", "%%chatmagic ", "%%chatmagic\n")


class LastError:
    """The last exception one of the user's cells raised (never one of chatmagic's)."""

    def __init__(self) -> None:
        self.value: BaseException | None = None
        # what chatmagic raised out of the running cell; compared by identity at its end
        self._ours: BaseException | None = None

    def ours(self, exc: BaseException) -> None:
        """``exc`` leaves chatmagic (usage, provider failure, stop): not the user's error."""
        self._ours = exc

    def cell_ended(self, result: Any) -> None:
        """A cell ended with the shell's ``ExecutionResult``: keep its error if it is the user's."""
        ours, self._ours = self._ours, None
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if not isinstance(error, BaseException) or error is ours:
            return
        # a %%chat cell is chatmagic's whole: an error there is ours even when it did not
        # pass through the magic (Ctrl-C landing in IPython's code just before it ran)
        source = getattr(getattr(result, "info", None), "raw_cell", None)
        if isinstance(source, str) and source.lstrip().startswith(_CELL_MAGICS):
            return
        self.value = error
