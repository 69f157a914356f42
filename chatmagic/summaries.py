"""Values as text for a model: described, never dumped, and never trusted.

A DataFrame is its shape, columns, dtypes and a few rows; an array its shape, dtype and
a few values; a long container its first items. pandas, polars and NumPy are recognised
by their attributes (duck typing): none of them is a dependency.

A user's object is inspected as untrusted code: reading an attribute may raise anything
(``jinja2.StrictUndefined``, a Flask ``LocalProxy`` outside its application context), a
``__repr__`` may take seconds. Any exception becomes a note, "could not read x: …", and
the time spent is bounded (:class:`Deadline`): what was not done in time is named as left
out. Neither ever fails the turn.

Every cut is marked in the text, and never leaves part of a secret behind
(``chatmagic._text``): what is sent is scrubbed of whole secret values afterwards.
"""

from __future__ import annotations

import reprlib
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._text import cut_ends, cut_middle

#: the one middle cut (chatmagic._text), by the name the notebook modules use
clip = cut_middle

__all__ = [
    "SUMMARY_SECONDS",
    "Deadline",
    "as_text",
    "clip",
    "could_not_read",
    "describe_type",
    "summarize",
]

T = TypeVar("T")

#: lines of a DataFrame / items of a sequence shown in a summary
PREVIEW_ROWS = 5
PREVIEW_ITEMS = 10
#: seconds all the summaries of one message may take together
SUMMARY_SECONDS = 2.0


def could_not_read(name: str, exc: BaseException) -> str:
    """The note for a value whose inspection raised (the message itself may be hostile)."""
    try:
        why = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises too
        why = ""
    why = why.strip().splitlines()[0] if why.strip() else ""
    return f"could not read {name}: {type(exc).__name__}{f': {why[:200]}' if why else ''}"


class Deadline:
    """Time left for summarizing the values of one message.

    Summaries run on a worker thread, one batch at a time; the caller waits at most the
    time left. A value still being read when time runs out is left behind (its thread
    ends on its own, its result unused), and so are the values after it: the caller
    names them as left out. Python cannot stop a running ``__repr__``; it can stop
    waiting for one.
    """

    def __init__(self, seconds: float = SUMMARY_SECONDS) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def map(self, fn: Callable[[T], str], items: Sequence[T]) -> list[str | None]:
        """``fn`` of each item, in order; None for those not done in time."""
        results: list[str | None] = [None] * len(items)
        if not items or not self.remaining():
            return results
        stop = threading.Event()

        def work() -> None:
            for i, item in enumerate(items):
                if stop.is_set():
                    return
                try:
                    results[i] = fn(item)
                except Exception as exc:  # noqa: BLE001 - fn guards the value; this guards fn
                    results[i] = f"<{could_not_read('this value', exc)}>"

        worker = threading.Thread(target=work, name="chatmagic-summaries", daemon=True)
        worker.start()
        worker.join(self.remaining())
        if worker.is_alive():
            stop.set()
            self._end = 0.0  # the rest of this message's values are left out too
            return list(results)  # a copy: the worker may still fill in the one it was on
        return results

    def run(self, fn: Callable[[], str]) -> str | None:
        return self.map(lambda _: fn(), [None])[0]

    def left_out(self, what: str) -> str:
        return f"[{what} left out: summarizing took longer than {self.seconds:g} s]"


# -- types


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


def summarize(value: Any, budget: int, name: str = "") -> str:
    """A value as text for a model, within ``budget`` (see :func:`as_text`)."""
    return clip(as_text(value, repr, name), budget, "the value")


def as_text(value: Any, plain: Callable[[Any], str] = str, name: str = "") -> str:
    """Tables, arrays and long containers as summaries; anything else as ``plain(value)``.

    A 100,000-row DataFrame becomes its shape, columns, dtypes and first rows, never
    its full text; the summary costs the same whatever the size of the data. An object
    that raises when looked at becomes a note saying so (``name``: what to call it).
    """
    if issubclass(type(value), str):  # type(), not isinstance(): a proxy's __class__ may raise
        return value
    try:
        for check, make in _SUMMARIES:
            if check(value):
                try:
                    return make(value)
                except Exception:  # noqa: BLE001 - a library's odd object: fall back to its text
                    break
        return plain(value)
    except Exception as exc:  # noqa: BLE001 - a hostile object must not break the message
        return f"<{could_not_read(name or f'this {type(value).__name__}', exc)}>"


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
        if len(x) <= 2 * n:
            return self._cut(repr(x), n)
        # the ends are all a cut keeps: a long string is not copied whole (the marker still
        # counts what went of all of it)
        ends = repr(x[:n] + x[-n:])
        return cut_ends(ends, ends, len(ends) + len(x) - 2 * n, n, "the string")

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            return self._cut(repr(x), self.maxother)
        except Exception:  # noqa: BLE001 - as reprlib does with a broken __repr__
            return f"<{type(x).__name__} instance at {id(x):#x}>"

    @staticmethod
    def _cut(text: str, limit: int) -> str:
        return cut_middle(text, limit, "the repr")


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
