"""What a cell's message takes from the notebook: ``--attach`` images and ``--context`` items.

The user's namespace and objects are untrusted: looking at them may raise anything, and
that is a one-line refusal (ConfigurationError), never a traceback. The cells are read
as the user typed them, not as IPython rewrote them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._lasterror import LastError
from .context import Context, ContextItem, cells_context, error_context, parse_spec, vars_context
from .errors import ConfigurationError
from .options import Attachment, attachment_from
from .printed import PrintedOutput
from .summaries import Deadline, could_not_read


def attachment(ns: dict[str, Any], name: str) -> Attachment:
    """``--attach NAME``: the image a variable (or ``Out[n]``, or a file path) holds.

    Looking at the user's object may raise anything (a proxy outside its context, an
    undefined template value): that is a one-line refusal, never a traceback."""
    try:
        return _find_attachment(ns, name)
    except ConfigurationError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's object, untrusted
        raise ConfigurationError(f"--attach {name}: {could_not_read(name, exc)}.") from None


def _find_attachment(ns: dict[str, Any], name: str) -> Attachment:
    out = re.fullmatch(r"Out\[(\d+)\]", name.strip())
    if out:
        outputs = ns.get("Out") or {}
        if int(out.group(1)) not in outputs:
            raise ConfigurationError(f"--attach {name}: there is no Out[{out.group(1)}] (no such result).")
        return attachment_from(outputs[int(out.group(1))], name)
    value: Any = ns
    parts = name.strip().split(".")
    found = parts[0] in ns
    if found:
        value = ns[parts[0]]
        for attr in parts[1:]:
            value = getattr(value, attr, None)
    if not found or value is None:
        if Path(name).expanduser().is_file():
            return attachment_from(name, Path(name).name)
        raise ConfigurationError(
            f"--attach {name}: no variable or image file by that name. Attach a variable holding a figure, "
            "a PIL image, PNG/JPEG bytes or a path, or Out[n]."
        )
    return attachment_from(value, name)


def context_items(spec: str) -> list[ContextItem]:
    if not spec:
        return []
    return list(dict.fromkeys(parse_spec(spec)))  # an item named twice is added once


def gather(
    items: list[ContextItem], *, shell: Any, ns: dict[str, Any], last_error: LastError, printed: PrintedOutput
) -> Context:
    """The notebook context the items ask for (see chatmagic.context)."""
    found = Context()
    deadline = Deadline()  # for all the values of this message together
    for item in items:
        if item.kind == "error":
            found.add("Error", last_error_context(shell, last_error) or "")
        elif item.kind == "cells":
            text = cells_context(
                _inputs(shell, ns), ns.get("Out") or {}, item.count, printed=printed, deadline=deadline
            )
            found.add(f"Last {item.count} cell{'s' if item.count > 1 else ''}", text or "")
        elif item.kind == "vars":
            found.add("Variables", vars_context(ns, deadline=deadline) or "")
    return found


def last_error_context(shell: Any, last_error: LastError) -> str | None:
    """The user's last error, its cells shown as they typed them; None when there is none."""
    return error_context(last_error.value, as_typed=lambda source: _as_typed(shell, source))


def _inputs(shell: Any, ns: dict[str, Any]) -> list[str]:
    """The cells as the user typed them (``In`` holds IPython's rewriting of ``%magic``
    lines: ``get_ipython().run_line_magic('chat', 'fix')`` for ``%chat fix``)."""
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None)
    return list(raw) if isinstance(raw, list) and raw else list(ns.get("In") or [])


def _as_typed(shell: Any, source: str) -> str:
    """The cell the user typed whose rewriting Python ran as ``source``."""
    history = getattr(shell, "history_manager", None)
    parsed = getattr(history, "input_hist_parsed", None) or []
    raw = getattr(history, "input_hist_raw", None) or []
    for n in range(min(len(parsed), len(raw)) - 1, 0, -1):  # the newest first
        if parsed[n].rstrip() == source.rstrip():
            return str(raw[n]).rstrip()
    return source
