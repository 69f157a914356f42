"""``%chat restore``: the conversations saved in a notebook (and the log), merged into the kernel's.

The records come from :mod:`chatmagic.record`, checked field by field. Restoring never
discards an exchange the kernel holds: the notebook's exchanges are merged into the live
conversation (see :func:`restore` for the rules; :mod:`chatmagic._merge` works the lists out).

A notebook is data, and may come from anyone: the provider chain and system prompt saved
with a conversation decide where its next message goes and what the model is told, so they
are named in the report and become the conversation's only when the user says so
(``settings=True``, ``%chat restore --settings``). A chain naming a provider this kernel
does not have is never taken.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ._merge import held_by, identity, in_order, merge, same_list, unique
from ._secrets import scrub
from ._text import cut_end
from .compacted import fold, renumber
from .errors import ConfigurationError
from .options import parse_chain
from .providers import provider_names
from .providers.endpoints import endpoint_names
from .record import SavedExchange, checked_records, read_notebook, saved_exchanges
from .session import ChatSession, Conversation, Exchange

__all__ = [
    "ConversationRestore",
    "RestoreReport",
    "logged_exchanges",
    "restore",
    "saved_before",
]


@dataclass
class ConversationRestore:
    """What restoring did to one conversation."""

    #: the notebook's exchanges that the conversation did not hold
    added: int = 0
    #: the conversation's exchanges replaced by a newer version saved in the notebook
    replaced: int = 0
    #: the conversation's exchanges kept as they were
    kept: int = 0
    #: the notebook's exchanges left out: from before a --new (an older epoch)
    older: int = 0
    #: settings the file saved for the conversation that differ from what it has:
    #: ``provider`` (a chain) and ``system`` (a system prompt)
    offered: dict[str, str] = field(default_factory=dict)
    #: the offered settings were made the conversation's (``%chat restore --settings``)
    applied: bool = False
    #: provider names of the offered chain that this kernel does not have: never applied
    unknown: list[str] = field(default_factory=list)
    #: of the notebook's exchanges, those inside summaries (``%chat compact``), shown by ``--all``
    summarized: int = 0

    def describe(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.added, "added"),
                (self.replaced, "replaced"),
                (self.kept, "kept"),
                (self.older, "from before a --new skipped"),
                (self.summarized, "inside summaries (%chat history --all shows them)"),
            )
            if n
        ]
        return ", ".join(parts) or "nothing to restore"

    def describe_settings(self) -> str:
        """The offered settings as a user reads them: the chain, the system prompt shortened."""
        parts = []
        if "provider" in self.offered:
            chain = _plain(self.offered["provider"], SHOWN_CHAIN_CHARS)
            if self.unknown:
                missing = _plain(", ".join(self.unknown), SHOWN_CHAIN_CHARS)
                parts.append(f"provider {chain} (not applied: no provider named {missing} here)")
            else:
                parts.append(f"provider {chain}")
        if "system" in self.offered:
            system = self.offered["system"]
            shown = _plain(system, SHOWN_SYSTEM_CHARS)
            cut = f" ({len(system):,} characters)" if shown.endswith("…") else ""
            parts.append(f'system prompt "{shown}"{cut}')
        return ", ".join(parts)


def _name(conversation: str) -> str:
    return _plain(conversation, SHOWN_NAME_CHARS) or repr(conversation)


#: how much of a saved system prompt, and of a chain, the restore summary shows
SHOWN_SYSTEM_CHARS = 80
SHOWN_CHAIN_CHARS = 60
SHOWN_NAME_CHARS = 40


def _plain(text: str, limit: int) -> str:
    """Text from a file as one printable line (control, escape and bidi characters are
    blanks), its secrets out, cut visibly at ``limit`` characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in scrub(text))
    one_line = " ".join(printable.split())
    return cut_end(one_line, limit)


