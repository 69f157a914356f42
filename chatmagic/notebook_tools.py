"""The built-in tools: they read the notebook, and run without asking.

Offered with ``--tools notebook`` (all of them) or by name: the variables (names, types,
shapes; no values), a bounded summary of one variable (the one ``--context`` uses), a
cell's source, printed output and result by execution count, the last error. Everything
they return is made by chatmagic.context, within its budgets, and goes through
``toolrun.result_text`` (scrubbed, bounded, marked) like any tool's result.

``propose_cell`` puts code the model wrote into a new cell below, the way ``%%chat -f
code`` does (``shell.set_next_input``), and never runs it. The integration step routes it
to the panel's "Insert as cell" button when the turn is the panel's (``insert=``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .context import (
    BUDGETS,
    cells_context,
    error_context,
    last_error,
    summarize,
    vars_context,
)
from .toolspec import ToolSpec, describe

__all__ = ["NOTEBOOK", "builtin_specs"]

#: ``--tools notebook`` offers these
NOTEBOOK = ("list_variables", "describe_variable", "read_cell", "last_error", "propose_cell")


def builtin_specs(
    shell: Any, printed: Mapping[int, Any] | None = None, insert: Callable[[str], None] | None = None
) -> dict[str, ToolSpec]:
    """The built-in tools over ``shell``'s namespace; ``printed``: what cells printed
    (``ChatMagics.printed``); ``insert``: how proposed code becomes a cell."""

    def namespace() -> dict[str, Any]:
        return shell.user_ns if shell is not None else {}

    def list_variables() -> str:
        """List the notebook's variables: names, types and shapes, no values."""
        return vars_context(namespace()) or "There are no variables yet."

    def describe_variable(name: str) -> str:
        """A bounded summary of one variable's value (a table as its shape, columns and first rows).

        Args:
            name: The variable's name.
        """
        ns = namespace()
        if name not in ns or name.startswith("_"):
            return f"There is no variable {name!r}: list_variables lists them."
        return summarize(ns[name], BUDGETS["vars"])

    def read_cell(number: int) -> str:
        """A cell's source, what it printed and its result, by its execution count.

        Args:
            number: The cell's execution count, as in In[number].
        """
        inputs = namespace().get("In") or []
        if not 0 < number < len(inputs) or not inputs[number].strip():
            return f"There is no cell In[{number}]."
        # the cells up to `number`, plus one more entry (cells_context leaves out the last: the running cell)
        text = cells_context([*inputs[: number + 1], ""], namespace().get("Out") or {}, 1, printed=printed)
        return text or f"There is no cell In[{number}]."

    def last_error_tool() -> str:
        """The last error a cell raised: the exception, the user's frames and the failing cell."""
        return error_context(last_error()) or "No cell has raised an error."

    last_error_tool.__name__ = "last_error"

    def propose_cell(code: str) -> str:
        """Put code into a new cell below the current one, for the user to read and run. It is not run.

        Args:
            code: The Python code of the cell.
        """
        if insert is not None:
            insert(code)
        elif shell is not None:
            shell.set_next_input(code, replace=False)
        return "The code was put into a new cell below for the user; it has not been run."

    tools = (list_variables, describe_variable, read_cell, last_error_tool, propose_cell)
    specs = [describe(f, read_only=True) for f in tools]
    return {s.name: s for s in specs}
