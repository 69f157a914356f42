"""A local log of every completed exchange, from cells and panels alike.

The notebook keeps the exchanges of ``%%chat`` cells in its outputs' metadata; a panel's
exchanges live only in the kernel. This log keeps both in one SQLite file outside the
notebook (:func:`default_log_path`), so that a panel's conversation survives a kernel
restart and every exchange can be searched (``%chat log TEXT``).

Each row holds the record exactly as :func:`chatmagic.record.exchange_record` makes it
(JSON, the notebook's format, so :mod:`chatmagic.record` checks it like a saved one) and
a few columns to find it by: the notebook's path, the conversation, its epoch, the
exchange's key and place, when it finished. The prompt and the reply are indexed for
full-text search (FTS5); :mod:`chatmagic._log_search` finds the newest matches by walking
the time index (``bench/log_search.py``); :mod:`chatmagic._log_format` writes the
listing ``%chat log`` prints.

The log is a convenience, never a reason for chat to fail: constructing one touches no
file (``%load_ext`` stays fast), the file and its folder are made on the first write,
and a log that cannot be written (read-only folder, full disk, a damaged or foreign
file) logs one warning on the ``chatmagic`` logger and is skipped. The file is private
to its user (mode 0600): prompts are personal.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the listing (LogEntry, format_entries) is _log_format's job; the names stay here for callers
from ._log_format import CONTROLS, LogEntry, entry, format_entries, one_line, shorten
from ._log_search import ENTRY_COLUMNS, TOKENIZE, newest_matches
from ._text import is_text_key

__all__ = ["ExchangeLog", "LogEntry", "default_log_path", "format_entries"]

logger = logging.getLogger("chatmagic")

SCHEMA_VERSION = 1
#: how long a write waits for another kernel's write to the same file (they take milliseconds)
BUSY_TIMEOUT_S = 2.0

_SCHEMA = (
    """CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY,
        notebook TEXT,
        conversation TEXT NOT NULL,
        epoch TEXT,
        key TEXT,
        seq INTEGER,
        finished_at REAL NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        user TEXT NOT NULL,
        assistant TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX exchanges_identity ON exchanges (notebook, conversation, epoch, key)",
    "CREATE INDEX exchanges_finished ON exchanges (finished_at)",
    f"""CREATE VIRTUAL TABLE exchanges_text USING fts5(
        user, assistant, content='exchanges', content_rowid='id', tokenize='{TOKENIZE}'
    )""",
    """CREATE TRIGGER exchanges_added AFTER INSERT ON exchanges BEGIN
        INSERT INTO exchanges_text (rowid, user, assistant) VALUES (new.id, new.user, new.assistant);
    END""",
    """CREATE TRIGGER exchanges_removed AFTER DELETE ON exchanges BEGIN
        INSERT INTO exchanges_text (exchanges_text, rowid, user, assistant)
        VALUES ('delete', old.id, old.user, old.assistant);
    END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_SURROGATES = re.compile("[\ud800-\udfff]")


def default_log_path() -> Path:
    """``<Jupyter data dir>/chatmagic/exchanges.sqlite3`` (``JUPYTER_DATA_DIR`` moves it)."""
    try:
        from jupyter_core.paths import jupyter_data_dir
    except ImportError:
        data = os.environ.get("JUPYTER_DATA_DIR") or os.path.join("~", ".local", "share", "jupyter")
        return Path(data).expanduser() / "chatmagic" / "exchanges.sqlite3"
    return Path(jupyter_data_dir()) / "chatmagic" / "exchanges.sqlite3"


class _NewerLog(Exception):
    """The file's schema is newer than this chatmagic knows."""