@dataclass
class RestoreReport:
    """What :func:`restore` did; ``summary()`` says it in a sentence or two."""

    path: str
    conversations: dict[str, ConversationRestore] = field(default_factory=dict)
    #: saved records (or parts of the notebook) skipped because they were not valid
    invalid: int = 0

    def summary(self) -> str:
        skipped = ""
        if self.invalid:
            one = self.invalid == 1
            skipped = (
                f"Skipped {self.invalid} saved record{'' if one else 's'} "
                f"that {'was' if one else 'were'} not valid."
            )
        if not self.conversations:
            if skipped:
                return f"No chatmagic exchange could be restored from {self.path}. {skipped}"
            return f"No chatmagic exchanges are saved in {self.path}: run %%chat cells and save the notebook."
        parts = "; ".join(
            f"{_name(name)}: {counts.describe()}" for name, counts in self.conversations.items()
        )
        lines = [f"Restored from {self.path}: {parts}."]
        # a file's settings decide where the next message goes and what the model is told:
        # they are always named, and taken only when the user said so
        for applied, head, tail in (
            (False, "Settings saved in the file, not applied", " %chat restore --settings applies them."),
            (True, "Settings from the file, now the conversation's", ""),
        ):
            named = [
                f"{_name(name)}: {counts.describe_settings()}"
                for name, counts in self.conversations.items()
                if counts.offered and counts.applied is applied
            ]
            if named:
                lines.append(f"{head}: {'; '.join(named)}.{tail}")
        if skipped:  # last: after a line of settings, on a line of its own
            lines[-1:] = [f"{lines[-1]} {skipped}"] if len(lines) == 1 else [lines[-1], skipped]
        return "\n".join(lines)


def restore(
    session: ChatSession, path: str | os.PathLike[str], *, log: Any = None, settings: bool = False
) -> RestoreReport:
    """Merge the conversations saved in a notebook into the session's.

    Conversations the notebook does not mention are left alone. For each one it does:

    - Only the records of the notebook's newest epoch count: the older ones are from
      before a ``--new`` (or *New chat*).
    - An empty conversation takes those exchanges, with their epoch.
    - A conversation that holds exchanges keeps them all. If its epoch differs from
      the notebook's, it was started afresh (``--new``, *New chat*) and its newest
      exchange finished later, the notebook's records are from before that and are
      skipped; if it was not started afresh (a restarted kernel that chatted before
      restoring), the notebook's exchanges go first. Otherwise the two are merged: an exchange
      is matched by its key (or, without one, by its prompt and reply); of two versions
      that differ, the one that finished later stays; the notebook's other exchanges
      are added. The merged history is ordered by place (``seq``), then time, and
      numbered afresh.

    The provider chain and system prompt saved with a conversation are data from a file,
    which may come from anyone: they are named in the report (``offered``) and become the
    conversation's only with ``settings=True`` (``%chat restore --settings``). An empty
    conversation, or one the notebook's started afresh after, takes them; one that merges
    takes those it has none of its own of (no ``-p``, the default system prompt). A chain
    naming a provider this kernel does not have is never taken.

    ``log``: a :class:`chatmagic.log.ExchangeLog` whose records of this notebook (panels'
    exchanges, which the notebook does not hold) are read after the notebook's own.

    Raises ConfigurationError when the file cannot be read as a notebook.
    """
    records, invalid = saved_exchanges(read_notebook(path))
    if log is not None:
        # the local log holds what the notebook cannot: the panels' exchanges. Its copies of
        # what this kernel holds are left out: they add nothing, and a restarted kernel's own
        # exchanges (its epoch, finished last) would pass for the newest records, as if the
        # notebook's were from before a --new
        kernels = held_by(session)
        logged, bad = logged_exchanges(log, path)
        invalid += bad
        records += [s for s in logged if identity(s.conversation, s.exchange) not in kernels]
    report = RestoreReport(path=os.fspath(path), invalid=invalid)
    by_name: dict[str, list[SavedExchange]] = {}
    for saved in records:
        by_name.setdefault(saved.conversation, []).append(saved)
    for name, group in by_name.items():
        conv = session.conversation(name)
        defaults = (session.default_system, session.default_provider)
        report.conversations[name] = _restore_one(conv, group, settings, defaults)
    return report


def logged_exchanges(
    log: Any, path: str | os.PathLike[str], conversation: str | None = None
) -> tuple[list[SavedExchange], int]:
    """The valid records the exchange log holds for a notebook, and how many were not valid."""
    return checked_records(log.records(notebook=os.fspath(path), conversation=conversation))


def saved_before(exchanges: list[SavedExchange], key: str | None) -> int:
    """How many exchanges of one conversation's records came before the exchange ``key``
    (all of the newest epoch's when no record has that key): what a turn redoing it, or
    going on after them, would be sent with."""
    if not exchanges:
        return 0
    mine = [s for s in exchanges if key is not None and s.exchange.key == key]
    if mine:
        this = max(mine, key=lambda s: s.exchange.finished_at)
        earlier = [s for s in exchanges if s.epoch == this.epoch and s.exchange.seq < this.exchange.seq]
    else:
        newest = max(exchanges, key=lambda s: s.exchange.finished_at)
        earlier = [s for s in exchanges if s.epoch == newest.epoch]
    return len(unique(s.exchange for s in earlier))


