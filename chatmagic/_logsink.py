"""The exchange log's writer: what the kernel's session hands each kept exchange to.

The core (:mod:`chatmagic.session`) never formats a log row: it calls the sinks it is given
(``ChatSession.sinks``) with ``(conversation, exchange)``. This one, installed by
:mod:`chatmagic._state` where the kernel's session is made, turns the exchange into the
notebook record (:func:`chatmagic.record.exchange_record`) and adds it to the session's log
(``ChatSession.log``: off when ``log_path`` is ``""``), under the session's notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .record import exchange_record

if TYPE_CHECKING:
    from .session import ChatSession, Conversation, Exchange


class LogSink:
    """Writes each kept exchange of ``session`` to its exchange log."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def __call__(self, conv: Conversation, exchange: Exchange) -> None:
        if self.session.log_path == "":
            return
        log = self.session.log
        if log is not None:
            log.add(exchange_record(conv, exchange), self.session.notebook)  # never raises: it warns once
