"""The newest exchanges of the log that match a full-text query, fast on a large log.

``%chat log TEXT`` lists the newest matches (by ``finished_at``, then ``id``) with a
snippet each. Sorting every match by time and making a snippet of each before keeping
twenty took 5.7 s for common words on 100,000 exchanges (``bench/log_search.py``). Here
the query is evaluated once, whatever order the log was written in:

1. FTS5 walks the matches by ``id``, newest first; the first ``limit`` are taken, no
   more. Exchanges are logged as they finish, so the newest ids are the newest times.
2. Where the log says otherwise (below them, an exchange that finished later than the
   oldest of them: a clock set back, kernels whose clocks disagree, a time edited by
   hand), the same walk goes on, ids only, down to the lowest such exchange (below it,
   none can be newer), and the time index (``finished_at``, then ``id``: the listing's
   order, and small) is walked newest first until ``limit`` of those ids are met. The
   cost follows how far back the disorder reaches: nothing for two kernels logging at
   once, every match's id (50 ms for 100,000) for a row at the bottom given today's time.
   Sorting every match instead read each one's row (0.3 s for a prefix like ``t*`` on
   100,000 exchanges), and asking the index again for the ones kept merged a prefix's word
   lists a second time (0.1 s each).
3. Snippets are made for the kept rows only, in a private (``temp``) full-text table that
   holds just them, with the log's tokenizer: a snippet depends on the row and the query
   alone, so it is the one the log's index would make, without evaluating the query there
   again.

It all reads one snapshot (one read transaction: with WAL, other kernels write on), rolled
back at the end, which also empties the private table.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from typing import Any

__all__ = ["ENTRY_COLUMNS", "TOKENIZE", "newest_matches"]

#: how the log's full-text index splits text into words (:mod:`chatmagic.log`'s schema)
TOKENIZE = "unicode61 remove_diacritics 2"
_MARK_START, _MARK_END = "«", "»"
#: what a listing shows of an exchange ``e``, before its snippet
ENTRY_COLUMNS = "e.finished_at, e.notebook, e.conversation, e.provider, e.model, substr(e.user, 1, 500)"
# one JSON parameter: `-n 50000` would pass SQLite's limit of parameters
_IDS = "SELECT value FROM json_each(?)"
_KEPT = "chatmagic_kept"
# FTS5 gives its matches in this order as it finds them: no sort, and taking a few reads a few
_MATCHES = "SELECT rowid FROM exchanges_text WHERE exchanges_text MATCH ? ORDER BY rowid DESC"


def newest_matches(conn: sqlite3.Connection, query: str, limit: int) -> list[tuple[Any, ...]]:
    """Rows ``(finished_at, notebook, conversation, provider, model, user, snippet)``, newest first.

    ``query`` is an FTS5 query (:func:`chatmagic.log._match_query` makes it safe).
    """
    conn.execute("BEGIN")
    try:
        with closing(conn.execute(_MATCHES, (query,))) as matches:
            ids = [row[0] for row in matches.fetchmany(limit)]
            lowest = _lowest_later(conn, ids) if len(ids) == limit else None
            if lowest is not None:
                # below `lowest`, every exchange finished before the oldest of `ids`: only
                # the matches down to it can be among the newest
                candidates = set(ids)
                for (id_,) in matches:
                    if id_ < lowest:
                        break
                    candidates.add(id_)
                ids = _newest_by_time(conn, candidates, limit)
        return _rows(conn, query, ids)
    finally:
        conn.execute("ROLLBACK")  # nothing was written to the log; the private table empties


def _lowest_later(conn: sqlite3.Connection, ids: list[int]) -> int | None:
    """The lowest id below ``ids`` of an exchange that finished later than the oldest of them.

    None where there is none: the log is in order there, and ``ids`` are the newest.
    """
    # min(+id): from the time index's range; min(id) would walk the table up from id 1
    row = conn.execute(
        "SELECT min(+id) FROM exchanges WHERE id < ? AND finished_at >"
        f" (SELECT finished_at FROM exchanges WHERE id IN ({_IDS}) ORDER BY finished_at LIMIT 1)",
        (min(ids), json.dumps(ids)),
    ).fetchone()
    return None if row is None else row[0]


def _newest_by_time(conn: sqlite3.Connection, matches: set[int], limit: int) -> list[int]:
    """The ``limit`` newest of ``matches`` (ids), met walking the time index newest first."""
    # the index gives SQLite's order (a time edited by hand into text sorts after numbers);
    # most matches: a few steps; few: at worst the whole index (35 ms for 100,000)
    newest = []
    for (id_,) in conn.execute("SELECT id FROM exchanges ORDER BY finished_at DESC, id DESC"):
        if id_ in matches:
            newest.append(id_)
            if len(newest) == limit:
                break
    return newest


def _rows(conn: sqlite3.Connection, query: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """The listing's rows of the exchanges ``ids``, newest first, with their snippets."""
    if not ids:
        return []
    kept = json.dumps(ids)
    conn.execute(f"CREATE VIRTUAL TABLE temp.{_KEPT} USING fts5(user, assistant, tokenize='{TOKENIZE}')")
    conn.execute(
        f"INSERT INTO temp.{_KEPT} (rowid, user, assistant) SELECT id, user, assistant FROM exchanges"
        f" WHERE id IN ({_IDS})",
        (kept,),
    )
    snippet = f"snippet({_KEPT}, -1, '{_MARK_START}', '{_MARK_END}', '…', 12)"
    snippets = dict(
        conn.execute(f"SELECT rowid, {snippet} FROM temp.{_KEPT} WHERE {_KEPT} MATCH ?", (query,))
    )
    rows = conn.execute(
        f"SELECT e.id, {ENTRY_COLUMNS} FROM exchanges AS e WHERE e.id IN ({_IDS})"
        " ORDER BY e.finished_at DESC, e.id DESC",
        (kept,),
    )
    # a row whose index and text disagree (edited by hand, past the triggers) has no snippet
    return [(*row[1:], snippets.get(row[0], "")) for row in rows]
