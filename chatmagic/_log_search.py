"""The newest exchanges of the log that match a full-text query, fast on a large log.

``%chat log TEXT`` lists the newest matches (by ``finished_at``, then ``id``) with a
snippet each. Sorting every match by time and making a snippet of each before keeping
twenty took 5.7 s for common words on 100,000 exchanges (``bench/log_search.py``). Here:

1. FTS5 walks the matches by ``id``, newest first, and stops after ``limit``. Exchanges are
   logged as they finish, so the newest ids are the newest times.
2. Where the log says otherwise (a clock set back, two kernels writing at once: an exchange
   with a lower id but a later time than the oldest kept), every match is sorted by time,
   as before, but without snippets: exact, and still well under half a second.
3. Snippets are made for the kept rows only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

__all__ = ["ENTRY_COLUMNS", "newest_matches"]

_MARK_START, _MARK_END = "«", "»"
#: what a listing shows of an exchange ``e``, before its snippet
ENTRY_COLUMNS = "e.finished_at, e.notebook, e.conversation, e.provider, e.model, substr(e.user, 1, 500)"
_SNIPPET = f"snippet(exchanges_text, -1, '{_MARK_START}', '{_MARK_END}', '…', 12)"
_MATCHES = (
    "FROM exchanges_text JOIN exchanges AS e ON e.id = exchanges_text.rowid WHERE exchanges_text MATCH ?"
)
_ROWS = f"SELECT exchanges_text.rowid, {ENTRY_COLUMNS}, {_SNIPPET} {_MATCHES}"
#: how many exchanges written out of order the fast path takes in; past that, it sorts every match
_MOST_OUT_OF_ORDER = 1000


def newest_matches(conn: sqlite3.Connection, query: str, limit: int) -> list[tuple[Any, ...]]:
    """Rows ``(finished_at, notebook, conversation, provider, model, user, snippet)``, newest first.

    ``query`` is an FTS5 query (:func:`chatmagic.log._match_query` makes it safe).
    """
    # with the order FTS5 keeps (rowid) and a limit, it stops early and makes `limit` snippets
    rows = conn.execute(f"{_ROWS} ORDER BY exchanges_text.rowid DESC LIMIT ?", (query, limit)).fetchall()
    if len(rows) == limit:
        late = _written_out_of_order(conn, rows)
        if late is None:
            return _sorted(conn, query, limit)
        if late:
            rows += _rows_of(conn, query, late)
    # every match, or every one that can be among the newest: by time, as the listing promises
    rows.sort(key=lambda row: (_sqlite_order(row[1]), row[0]), reverse=True)
    return [row[1:] for row in rows[:limit]]


def _written_out_of_order(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[int] | None:
    """The exchanges below ``rows`` that finished later than the oldest of them; None: too many.

    Only those (where they match) can belong among the newest matches with ``rows``: none
    where the log is in order, a few after a clock was set back or two kernels wrote at once.
    """
    earliest = min((row[1] for row in rows), key=_sqlite_order)
    late = conn.execute(
        "SELECT id FROM exchanges WHERE id < ? AND finished_at > ? LIMIT ?",
        (min(row[0] for row in rows), earliest, _MOST_OUT_OF_ORDER + 1),
    ).fetchall()
    return None if len(late) > _MOST_OUT_OF_ORDER else [row[0] for row in late]


def _rows_of(conn: sqlite3.Connection, query: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows of those of ``ids`` that match."""
    # the range lets FTS5 seek; the unary + keeps the list a filter (as a constraint, FTS5
    # would run the whole query once per id: seconds for a prefix like ``t*``); one JSON
    # parameter, as ``-n 50000`` would pass SQLite's limit of parameters
    return conn.execute(
        f"{_ROWS} AND exchanges_text.rowid BETWEEN ? AND ?"
        " AND +exchanges_text.rowid IN (SELECT value FROM json_each(?))",
        (query, min(ids), max(ids), json.dumps(ids)),
    ).fetchall()


def _sorted(conn: sqlite3.Connection, query: str, limit: int) -> list[tuple[Any, ...]]:
    """Every match sorted by time (exact, slower: a log far out of order), snippets of the kept."""
    ids = conn.execute(
        f"SELECT exchanges_text.rowid {_MATCHES} ORDER BY e.finished_at DESC, e.id DESC LIMIT ?",
        (query, limit),
    ).fetchall()
    rows = _rows_of(conn, query, [row[0] for row in ids])
    order = {row[0]: place for place, row in enumerate(ids)}
    return [row[1:] for row in sorted(rows, key=lambda row: order[row[0]])]


def _sqlite_order(value: Any) -> tuple[int, Any]:
    """A key that sorts values as SQLite does: NULL, numbers, text, blobs (a time edited by hand)."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value) if isinstance(value, str) else (3, bytes(value))
