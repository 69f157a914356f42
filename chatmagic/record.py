"""History that survives a kernel restart.

Each exchange a ``%%chat`` cell completes is written into the notebook itself, in the
metadata of the cell's reply output (``metadata["chatmagic"]``): the conversation's
name and system prompt, the prompt as sent, the reply, provider, model and timings.
Saving the notebook saves the conversations; :func:`chatmagic.restore.restore` rebuilds
them from the saved file.

A saved notebook is outside data: it may have been edited by hand, by another tool, or
by another version of chatmagic. Every record is checked field by field before it
becomes an :class:`~chatmagic.session.Exchange`; a record with a missing or wrong-typed
field is skipped and counted, never guessed at. Lone surrogates (``"\\ud800"`` escapes,
which JSON allows and UTF-8 cannot encode) are replaced by U+FFFD.

Rebuilding conversations from these records is :mod:`chatmagic.restore`'s job; writing a
conversation to a file, :mod:`chatmagic.export`'s.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compact import read_summarizes
from .errors import ConfigurationError
from .options import parse_chain
from .providers._lines import valid_text
from .session import DEFAULT_CONVERSATION, Conversation, Exchange, Message
from .toolstep import ToolStep

__all__ = [
    "SavedExchange",
    "check_record",
    "checked_records",
    "current_notebook",
    "exchange_metadata",
    "exchange_record",
    "read_notebook",
    "saved_exchanges",
]

METADATA_KEY = "chatmagic"
FORMAT_VERSION = 1


def exchange_record(conversation: Conversation, exchange: Exchange) -> dict[str, Any]:
    """One exchange with what its conversation needs to be rebuilt."""
    return {
        "version": FORMAT_VERSION,
        "conversation": conversation.name,
        "epoch": conversation.epoch,
        "system": conversation.system,
        "chain": conversation.provider,
        **exchange.to_dict(),
    }


def exchange_metadata(conversation: Conversation, exchange: Exchange) -> dict[str, Any]:
    """What goes into a cell's reply output's metadata."""
    return {METADATA_KEY: exchange_record(conversation, exchange)}


# -- reading a saved notebook ---------------------------------------------------------


@dataclass(frozen=True)
class SavedExchange:
    """A checked record: an exchange and what its conversation was when it was saved."""

    conversation: str
    epoch: str | None
    system: str | None
    chain: str | None
    exchange: Exchange


#: the largest file read as a notebook: notebooks with many figures run to tens of MB
MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024
#: what is read first, to tell a notebook (a JSON object) from any other file before the rest
_HEAD_BYTES = 4096


def read_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The notebook's JSON object; ConfigurationError when there is none to read.

    Only a regular file of at most :data:`MAX_NOTEBOOK_BYTES` is read, and only once its
    first bytes look like a JSON object: ``/dev/zero``, a pipe or a multi-GB file is
    refused in one line, never read until memory runs out.
    """
    text = _notebook_text(path)
    shown = os.fspath(path)
    try:
        nb = json.loads(text)
    except RecursionError:
        raise ConfigurationError(
            f"{shown!r} is not a readable notebook: its JSON is nested too deeply to read."
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"{shown!r} is not a readable notebook ({exc}).") from None
    if not isinstance(nb, dict):
        raise ConfigurationError(
            f"{shown!r} is not a notebook: it holds a JSON {type(nb).__name__}, not an object with cells."
        )
    return nb


