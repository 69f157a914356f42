"""What a message can carry from the notebook: the last error, recent cells, the variables.

Every piece is bounded: each item of ``--context`` has a character budget, and every cut
is marked in the text itself, so the model (and the user, in ``--dry-run``) sees that
something was left out. Values are described, never dumped: a DataFrame is its shape,
columns, dtypes and a few rows; an array its shape, dtype and a few values. pandas,
polars and NumPy are recognised by their attributes (duck typing): none of them is a
dependency.

A cut never leaves part of a secret behind (``_secrets.trim_cut``): what is sent is
scrubbed of whole secret values afterwards, and a half would go through.

Nothing here imports IPython: the caller passes the namespace, the exception and the
hooks' calls (:class:`PrintedOutput`).
"""

from __future__ import annotations

import linecache
import os
import re
import reprlib
import sys
import sysconfig
import threading
import traceback
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._secrets import trim_cut
from .errors import ConfigurationError

__all__ = [
    "BUDGETS",
    "Context",
    "PrintedOutput",
    "cells_context",
    "clip",
    "error_context",
    "parse_spec",
    "as_text",
    "summarize",
    "vars_context",
]

#: characters each item of ``--context`` may add
BUDGETS = {"error": 6000, "cells": 6000, "vars": 3000}
#: lines of a DataFrame / items of a sequence shown in a summary
PREVIEW_ROWS = 5
PREVIEW_ITEMS = 10
#: the notebook's own names, never listed as the user's variables
_HIDDEN = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def clip(text: str, budget: int, what: str = "") -> str:
    """``text`` within ``budget`` characters; a cut keeps both ends and says how much went."""
    if len(text) <= budget:
        return text
    return _ends(text, text, len(text), budget, what)


def _ends(start: str, end: str, total: int, budget: int, what: str) -> str:
    """The first and last characters, within ``budget``, of a text of ``total`` characters
    that begins with ``start`` and ends with ``end`` (the whole text, or the two ends kept
    of it), with a marker saying how much went in between.

    No piece of a secret is left on either side of the cut (see ``_secrets.trim_cut``).
    """
    # room for the longest marker this cut can need: it says how much went, after trim_cut
    keep = max(0, budget - len(_marker(total, what)))
    first = keep * 2 // 3
    head, tail = trim_cut(start[:first], end[max(0, len(end) - (keep - first)) :] if keep > first else "")
    return head + _marker(total - len(head) - len(tail), what) + tail


def _marker(omitted: int, what: str) -> str:
    return f"\n[… {omitted:,} characters of {what or 'this'} left out …]\n"


# -- --context SPEC -------------------------------------------------------------------


@dataclass(frozen=True)
class ContextItem:
    kind: str  # error | cells | vars
    count: int = 0  # cells:N


def parse_spec(spec: str, what: str = "--context") -> list[ContextItem]:
    """``"error, cells:3, vars"`` → items; an unknown item is an error that says what exists.

    ``what``: where the spec came from, for the error (``ChatMagics.context``).
    """
    items: list[ContextItem] = []
    for raw in spec.split(","):
        word = raw.strip().lower()
        if not word:
            continue
        kind, _, arg = word.partition(":")
        if kind in ("error", "vars") and not arg:
            items.append(ContextItem(kind))
        elif kind == "cells" and (not arg or (arg.isdigit() and int(arg) > 0)):
            items.append(ContextItem("cells", int(arg) if arg else 1))
        else:
            raise ConfigurationError(
                f"{what} has no item {raw.strip()!r}: use error, cells:N (the last N cells) "
                "and vars, separated by commas, e.g. 'error,cells:2'."
            )
    return items


@dataclass
class Context:
    """The notebook context of one message: sections of text, and what each one holds."""

    sections: list[tuple[str, str]] = field(default_factory=list)

    def add(self, title: str, text: str) -> None:
        if text:
            self.sections.append((title, text))

    def __bool__(self) -> bool:
        return bool(self.sections)

    def attach(self, message: str) -> str:
        """The message as sent: the context first, then what the user wrote."""
        if not self.sections:
            return message
        parts = ["Context from my Jupyter notebook:"]
        parts += [f"### {title}\n{text}" for title, text in self.sections]
        return "\n\n".join(parts) + f"\n\n---\n\n{message}"

    @property
    def titles(self) -> list[str]:
        return [title for title, _ in self.sections]


# -- the last error -------------------------------------------------------------------

_LIBRARY_ROOTS = tuple(
    {
        os.path.normcase(p)
        for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"))
        if p
    }
)


_OWN_ROOT = os.path.normcase(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_user_code(filename: str) -> bool:
    """A frame of the user's: a notebook cell (IPython or ipykernel) or their own files."""
    if filename.startswith("<ipython-input-") or "/ipykernel_" in filename:
        return True
    if filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.abspath(filename))
    if path.startswith(_OWN_ROOT):  # chatmagic itself, also when installed from a checkout
        return False
    return "site-packages" not in path and "dist-packages" not in path and not path.startswith(_LIBRARY_ROOTS)