def _restore_one(
    conv: Conversation, records: list[SavedExchange], settings: bool, defaults: tuple[str | None, str]
) -> ConversationRestore:
    newest = max(records, key=lambda s: s.exchange.finished_at)
    older = unique([s.exchange for s in records if s.epoch != newest.epoch])
    # a summary's originals go back into it (%chat compact): the compacted view, as it was
    saved, summarized = fold(unique([s.exchange for s in records if s.epoch == newest.epoch]))
    # the merge is worked out from a snapshot and installed only if no turn ended meanwhile
    # (holding the lock across adopt() would call listeners, the panels, under it)
    while True:
        with conv.lock:
            held = list(conv.exchanges)
            epoch = conv.epoch
            afresh = conv.started_afresh
        counts = ConversationRestore(older=len(older))
        new_epoch: str | None = None
        # "take": the file's settings are the conversation's from now on (it was empty, or
        # the file's conversation started afresh after it); "fill": only those it lacks
        how = "fill"
        if not held:
            merged = in_order(saved)
            counts.added = len(saved)
            new_epoch, how = newest.epoch, "take"
        elif newest.epoch is None or newest.epoch == epoch:
            kept, added = _merged(held, saved, counts)
            merged = in_order(kept + added)
        elif max(ex.finished_at for ex in held) > newest.exchange.finished_at and afresh:
            counts.older += len(saved)
            counts.kept = len(held)
            return counts
        elif max(ex.finished_at for ex in held) > newest.exchange.finished_at:
            # a restarted kernel chatted before restoring: its epoch is only its first, not a
            # --new. The notebook's exchanges come first and the conversation goes on in
            # their epoch
            kept, added = _merged(held, saved, counts)
            merged = in_order(added) + in_order(kept)
            new_epoch = newest.epoch
        else:
            # the notebook's conversation started afresh after the kernel's: it follows the
            # kernel's exchanges (the places of two epochs are not comparable) and goes on
            # in its epoch
            kept, added = _merged(held, saved, counts)
            merged = in_order(kept) + in_order(added)
            new_epoch, how = newest.epoch, "take"
        merged = fold(merged)[0]  # a summary the kernel no longer held (undone) takes them back too
        counts.summarized = summarized
        merged = renumber(merged)  # afresh, a summary's originals too (chatmagic.compacted)
        with conv.lock:
            unchanged = same_list(conv.exchanges, held)
            counts.offered = _offered(conv, newest, how, defaults)
        if unchanged:
            counts.unknown = _unknown_providers(counts.offered.get("provider"))
            counts.applied = settings and bool(counts.offered)
            fields = dict(counts.offered) if settings else {}
            if counts.unknown:
                fields.pop("provider", None)
            if new_epoch is not None:
                fields["epoch"] = new_epoch
            if fields or not same_list(merged, held):  # else nothing to tell the panels
                conv.adopt(merged, **fields)
            return counts


def _offered(
    conv: Conversation, newest: SavedExchange, how: str, defaults: tuple[str | None, str]
) -> dict[str, str]:
    """The settings the file saved that would change the conversation (see :func:`restore`).

    ``defaults``: the session's system prompt and provider, which a conversation without
    settings of its own has.
    """
    default_system, default_provider = defaults
    offered: dict[str, str] = {}
    if newest.system and newest.system != conv.system:
        if how == "take" or conv.system in (None, default_system):
            offered["system"] = newest.system
    if newest.chain and newest.chain != _as_chain(conv.provider or default_provider):
        if how == "take" or conv.provider is None:
            offered["provider"] = newest.chain
    return offered


def _as_chain(spec: str | None) -> str | None:
    try:
        return ",".join(parse_chain(spec)) if spec else None
    except ConfigurationError:
        return spec


def _unknown_providers(chain: str | None) -> list[str]:
    """The names of ``chain`` that are no provider of this kernel (nor an endpoint)."""
    if not chain:
        return []
    known = {*provider_names(), *endpoint_names()}
    return [name for name in parse_chain(chain) if name not in known]


def _merged(
    held: list[Exchange], saved: list[Exchange], counts: ConversationRestore
) -> tuple[list[Exchange], list[Exchange]]:
    """:func:`chatmagic._merge.merge`, counted: the kernel's exchanges, and those it lacked."""
    kept, added, replaced = merge(held, saved)
    counts.added, counts.replaced, counts.kept = len(added), replaced, len(held) - replaced
    return kept, added
