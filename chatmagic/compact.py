"""``%chat compact``: older exchanges of a conversation replaced by a summary the model writes.

Core layer: no IPython, no widgets, no HTML.

A summary is an :class:`~chatmagic.session.Exchange` like any other: its user message is the
request that asked for it (:data:`SUMMARY_REQUEST`), its reply is the summary, and its
``summarizes`` holds the exchanges it stands for, oldest first. It takes their place in the
conversation, so everything that reads the history (what the next turn sends, the history
budget, ``%chat history``, the panel, the record) reads the compacted view without knowing
about compaction; what the next turn sends is the summary and the exchanges after it.

- The originals are never lost: they stay inside the summary (``%chat history --all`` shows
  them, :func:`chatmagic.compacted.originals`), in their own records in the notebook and in the log, and
  :func:`undo` puts them back.
- Compacting again folds the earlier summary into the new one (a summary of a summary);
  :func:`undo` takes back one step.
- The summary is written by a real turn to the conversation's provider (:func:`summary_turn`,
  an *aside* turn: it joins no history and changes no setting). Nothing changes unless it
  ends whole: a failure, a stop or a cut reply leaves the conversation as it was
  (:func:`finish`), and so does a turn that ended while the conversation changed.
- A summary's record names its originals by :meth:`~chatmagic.session.Exchange.identity`
  (their own records hold them); restoring folds them back in (:func:`chatmagic.compacted.fold`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ._secrets import scrub, table
from .compacted import MAX_DEPTH, count, originals
from .errors import ConfigurationError
from .options import TurnOptions
from .providers._lines import valid_text
from .session import ChatSession, Conversation, Exchange, Message, Turn
from .session.toolhistory import plain, wire_side

__all__ = [
    "DEFAULT_KEEP",
    "SUMMARY_REQUEST",
    "NothingToCompact",
    "Plan",
    "finish",
    "placeholder",
    "plan",
    "read_summarizes",
    "request",
    "summary_turn",
    "undo",
]

#: exchanges kept word for word after the summary, unless told (``--keep N``)
DEFAULT_KEEP = 2

#: what the model is asked; kept in the conversation as the summary's user message, so that
#: later turns send a truthful pair: this request, and the summary that answered it
SUMMARY_REQUEST = (
    "Summarize our conversation so far: your summary will replace these {n} exchanges in your "
    "context, and we will go on from it. Keep every fact, decision, name, number, file, code "
    "identifier and open question that later messages may rely on, and what I asked for and "
    "preferred; leave out greetings and repetition. Write it as compact notes, in the language "
    "we used, with no preamble."
)


class NothingToCompact(ConfigurationError):
    """The conversation holds nothing older than what is kept: not an error, a fact to say
    (a notebook run again after ``%chat restore`` meets its compact cell with the work done)."""


@dataclass(frozen=True)
class Plan:
    """Which exchanges a compaction folds into the summary, and which it keeps as they are."""

    conversation: Conversation
    folded: tuple[Exchange, ...]
    kept: tuple[Exchange, ...]

    @property
    def originals(self) -> int:
        """How many exchanges, at bottom, the summary will stand for."""
        return sum(count(ex) for ex in self.folded)


def plan(conv: Conversation, keep: int = DEFAULT_KEEP) -> Plan:
    """The exchanges of ``conv`` to summarize: all but the newest ``keep``.

    Raises ConfigurationError, saying what to do, when there is nothing to summarize (an
    empty conversation, or no exchange older than the ``keep`` newest, or only one summary).
    """
    if keep < 0:
        raise ConfigurationError("--keep takes 0 or more exchanges to keep as they are.")
    with conv.lock:
        exchanges = list(conv.exchanges)
    folded, kept = exchanges[: max(0, len(exchanges) - keep)], exchanges[max(0, len(exchanges) - keep) :]
    if not folded:
        raise NothingToCompact(
            f"Nothing to compact in {conv.name!r}: it holds {len(exchanges)} exchange"
            f"{'' if len(exchanges) == 1 else 's'}, and the newest {keep} stay as they are. "
            "Use --keep with a smaller number."
        )
    if len(folded) == 1 and folded[0].summarizes:
        raise NothingToCompact(
            f"The older part of {conv.name!r} is already one summary: there is nothing more to compact "
            "(--keep with a smaller number folds more exchanges in)."
        )
    return Plan(conv, tuple(folded), tuple(kept))


def request(system: str | None, p: Plan) -> list[dict[str, str]]:
    """The messages that ask for the summary: the system prompt, the exchanges to fold, the request."""
    messages = [{"role": "system", "content": system}] if system else []
    for ex in p.folded:
        # a reply that called tools with one line per call: whichever provider summarizes takes it
        messages += plain([ex.user.as_dict(), *wire_side(ex.assistant.content, ex.tools)])
    messages.append({"role": "user", "content": SUMMARY_REQUEST.format(n=p.originals)})
    return messages


def summary_turn(
    session: ChatSession, conversation: str, keep: int = DEFAULT_KEEP, options: TurnOptions | None = None
) -> tuple[Turn, Plan]:
    """An unstarted aside turn that asks the conversation's provider for the summary, and its plan.

    The provider and model are the conversation's (:meth:`ChatSession.choice`, so ``-p``/``-m``
    work as for a cell). What is sent is scrubbed of secrets like any turn. Start it with
    ``session.start(turn)``; once it ended, :func:`finish` installs the summary.
    """
    options = options or TurnOptions()
    conv = session.conversation(conversation)
    p = plan(conv, keep)
    chosen = session.choice(conversation, options)
    with conv.lock:
        system = conv.system
    messages = request(system, p)
    secrets = table() if session.redact_secrets else None
    redacted: list[str] = []
    if secrets is not None:
        messages = [
            {"role": m["role"], "content": scrub(m["content"], found=secrets.found, replaced=redacted)}
            for m in messages
        ]
    turn = Turn(session, conv, messages[-1]["content"], options, None, chain=chosen.chain, model=chosen.model)
    turn.aside = True
    turn.models = chosen.models
    turn.secrets, turn.kept_system, turn.redacted = secrets, system, sorted(set(redacted))
    turn.messages = messages
    turn.history_sent = turn.history_total = len(p.folded)
    return turn, p


def finish(turn: Turn, p: Plan) -> Exchange:
    """Install the summary a finished :func:`summary_turn` wrote; returns it.

    Raises ConfigurationError, and changes nothing, when the turn did not end whole (failed,
    stopped, cut by the server, empty) or the conversation changed meanwhile (another turn
    replaced or added exchanges among those the summary would stand for).
    """
    conv = p.conversation
    ex = turn.exchange
    if turn.state != "done" or ex is None:
        why = "stopped" if turn.state == "stopped" else f"failed ({turn.error})" if turn.error else turn.state
        raise ConfigurationError(f"The summary was not written: {why}. Nothing changed.")
    if ex.cut or not ex.assistant.content.strip():
        raise ConfigurationError(
            "The summary came back "
            + ("cut by the server" if ex.cut else "empty")
            + ": nothing changed. Try again, with another model (-m), or fold fewer exchanges (--keep N)."
        )
    summary = dataclasses.replace(ex, key=None, seq=p.folded[-1].seq, summarizes=p.folded)
    with conv.lock:
        now = conv.exchanges
        if len(now) < len(p.folded) or any(a is not b for a, b in zip(now, p.folded, strict=False)):
            raise ConfigurationError(
                f"The conversation {conv.name!r} changed while the summary was written: nothing changed. "
                "Run %chat compact again."
            )
        rest = now[len(p.folded) :]
    conv.adopt([summary, *rest])
    turn.session._publish(conv, summary)  # the log keeps the summary beside its originals
    return summary


def undo(conv: Conversation) -> Exchange:
    """Put the originals of the newest summary back in its place; returns the summary taken out.

    Raises ConfigurationError when the conversation holds no summary."""
    with conv.lock:
        conv._check_idle("uncompacted")
        exchanges = list(conv.exchanges)
    at = next((i for i in range(len(exchanges) - 1, -1, -1) if exchanges[i].summarizes), None)
    if at is None:
        raise ConfigurationError(
            f"The conversation {conv.name!r} holds no summary to undo (%chat compact makes one)."
        )
    summary = exchanges[at]
    missing = sum(1 for ex in originals(summary.summarizes) if not ex.user.content)
    if missing:  # restored without their own records: an empty message would go in their place
        raise ConfigurationError(
            f"The summary in {conv.name!r} stands for {missing} exchange{'' if missing == 1 else 's'} "
            "whose record was not restored (cleared outputs, another log): it stays. Nothing changed."
        )
    conv.adopt([*exchanges[:at], *summary.summarizes, *exchanges[at + 1 :]])
    return summary


# -- restoring --------------------------------------------------------------------------


def placeholder(key: str | None, finished_at: float, seq: int) -> Exchange:
    """An original a summary's record names (:meth:`Exchange.identity`), until :func:`fold`
    finds its own record; one that stays (its record is gone) shows empty."""
    return Exchange(
        Message("user", ""), Message("assistant", ""), "", "", key=key, finished_at=finished_at, seq=seq
    )


#: the most originals one summary's record may name (a real one names what a conversation holds)
_MAX_NAMED = 100_000


def read_summarizes(value: Any, depth: int = 0) -> tuple[Exchange, ...] | None:
    """A record's ``summarizes`` (a list of :meth:`Exchange.identity`) as placeholders for
    :func:`~chatmagic.compacted.fold`, an earlier summary among them whole: () when absent,
    None when malformed (the record is then not valid)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_NAMED or depth > MAX_DEPTH:
        return None
    out = []
    for named in value:
        if not isinstance(named, dict):
            return None
        key, finished_at, seq = named.get("key"), named.get("finished_at"), named.get("seq", 0)
        if key is not None and not isinstance(key, str):
            return None
        if isinstance(finished_at, bool) or not isinstance(finished_at, (int, float)):
            return None
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 10**9:
            return None
        if not math.isfinite(finished_at):
            return None
        original: Exchange | None = placeholder(key, float(finished_at), seq)
        if "summary" in named and original is not None:  # an earlier summary, whole
            original = _summary(named["summary"], original, depth)
        if original is None:
            return None
        out.append(original)
    return tuple(out)


def _summary(saved: Any, named: Exchange, depth: int) -> Exchange | None:
    """An earlier summary as a later one's record carries it (its text, who wrote it, its originals)."""
    if not isinstance(saved, dict):
        return None
    texts = [
        t for t in (saved.get(n) for n in ("user", "assistant", "provider", "model")) if isinstance(t, str)
    ]
    if len(texts) != 4:
        return None
    inner = read_summarizes(saved.get("summarizes"), depth + 1)
    if not inner:
        return None
    user, assistant, provider, model = (valid_text(text) for text in texts)
    return dataclasses.replace(
        named,
        user=Message("user", user),
        assistant=Message("assistant", assistant),
        provider=provider,
        model=model,
        summarizes=inner,
    )