def _notebook_text(path: str | os.PathLike[str]) -> str:
    shown = os.fspath(path)
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigurationError(f"There is no notebook at {shown!r}.") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{shown!r} is a folder: give the path of a .ipynb file.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigurationError(f"Cannot read {shown!r}: {reason}.") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno())
        if stat.S_ISDIR(mode.st_mode):
            raise ConfigurationError(f"{shown!r} is a folder: give the path of a .ipynb file.")
        if not stat.S_ISREG(mode.st_mode):
            raise ConfigurationError(
                f"{shown!r} is not a notebook: it is a device, pipe or socket, not a file. "
                "Give the path of a .ipynb file."
            )
        if mode.st_size > MAX_NOTEBOOK_BYTES:
            raise ConfigurationError(_too_large(shown, mode.st_size))
        try:
            head = f.read(_HEAD_BYTES)
            start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
            if start and start != b"{":
                raise ConfigurationError(
                    f"{shown!r} is not a notebook: it does not begin as a JSON object (a notebook begins with '{{')."
                )
            # a file that grows while read (or one whose size the system does not report, as
            # in /proc) stops at the limit
            data = head + f.read(MAX_NOTEBOOK_BYTES + 1 - len(head))
        except OSError as exc:
            raise ConfigurationError(f"Cannot read {shown!r}: {exc.strerror or exc}.") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ConfigurationError(_too_large(shown, len(data)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{shown!r} is not a notebook: it is not UTF-8 text.") from None


def _too_large(shown: str, size: int) -> str:
    return (
        f"{shown!r} is {size / 2**20:,.0f} MB, more than chatmagic reads as a notebook "
        f"({MAX_NOTEBOOK_BYTES // 2**20} MB). Give the path of a .ipynb file."
    )


def saved_exchanges(nb: Mapping[str, Any]) -> tuple[list[SavedExchange], int]:
    """The valid records of a notebook, in cell order, and how many were not valid.

    What counts as not valid: a record with a missing or wrong-typed field, and any part
    of the notebook on the way to records that does not have a notebook's shape (cells
    that are not a list, a cell that is not an object, ...).
    """
    return checked_records(_raw_records(nb))


def checked_records(raws: Iterable[Any]) -> tuple[list[SavedExchange], int]:
    """The records among ``raws`` that pass :func:`check_record`, and how many did not
    (from a notebook or from the log: one rule for both)."""
    found: list[SavedExchange] = []
    invalid = 0
    for raw in raws:
        saved = check_record(raw) if isinstance(raw, dict) else None
        if saved is None:
            invalid += 1
        else:
            found.append(saved)
    return found, invalid


_MALFORMED = object()  # stands for a part of the notebook that is not a notebook's shape


def _raw_records(nb: Mapping[str, Any]) -> Iterator[Any]:
    """Every chatmagic record as saved (not yet checked), or _MALFORMED for a broken part."""
    cells = nb.get("cells", [])
    if not isinstance(cells, list):
        yield _MALFORMED
        return
    for cell in cells:
        if not isinstance(cell, dict):
            yield _MALFORMED
            continue
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            yield _MALFORMED
            continue
        for output in outputs:
            if not isinstance(output, dict):
                yield _MALFORMED
                continue
            metadata = output.get("metadata")
            if metadata is None:
                continue
            if not isinstance(metadata, dict):
                yield _MALFORMED
                continue
            if METADATA_KEY not in metadata:
                continue
            saved = metadata[METADATA_KEY]
            if not isinstance(saved, dict):
                yield _MALFORMED
            elif "exchanges" in saved:  # a panel's log: a list of records
                records = saved["exchanges"]
                if isinstance(records, list) and _optional(saved, "version", int) is not _BAD:
                    yield from records
                else:
                    yield _MALFORMED
            else:
                yield saved


_BAD = object()  # a field of the wrong type


def _optional(record: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """``record[name]`` if it is of ``kind``; ``default`` if missing or null; else _BAD."""
    value = record.get(name)
    if value is None:
        return default
    if kind is int:  # bool is an int to Python, not to a record
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            value = float(value) if ok else value
        except OverflowError:  # an integer beyond any float
            ok = False
        ok = ok and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        return _BAD
    return valid_text(value) if isinstance(value, str) else value


def check_record(record: Mapping[str, Any]) -> SavedExchange | None:
    """The record as a SavedExchange, or None if any field is missing or of the wrong type."""
    if not isinstance(record.get("user"), str) or not isinstance(record.get("assistant"), str):
        return None
    values = {
        "version": _optional(record, "version", int),
        "conversation": _optional(record, "conversation", str),
        "epoch": _optional(record, "epoch", str),
        "system": _optional(record, "system", str),
        "chain": _optional(record, "chain", str),
        "provider": _optional(record, "provider", str, ""),
        "model": _optional(record, "model", str, ""),
        "key": _optional(record, "key", str),
        "stopped": _optional(record, "stopped", bool, False),
        "first_text_s": _optional(record, "first_text_s", float),
        "total_s": _optional(record, "total_s", float),
        "finished_at": _optional(record, "finished_at", float, 0.0),
        "seq": _optional(record, "seq", int, 0),
        "context_hash": _optional(record, "context_hash", str),
        # added later: absent in older notebooks
        "finish_reason": _optional(record, "finish_reason", str),
        "usage": _usage(record),
        "reasoning": _optional(record, "reasoning", str, ""),
        "tools": _tools(record),
    }
    values["chain"] = _chain(values["chain"])
    if isinstance(values["seq"], int) and not 0 <= values["seq"] <= _MAX_SEQ:
        values["seq"] = _BAD  # a place no conversation reaches: numbering on from it breaks
    summarizes = read_summarizes(record.get("summarizes"))  # a summary names its originals
    if summarizes is None or any(value is _BAD for value in values.values()):
        return None
    exchange = Exchange(
        user=Message("user", valid_text(record["user"])),
        assistant=Message("assistant", valid_text(record["assistant"]), stopped=values["stopped"]),
        provider=values["provider"],
        model=values["model"],
        key=values["key"],
        first_text_s=values["first_text_s"],
        total_s=values["total_s"],
        finished_at=values["finished_at"],
        seq=values["seq"],
        context_hash=values["context_hash"],
        finish_reason=values["finish_reason"],
        usage=values["usage"],
        reasoning=values["reasoning"],
        summarizes=summarizes,
        tools=values["tools"],
    )
    return SavedExchange(
        conversation=values["conversation"] or DEFAULT_CONVERSATION,
        epoch=values["epoch"],
        system=values["system"],
        chain=values["chain"],
        exchange=exchange,
    )


#: a token count no reply reaches (a trillion): a larger one is made up, and counts of
#: thousands of digits cannot even be printed (Python's int-to-text limit)
_MAX_COUNT = 10**12
#: the most token counts one reply reports (prompt, completion, reasoning, cached, ...)
_MAX_COUNTS = 32
#: a place in a conversation beyond any real one
_MAX_SEQ = 10**9


def _usage(record: Mapping[str, Any]) -> Any:
    """``usage``: None, or a few token counts (whole numbers, 0 to a trillion); else _BAD."""
    usage = _optional(record, "usage", dict)
    if usage is None or usage is _BAD:
        return usage
    if len(usage) > _MAX_COUNTS:
        return _BAD
    for name, count in usage.items():
        if not isinstance(name, str) or len(name) > 100:
            return _BAD
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= _MAX_COUNT:
            return _BAD
    return dict(usage)


def _tools(record: Mapping[str, Any]) -> Any:
    """``tools``: the turn's tool calls, shown again and never run (a saved step approves
    nothing: chatmagic.toolstep); absent in older records; else _BAD."""
    steps = _optional(record, "tools", list, [])
    if steps is _BAD:
        return steps
    out = []
    for data in steps:
        if not isinstance(data, dict):
            return _BAD
        try:
            step = ToolStep.from_dict(data)
        except TypeError:  # a field missing
            return _BAD
        texts = (step.id, step.name, step.arguments, step.state, step.result)
        if not all(isinstance(t, str) for t in texts) or not isinstance(step.step, int):
            return _BAD
        out.append(step)
    return out


def _chain(chain: Any) -> Any:
    """``chain``: None, or a provider list as ``-p`` takes it (normalized); else _BAD.

    It becomes the conversation's provider: a list with an empty name would fail every
    later turn of the conversation.
    """
    if chain is None or chain is _BAD:
        return chain
    try:
        return ",".join(parse_chain(chain))
    except ConfigurationError:
        return _BAD


def current_notebook(user_ns: Mapping[str, Any]) -> str | None:
    """The running notebook's path, where the frontend tells it."""
    for candidate in (
        user_ns.get("__vsc_ipynb_file__"),
        user_ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            # absolute, or relative to the server's root while the kernel runs in its folder
            for path in (Path(candidate), Path(Path(candidate).name)):
                if path.exists():
                    return str(path)
    return None