def error_context(exc: BaseException | None, budget: int = BUDGETS["error"]) -> str | None:
    """The exception, the user's frames (library frames summarized) and the failing cell's source."""
    if exc is None:
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    lines: list[str] = [f"{type(exc).__name__}: {exc}".rstrip(), "", "Traceback (most recent call last):"]
    skipped: list[str] = []
    failing_cell: str | None = None

    def flush() -> None:
        if skipped:
            libs = sorted({_library_name(f) for f in skipped})
            lines.append(f"  … {len(skipped)} frame(s) inside {', '.join(libs)} …")
            skipped.clear()

    for frame in frames:
        if not is_user_code(frame.filename):
            skipped.append(frame.filename)
            continue
        if len(lines) == 3:  # the shell's own frames before the first cell say nothing
            skipped.clear()
        flush()
        where = "a notebook cell" if _is_cell(frame.filename) else frame.filename
        lines.append(f"  {where}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
        if _is_cell(frame.filename):
            failing_cell = frame.filename
    flush()
    text = "\n".join(lines)
    if failing_cell is not None:
        source = "".join(linecache.getlines(failing_cell)).rstrip()
        if source:
            text += f"\n\nThe cell that raised:\n```python\n{source}\n```"
    return clip(text, budget, "the error")


def _is_cell(filename: str) -> bool:
    return filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def _library_name(filename: str) -> str:
    if os.path.normcase(os.path.abspath(filename)).startswith(_OWN_ROOT):
        return "chatmagic"
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            i = parts.index(marker)
            return parts[i + 1].removesuffix(".py") if i + 1 < len(parts) else marker
    return "the standard library" if not filename.startswith("<") else filename.strip("<>")


def last_error() -> BaseException | None:
    """The last exception the shell showed (IPython keeps it in ``sys.last_value``)."""
    value = getattr(sys, "last_value", None)
    return value if isinstance(value, BaseException) else None


# -- recent cells -----------------------------------------------------------------------


def cells_context(
    inputs: Sequence[str],
    outputs: Mapping[int, Any],
    count: int,
    budget: int = BUDGETS["cells"],
    printed: Mapping[int, Printed] | None = None,
) -> str | None:
    """The last ``count`` executed cells before this one: code, what it printed, its result.

    ``inputs`` is IPython's ``In`` (its last entry is the running cell, left out);
    ``outputs`` its ``Out``; ``printed`` what each cell wrote to stdout and stderr
    (:class:`PrintedOutput`). Newest last.
    """
    numbers = [n for n in range(1, len(inputs) - 1) if inputs[n].strip()][-count:]
    if not numbers:
        return None
    per_cell = max(200, budget // len(numbers))
    blocks = []
    for n in numbers:
        block = f"In [{n}]:\n```python\n{inputs[n].rstrip()}\n```"
        output = (printed or {}).get(n)
        text = output.text(per_cell // 2).rstrip() if output is not None else ""
        if text:
            block += f"\nPrinted:\n```\n{text}\n```"
        if n in outputs:
            block += f"\nOut[{n}]:\n```\n{summarize(outputs[n], per_cell // 2)}\n```"
        blocks.append(clip(block, per_cell, f"cell {n}"))
    return clip("\n\n".join(blocks), budget, "the cells")


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

    def __init__(self, keep: int = BUDGETS["cells"] // 2) -> None:
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
            return clip(_as_shown(head + tail), budget, "the printed output")
        start, end = _as_shown(head), _as_shown(tail)
        total -= len(head) - len(start) + len(tail) - len(end)
        return _ends(start, end, total, budget, "the printed output")


def _as_shown(text: str) -> str:
    lines = _ANSI.sub("", text).replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


# -- variables --------------------------------------------------------------------------


def vars_context(namespace: Mapping[str, Any], budget: int = BUDGETS["vars"]) -> str | None:
    """The user's variables: name, type, and shape or length. No values."""
    rows = []
    for name, value in namespace.items():
        if name.startswith("_") or name in _HIDDEN or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type) and value.__module__ in ("builtins", "typing"):
            continue
        rows.append(f"- {name}: {describe_type(value)}")
    if not rows:
        return None
    return clip("\n".join(rows), budget, "the variables")


def describe_type(value: Any) -> str:
    """``DataFrame (100000 rows × 3 columns)``, ``ndarray float64 (3, 4)``, ``list of 12``, ``int``."""
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        dtype = getattr(value, "dtype", None)
        if len(shape) == 2 and _columns(value) is not None:
            return f"{kind} ({shape[0]} rows × {shape[1]} columns)"
        return f"{kind}{f' {dtype}' if dtype is not None else ''} shape {shape}"
    if isinstance(value, (str, bytes)):
        return f"{kind} of length {len(value)}"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return "function"
    if isinstance(value, type):
        return "class"
    return kind


# -- values as summaries ---------------------------------------------------------------


def summarize(value: Any, budget: int) -> str:
    """A value as text for a model, within ``budget`` (see :func:`as_text`)."""
    return clip(as_text(value, repr), budget, "the value")


def as_text(value: Any, plain: Callable[[Any], str] = str) -> str:
    """Tables, arrays and long containers as summaries; anything else as ``plain(value)``.

    A 100,000-row DataFrame becomes its shape, columns, dtypes and first rows, never
    its full text; the summary costs the same whatever the size of the data.
    """
    if isinstance(value, str):
        return value
    for check, make in _SUMMARIES:
        if check(value):
            try:
                return make(value)
            except Exception:  # noqa: BLE001 - a library's odd object: fall back to its text
                break
    try:
        return plain(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the message
        return f"<{type(value).__name__}: could not be shown ({type(exc).__name__})>"


def _columns(value: Any) -> list[str] | None:
    columns = getattr(value, "columns", None)
    if columns is None or isinstance(columns, (str, bytes)) or callable(columns):
        return None
    try:
        return [str(c) for c in list(columns)]
    except Exception:  # noqa: BLE001
        return None


def _is_table(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return (
        isinstance(shape, tuple)
        and len(shape) == 2
        and _columns(value) is not None
        and callable(getattr(value, "head", None))
    )


def _table(value: Any) -> str:
    rows, cols = value.shape
    columns = _columns(value) or []
    dtypes = getattr(value, "dtypes", None)
    kinds: list[str]
    if dtypes is not None and hasattr(dtypes, "items") and callable(dtypes.items):
        kinds = [f"{c}: {t}" for c, t in dtypes.items()]  # pandas: a Series of dtypes
    elif isinstance(dtypes, list) and len(dtypes) == len(columns):
        kinds = [f"{c}: {t}" for c, t in zip(columns, dtypes, strict=True)]  # polars
    else:
        kinds = columns
    head = value.head(PREVIEW_ROWS)
    preview = head.to_string() if callable(getattr(head, "to_string", None)) else str(head)
    return (
        f"{type(value).__name__} with {rows:,} rows and {cols} columns.\n"
        f"Columns and types: {', '.join(kinds)}\n"
        f"First {min(rows, PREVIEW_ROWS)} rows:\n{preview}"
    )


def _is_array(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return (
        isinstance(shape, tuple)
        and hasattr(value, "dtype")
        and hasattr(value, "ndim")
        and hasattr(value, "flat")
    )


def _array(value: Any) -> str:
    size = 1
    for n in value.shape:
        size *= n
    first = []
    for i, item in enumerate(value.flat):
        if i >= PREVIEW_ITEMS:
            break
        first.append(repr(item.item() if hasattr(item, "item") else item))
    more = ", …" if size > PREVIEW_ITEMS else ""
    return f"{type(value).__name__} of shape {value.shape}, dtype {value.dtype}; first values: [{', '.join(first)}{more}]"


def _is_series(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return (
        isinstance(shape, tuple)
        and len(shape) == 1
        and hasattr(value, "dtype")
        and callable(getattr(value, "head", None))
    )


def _series(value: Any) -> str:
    head = value.head(PREVIEW_ITEMS)
    preview = head.to_string() if callable(getattr(head, "to_string", None)) else str(head)
    name = getattr(value, "name", None)
    return (
        f"{type(value).__name__}{f' {name!r}' if name is not None else ''} of length {value.shape[0]:,}, "
        f"dtype {value.dtype}; first values:\n{preview}"
    )


def _is_long_container(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, dict)) and len(value) > PREVIEW_ITEMS


class _Repr(reprlib.Repr):
    """reprlib's short reprs, whose cuts, like ours, leave no piece of a secret behind."""

    def repr_str(self, x: str, level: int) -> str:
        n = self.maxstring
        # the ends are all a cut keeps: a long string is not copied whole
        return self._cut(repr(x if len(x) <= 2 * n else x[:n] + x[-n:]), n)

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            return self._cut(repr(x), self.maxother)
        except Exception:  # noqa: BLE001 - as reprlib does with a broken __repr__
            return f"<{type(x).__name__} instance at {id(x):#x}>"

    @staticmethod
    def _cut(text: str, limit: int) -> str:
        if len(text) <= limit:
            return text
        keep = max(0, limit - 3) // 2
        head, tail = trim_cut(text[:keep], text[len(text) - keep :])
        return f"{head}...{tail}"


def _container(value: Any) -> str:
    r = _Repr()
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdict = PREVIEW_ITEMS
    r.maxstring = r.maxother = 200
    r.maxlevel = 3
    return f"{type(value).__name__} of {len(value):,} items; the first {PREVIEW_ITEMS}: {r.repr(value)}"


_SUMMARIES: list[tuple[Callable[[Any], bool], Callable[[Any], str]]] = [
    (_is_table, _table),
    (_is_series, _series),
    (_is_array, _array),
    (_is_long_container, _container),
]