class ExchangeLog:
    """The SQLite log at ``path``: thread-safe, one connection opened on first use."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._warned = False

    def __repr__(self) -> str:
        return f"<ExchangeLog {os.fspath(self.path)!r}>"

    def __enter__(self) -> ExchangeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------

    def add(self, record: dict[str, Any], notebook: str | None) -> None:
        """Log one completed exchange (a record of :func:`chatmagic.record.exchange_record`).

        The exchange replaces the one logged with the same notebook, conversation, epoch
        and key (a re-run cell, a re-sent turn); one keyed by its text (``text:…``) only
        the one in the same place, as the conversation does. Never raises.
        """
        try:
            row = _row(record, notebook)
            with self._lock:
                conn = self._connection(create=True)
                assert conn is not None
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    if row["key"] is not None:
                        same_place = " AND seq IS :seq" if is_text_key(row["key"]) else ""
                        conn.execute(
                            "DELETE FROM exchanges WHERE notebook IS :notebook AND conversation = :conversation"
                            " AND epoch IS :epoch AND key = :key" + same_place,
                            row,
                        )
                    conn.execute(
                        "INSERT INTO exchanges (notebook, conversation, epoch, key, seq, finished_at,"
                        " provider, model, user, assistant, record) VALUES (:notebook, :conversation,"
                        " :epoch, :key, :seq, :finished_at, :provider, :model, :user, :assistant, :record)",
                        row,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
        except Exception as exc:  # noqa: BLE001 - chat must never fail because of its log
            self._trouble("write to", exc)

    def close(self) -> None:
        """Close the connection; a later call opens it again."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
                self._conn = None

    # -- reading ---------------------------------------------------------------------

    def records(self, notebook: str | None = None, conversation: str | None = None) -> list[dict[str, Any]]:
        """The logged records, oldest first: of one notebook and/or conversation when given.

        Each is a dict in the notebook's record format. [] when the log cannot be read.
        """
        where, params = [], []
        if notebook:
            where.append("notebook = ?")
            params.append(_notebook_path(notebook))
        if conversation is not None:
            where.append("conversation = ?")
            params.append(_clean(conversation))
        sql = "SELECT record FROM exchanges"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY finished_at, id", params)
        out = []
        for (text,) in rows:
            try:
                record = json.loads(text)
            except (TypeError, ValueError, RecursionError):  # a row edited by hand
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def search(self, text: str | None = None, limit: int = 20) -> list[LogEntry]:
        """The newest ``limit`` exchanges whose prompt or reply holds every word of ``text``.

        Words are matched whole (``pivot`` finds "Pivot", ``naive`` finds "naïve"); a word
        ending in ``*`` matches as a prefix (``pivot*`` finds "pivot_table"). Quotes,
        ``AND``/``OR``/``NOT`` and parentheses are plain text, never query syntax. Without
        text (or with only blanks): the newest exchanges. [] when the log cannot be read.
        """
        if limit <= 0:
            return []
        if text is None or not text.strip():
            sql = (
                f"SELECT {ENTRY_COLUMNS}, substr(e.assistant, 1, 500) FROM exchanges AS e"
                " ORDER BY e.finished_at DESC, e.id DESC LIMIT ?"
            )
            rows = self._read(sql, [limit])
            return [entry(row, shorten(row[6], 80)) for row in rows]
        query = _match_query(text)
        if query is None:  # nothing in the text that the index holds (punctuation only)
            return []
        rows = self._reading(lambda conn: newest_matches(conn, query, limit))
        return [entry(row, one_line(row[6])) for row in rows]

    # -- the connection --------------------------------------------------------------

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self._reading(lambda conn: conn.execute(sql, params).fetchall())

    def _reading(self, read: Callable[[sqlite3.Connection], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                conn = self._connection(create=False)
                if conn is None:  # nothing logged yet: no file to make
                    return []
                return read(conn)
        except Exception as exc:  # noqa: BLE001 - a damaged log reads as an empty one
            self._trouble("read", exc)
            return []

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection; opened (and the file made, when ``create``) on first use."""
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            return None
        if create and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # made before SQLite makes it, so that it (and its -wal, -shm) is the user's alone
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            _write_ahead(conn)
            # with WAL, NORMAL loses nothing when a kernel dies, only at a power cut; a write
            # then costs no fsync
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Make the schema in a new file; refuse a newer one."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another kernel may have made it
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
            elif version > SCHEMA_VERSION:
                raise _NewerLog(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _trouble(self, doing: str, exc: Exception) -> None:
        """Warn (once) that the log failed; drop the connection, so the next call starts afresh."""
        with self._lock:
            self.close()
            warned, self._warned = self._warned, True
        if warned:
            logger.debug("chatmagic's exchange log at %s: %s", self.path, exc)
            return
        logger.warning("%s", _explain(doing, self.path, exc))


def _write_ahead(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (readers and one writer at once, a write costs no fsync).

    On a new file, several kernels may try at once; SQLite refuses the loser at once,
    without waiting (the busy timeout does not apply), so it tries again for a while.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _explain(doing: str, path: Path, exc: Exception) -> str:
    shown = os.fspath(path)
    if isinstance(exc, _NewerLog):
        return (
            f"The exchange log {shown} was written by a newer chatmagic (schema {exc.args[0]}, "
            f"this one knows {SCHEMA_VERSION}): exchanges are not logged. Upgrade chatmagic."
        )
    reason = str(exc) if isinstance(exc, sqlite3.Error) else getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in reason or "malformed" in reason):
        return (
            f"The exchange log {shown} is damaged or not chatmagic's ({reason}): exchanges are not "
            "logged. Move the file away and chatmagic starts a new log."
        )
    if "full" in reason or getattr(exc, "errno", None) == errno.ENOSPC:
        hint = "Free some disk space."
    elif "locked" in reason:
        hint = "Another program holds it locked."
    else:
        hint = "Set JUPYTER_DATA_DIR to a folder you can write to."
    return f"Could not {doing} the exchange log {shown} ({reason}): chat goes on without it. {hint}"


# -- rows and entries -------------------------------------------------------------------


def _row(record: dict[str, Any], notebook: str | None) -> dict[str, Any]:
    """The columns of ``record``'s row; what SQLite cannot store (lone surrogates) cleaned."""
    finished_at = _seconds(record.get("finished_at"))
    key, epoch, seq = record.get("key"), record.get("epoch"), record.get("seq")
    return {
        "notebook": _notebook_path(notebook) if notebook else None,
        "conversation": _clean(str(record.get("conversation") or "default")),
        "epoch": _clean(epoch) if isinstance(epoch, str) else None,
        "key": _clean(key) if isinstance(key, str) else None,
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "finished_at": time.time() if finished_at is None else finished_at,
        "provider": _clean(str(record.get("provider") or "")),
        "model": _clean(str(record.get("model") or "")),
        "user": _clean(str(record.get("user", ""))),
        "assistant": _clean(str(record.get("assistant", ""))),
        "record": _clean(json.dumps(record, ensure_ascii=False, default=str)),
    }


def _seconds(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _notebook_path(notebook: str) -> str:
    # the frontend may give it relative to the kernel's folder; the log outlives that folder
    return _clean(os.path.abspath(notebook))


def _match_query(text: str) -> str | None:
    """``text`` as an FTS5 query that cannot be a syntax error: each word a quoted string."""
    terms = []
    for word in CONTROLS.sub(" ", text).split():
        stem = word.rstrip("*")
        if not any(ch.isalnum() for ch in stem):  # the index holds no token of it
            continue
        terms.append('"' + stem.replace('"', '""') + '"' + ("*" if stem != word else ""))
    return " ".join(terms) or None


def _clean(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so that it can be encoded."""
    return _SURROGATES.sub("\ufffd", text)
