"""``%chat export``: a conversation written to a file, as Markdown or as JSON.

Markdown draws each exchange as every other view does (:func:`chatmagic.present.exchange_markdown`:
the reply's heading, its reasoning, its answer); JSON holds the exchanges in the record
format of :mod:`chatmagic.record`. Text is made valid Unicode before it is written, and a
path that cannot be written says why in one line and what to give instead.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from ._text import cut_end
from .errors import ConfigurationError
from .present import exchange_markdown
from .providers._lines import valid_text
from .session import Conversation

__all__ = ["export", "to_json", "to_markdown"]


def to_markdown(conv: Conversation) -> str:
    """The conversation as Markdown, each reply headed as everywhere else (chatmagic.present)."""
    lines = [f"# Conversation: {conv.name}", ""]
    if conv.system:
        lines += [f"**System:** {conv.system}", ""]
    for ex in conv.exchanges:
        lines += exchange_markdown(ex)
    return valid_text("\n".join(lines))


def to_json(conv: Conversation) -> str:
    data = {
        "conversation": conv.name,
        "system": conv.system,
        "provider": conv.provider,
        "exchanges": [ex.to_dict() for ex in conv.exchanges],
    }
    return valid_text(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def export(conv: Conversation, path: str | os.PathLike[str]) -> Path:
    """Write a conversation as Markdown, or as JSON when the path ends in ``.json``."""
    target = Path(path)
    text = to_json(conv) if target.suffix.lower() == ".json" else to_markdown(conv)
    try:
        target.write_text(text, encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ConfigurationError(_cannot_write(target, exc)) from None
    return target


def _cannot_write(target: Path, exc: OSError | ValueError) -> str:
    """Why ``target`` could not be written, and what to give instead."""
    name, folder = target.name or os.fspath(target), os.fspath(target.parent)
    head = f"Cannot write {name}"
    if isinstance(exc, ValueError):  # a NUL character in the path
        return f"Cannot write {name!r}: the path holds a character no file name can. Give another path."
    if exc.errno == errno.ENAMETOOLONG:
        return (
            f"Cannot write {cut_end(name, 41)}: the file name or path is too long "
            f"({len(name)} characters in the name). Give a shorter one."
        )
    if isinstance(exc, IsADirectoryError) or os.path.isdir(target):
        return (
            f"Cannot write to {os.fspath(target)!r}: it is a folder. "
            f"Give a file name, e.g. {os.fspath(target / 'chat.md')}."
        )
    if isinstance(exc, FileNotFoundError) and not os.path.isdir(folder):
        return f"{head}: the folder {folder!r} does not exist. Give a path in an existing folder."
    if isinstance(exc, NotADirectoryError):
        return f"{head}: {folder!r} is not a folder. Give a path in an existing folder."
    if isinstance(exc, (PermissionError, FileNotFoundError)) or exc.errno == errno.EROFS:
        return (
            f"{head}: the folder {folder!r} cannot be written to. Give a path in a folder you can write to."
        )
    return f"{head} in {folder!r}: {exc.strerror or exc}."
