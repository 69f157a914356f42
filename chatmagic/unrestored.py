"""The first turn of a conversation that the notebook holds and the kernel does not.

After a kernel restart the kernel holds no conversation, while the open notebook (and the
exchange log, for this notebook: the panels' exchanges) may hold saved exchanges of the
one a cell continues. Answering from an empty history would go on as if nothing had been
said, and nothing would say so. So the first turn of such a conversation is refused, in
one line that names ``%chat restore`` (and ``--new``, to start afresh on purpose).

Refused rather than restored by itself: the notebook may be one someone sent. Restoring
is the user's act (``%chat restore``, :mod:`chatmagic.restore`), and its report names what the file holds; a turn
that restored by itself would make a stranger's history (and tempt one to make its
settings) the conversation's without the user seeing it.

What counts is what this turn would have been sent with: a cell redoing the first
exchange of its conversation (Restart & Run All) has nothing before it and goes on; a
conversation the kernel started afresh (``--new``, ``%chat reset``, *New chat*) or has
exchanges in is never checked. A notebook that cannot be read blocks nothing.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError, NotSent
from .record import read_notebook, saved_exchanges
from .restore import logged_exchanges, saved_before
from .session import DEFAULT_CONVERSATION, ChatSession

__all__ = ["refuse_unrestored", "unrestored_message"]


def unrestored_message(
    session: ChatSession, conversation: str, key: str | None, afresh: str | None = None
) -> str | None:
    """Why a first turn of ``conversation`` (``key``: its exchange key) must not be sent
    from an empty history, or None when it may.

    ``afresh``: how to start afresh where the turn comes from (the panel's *New chat*);
    a cell's ``--new`` by default."""
    conv = session.conversations.get(conversation)
    if conv is not None:
        with conv.lock:
            if conv.exchanges or conv.started_afresh:
                return None
    notebook = session.notebook
    if not notebook:
        return None
    try:
        found, _ = saved_exchanges(read_notebook(notebook))
    except ConfigurationError:
        return None
    found = [s for s in found if s.conversation == conversation]
    log: Any = session.log
    if log is not None:
        logged, _ = logged_exchanges(log, notebook, conversation)
        found += logged
    missing = saved_before(found, key)
    if not missing:
        return None
    one = missing == 1
    if afresh is None:
        named = "" if conversation == DEFAULT_CONVERSATION else f" -c {conversation}"
        afresh = f"%%chat{named} --new starts the conversation afresh"
    return (
        f"This notebook holds {missing:,} earlier exchange{'' if one else 's'} of {conversation!r} "
        f"that this kernel does not (a restarted kernel starts empty): %chat restore brings "
        f"{'it' if one else 'them'} back; {afresh}."
    )


def refuse_unrestored(session: ChatSession, conversation: str, afresh: str) -> None:
    """Raise NotSent with :func:`unrestored_message` when a turn (the panel's: no cell
    redoes an exchange there) must not go out from an empty history."""
    refused = unrestored_message(session, conversation, None, afresh)
    if refused is not None:
        raise NotSent(refused)
