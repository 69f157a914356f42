"""History that survives a kernel restart, and exports.

Each exchange a ``%%chat`` cell completes is written into the notebook itself, in the
metadata of the cell's reply output (``metadata["chatmagic"]``): the conversation's
name and system prompt, the prompt as sent, the reply, provider, model and timings.
Saving the notebook saves the conversations; :func:`restore` rebuilds them from the
saved file, in the order of the notebook's cells.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .session import ChatSession, Conversation, Exchange

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


def log_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What goes into the metadata of a panel's log output: the panel's exchanges."""
    return {METADATA_KEY: {"version": FORMAT_VERSION, "exchanges": records}}


def notebook_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every chatmagic record in a saved notebook, in cell order."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"There is no notebook at {os.fspath(path)!r}.") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{os.fspath(path)!r} is not a readable notebook ({exc}).") from None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            saved = (output.get("metadata") or {}).get(METADATA_KEY)
            if not isinstance(saved, Mapping):
                continue
            records = saved.get("exchanges") if "exchanges" in saved else [saved]
            for record in records if isinstance(records, list) else []:
                if isinstance(record, Mapping) and "user" in record and "assistant" in record:
                    yield dict(record)


def restore(session: ChatSession, path: str | os.PathLike[str]) -> dict[str, int]:
    """Rebuild the conversations recorded in a notebook; returns exchanges per conversation.

    A conversation found in the notebook replaces the one of the same name in the
    session; conversations the notebook does not mention are left alone.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for record in notebook_records(path):
        found.setdefault(str(record.get("conversation") or "default"), []).append(record)
    for name, records in found.items():
        # outputs from before a --new or New chat belong to a past epoch: keep the newest
        newest = max(records, key=lambda r: float(r.get("finished_at") or 0.0))
        records = [r for r in records if r.get("epoch") == newest.get("epoch")]
        by_key: dict[Any, Exchange] = {}
        loose: list[Exchange] = []
        for record in records:
            ex = Exchange.from_dict(record)
            if ex.key is None:
                loose.append(ex)
            else:  # the same exchange saved twice (two panels, a re-run) counts once
                old = by_key.get(ex.key)
                if old is None or ex.finished_at >= old.finished_at:
                    by_key[ex.key] = ex
        exchanges = sorted([*by_key.values(), *loose], key=lambda e: (e.seq, e.finished_at))
        conv = session.conversation(name)
        with conv.lock:
            conv.exchanges[:] = exchanges
            conv.epoch = str(newest.get("epoch") or conv.epoch)
            conv.system = newest.get("system") or None
            conv.provider = newest.get("chain") or conv.provider
        conv._emit("recorded", None)
    return {name: len(session.conversation(name)) for name in found}


def to_markdown(conv: Conversation) -> str:
    lines = [f"# Conversation: {conv.name}", ""]
    if conv.system:
        lines += [f"**System:** {conv.system}", ""]
    for ex in conv.exchanges:
        mark = " (stopped)" if ex.stopped else ""
        lines += [
            "## User",
            "",
            ex.user.content,
            "",
            f"## Assistant · {ex.provider} · {ex.model}{mark}",
            "",
            ex.assistant.content,
            "",
        ]
    return "\n".join(lines)


def to_json(conv: Conversation) -> str:
    data = {
        "conversation": conv.name,
        "system": conv.system,
        "provider": conv.provider,
        "exchanges": [ex.to_dict() for ex in conv.exchanges],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def export(conv: Conversation, path: str | os.PathLike[str]) -> Path:
    """Write a conversation as Markdown, or as JSON when the path ends in ``.json``."""
    target = Path(path)
    text = to_json(conv) if target.suffix.lower() == ".json" else to_markdown(conv)
    target.write_text(text, encoding="utf-8")
    return target


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
