"""The exchange log: real SQLite files in a temporary folder, as a kernel would use them."""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import chatmagic.log
from chatmagic.log import ExchangeLog, LogEntry, default_log_path, format_entries
from chatmagic.record import FORMAT_VERSION, METADATA_KEY, exchange_record, saved_exchanges
from chatmagic.session import Conversation, Exchange, Message

T0 = 1_770_000_000.0


def record(
    user: str = "How do I pivot a DataFrame?",
    assistant: str = "Use pivot_table with the column as index.",
    *,
    conversation: str = "default",
    epoch: str | None = "epoch-1",
    key: str | None = None,
    seq: int = 0,
    finished_at: float = T0,
    provider: str = "chatgptt",
    model: str = "gpt-4o",
) -> dict[str, Any]:
    """A record as chatmagic.record.exchange_record makes it."""
    return {
        "version": 1,
        "conversation": conversation,
        "epoch": epoch,
        "system": "Be brief.",
        "chain": "chatgptt",
        "key": key,
        "provider": provider,
        "model": model,
        "user": user,
        "assistant": assistant,
        "stopped": False,
        "first_text_s": 0.25,
        "total_s": 1.5,
        "finished_at": finished_at,
        "seq": seq,
        "context_hash": "abc123",
    }


@pytest.fixture
def log(tmp_path: Path) -> Any:
    with ExchangeLog(tmp_path / "chatmagic" / "exchanges.sqlite3") as opened:
        yield opened


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chatmagic" and r.levelno == logging.WARNING]


# -- where, and when the file is made ---------------------------------------------------


def test_default_path_is_in_the_jupyter_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    assert default_log_path() == tmp_path / "data" / "chatmagic" / "exchanges.sqlite3"


def test_the_file_is_made_on_the_first_write_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "exchanges.sqlite3"
    with ExchangeLog(path) as log:
        assert not path.parent.exists()
        assert log.records() == [] and log.search() == [] and log.search("pivot") == []
        assert not path.parent.exists()  # reading an absent log makes nothing
        log.add(record(), notebook=None)
        assert path.exists()
        if os.name == "posix":  # prompts are personal
            assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()


# -- adding and reading back ------------------------------------------------------------


def test_a_record_reads_back_exactly(log: ExchangeLog, tmp_path: Path) -> None:
    saved = record(user="Ünïcode ✓ and a 'quote'", key="cell-1")
    log.add(saved, notebook=str(tmp_path / "analysis.ipynb"))
    assert log.records() == [saved]
    assert log.records(notebook=str(tmp_path / "analysis.ipynb")) == [saved]


def test_the_same_key_replaces_and_keyless_exchanges_accumulate(log: ExchangeLog) -> None:
    nb = "/work/analysis.ipynb"
    log.add(record("first", key="cell-1", finished_at=T0), notebook=nb)
    log.add(record("first, re-run", key="cell-1", finished_at=T0 + 1), notebook=nb)
    assert [r["user"] for r in log.records()] == ["first, re-run"]

    # the same key elsewhere is another exchange: another notebook, conversation, or epoch
    log.add(record("other notebook", key="cell-1", finished_at=T0 + 2), notebook="/work/other.ipynb")
    log.add(record("other conversation", key="cell-1", conversation="notes", finished_at=T0 + 3), notebook=nb)
    log.add(record("after --new", key="cell-1", epoch="epoch-2", finished_at=T0 + 4), notebook=nb)
    log.add(record("no notebook", key="cell-1", finished_at=T0 + 5), notebook=None)
    log.add(record("no notebook, re-run", key="cell-1", finished_at=T0 + 6), notebook=None)
    # a panel's exchanges have no key: each one stays, even the same words twice
    log.add(record("hello", finished_at=T0 + 7), notebook=nb)
    log.add(record("hello", finished_at=T0 + 8), notebook=nb)
    assert [r["user"] for r in log.records()] == [
        "first, re-run",
        "other notebook",
        "other conversation",
        "after --new",
        "no notebook, re-run",
        "hello",
        "hello",
    ]


def test_a_text_key_replaces_only_the_exchange_in_its_place(log: ExchangeLog) -> None:
    # a cell's text as its key (no cell id): the same text asked again later is a new exchange
    log.add(record("same text", key="text:abc", seq=0, finished_at=T0), notebook=None)
    log.add(record("same text", "re-run", key="text:abc", seq=0, finished_at=T0 + 1), notebook=None)
    log.add(record("same text", "asked again", key="text:abc", seq=3, finished_at=T0 + 2), notebook=None)
    assert [r["assistant"] for r in log.records()] == ["re-run", "asked again"]


def test_records_of_one_notebook_or_conversation(
    log: ExchangeLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log.add(record("a", finished_at=T0 + 2), notebook="a.ipynb")  # relative to the kernel's folder
    log.add(record("b", finished_at=T0 + 1), notebook=str(tmp_path / "b.ipynb"))
    log.add(record("a notes", conversation="notes", finished_at=T0), notebook=str(tmp_path / "a.ipynb"))
    log.add(record("none", finished_at=T0 + 3), notebook=None)
    assert [r["user"] for r in log.records()] == ["a notes", "b", "a", "none"]  # oldest first
    assert [r["user"] for r in log.records(notebook=str(tmp_path / "a.ipynb"))] == ["a notes", "a"]
    assert [r["user"] for r in log.records(notebook="a.ipynb", conversation="default")] == ["a"]
    assert [r["user"] for r in log.records(conversation="notes")] == ["a notes"]
    assert log.records(notebook=str(tmp_path / "missing.ipynb")) == []
    assert log.search("none")[0].notebook is None
    assert log.search("b")[0].notebook == str(tmp_path / "b.ipynb")


def test_text_no_encoding_can_hold_is_replaced(log: ExchangeLog) -> None:
    log.add(record("lone \ud800 surrogate", "reply \udfff"), notebook="/work/\udcff.ipynb")
    [saved] = log.records()
    assert saved["user"] == "lone \ufffd surrogate" and saved["assistant"] == "reply \ufffd"
    assert log.search("surrogate")[0].notebook == "/work/\ufffd.ipynb"


# -- searching --------------------------------------------------------------------------


def test_search_finds_words_in_prompts_and_replies_newest_first(log: ExchangeLog) -> None:
    log.add(record("How do I pivot a DataFrame?", "Use pivot_table.", finished_at=T0), notebook=None)
    log.add(record("Plot a histogram", "Call df.hist() on the PIVOT.", finished_at=T0 + 60), notebook=None)
    log.add(record("Read a CSV", "pd.read_csv, then a naïve parse.", finished_at=T0 + 120), notebook=None)

    found = log.search("pivot")
    assert [e.user for e in found] == ["Plot a histogram", "How do I pivot a DataFrame?"]
    assert found[0].snippet == "Call df.hist() on the «PIVOT»."
    assert found[1].snippet == "How do I «pivot» a DataFrame?"
    assert [e.user for e in log.search("histogram")] == ["Plot a histogram"]  # in a prompt
    assert [e.user for e in log.search("read_csv")] == ["Read a CSV"]  # in a reply
    assert [e.user for e in log.search("naive")] == ["Read a CSV"]  # accents aside
    assert [e.user for e in log.search("pivot_t*")] == ["How do I pivot a DataFrame?"]  # a prefix
    assert [e.user for e in log.search("pivot df")] == ["Plot a histogram"]  # every word
    assert log.search("pivot", limit=1)[0].user == "Plot a histogram"
    assert log.search("pivot", limit=0) == []
    assert log.search("absent") == []

    latest = log.search()
    assert [e.user for e in latest] == ["Read a CSV", "Plot a histogram", "How do I pivot a DataFrame?"]
    assert latest[0] == LogEntry(
        when=T0 + 120,
        notebook=None,
        conversation="default",
        provider="chatgptt",
        model="gpt-4o",
        user="Read a CSV",
        snippet="pd.read_csv, then a naïve parse.",
    )


@pytest.mark.parametrize(
    "text",
    [
        '"',
        "'",
        '"unterminated',
        "AND OR NOT",
        "NOT",
        "pivot AND",
        "*",
        "**",
        "(",
        "pivot)",
        "NEAR(pivot table)",
        "user:pivot",
        "{user assistant}: x",
        "^pivot",
        "-pivot",
        "+",
        "\x00",
        "pi\x00vot",
        "naïve",
        "日本語",
        "🙂",
        "",
        "   \n\t",
        "a" * 5000,
    ],
)
def test_search_takes_any_text(log: ExchangeLog, caplog: pytest.LogCaptureFixture, text: str) -> None:
    log.add(record("Don't use NOT (or AND) with 'quotes' in 日本語", 'pivot "table" 🙂'), notebook=None)
    found = log.search(text)
    assert isinstance(found, list) and all(isinstance(e, LogEntry) for e in found)
    assert warnings_in(caplog) == []


def test_search_words_are_plain_text(log: ExchangeLog) -> None:
    log.add(record("Don't use NOT (or AND)", 'a "quoted" word'), notebook=None)
    assert len(log.search("don't")) == 1
    assert len(log.search("NOT")) == 1
    assert len(log.search("(or AND)")) == 1
    assert len(log.search('"quoted"')) == 1
    assert log.search("OR pivot") == []


#: main's query (dc00e9b): every match sorted by time, a snippet each; the reference for what
#: the fast search must list
_SORT_EVERY_MATCH = (
    "SELECT e.finished_at, e.user, snippet(exchanges_text, -1, '«', '»', '…', 12)"
    " FROM exchanges_text JOIN exchanges AS e ON e.id = exchanges_text.rowid"
    " WHERE exchanges_text MATCH ? ORDER BY e.finished_at DESC, e.id DESC LIMIT ?"
)
_WORDS = "the a of data model filler text cache pivot table sales heron".split()
_SECRETS = [
    "sk-proj-Ab12Cd34Ef56Gh78",
    "ghp_0123456789abcdefABCDEF",
    "AKIAIOSFODNN7EXAMPLE",
    "https://alice:pw@host/x",
]


def _random_log(log: ExchangeLog, order: str, count: int = 300) -> None:
    rng = random.Random(16)
    for i in range(count):
        words = rng.choices(_WORDS, weights=[30, 30, 20, 10, 10, 8, 8, 5, 2, 2, 2, 1], k=12)
        if i % 50 == 7:
            words.append(_SECRETS[(i // 50) % len(_SECRETS)])
        when = T0 + i // 2  # pairs at the same time: the id decides between them
        if order == "a few late" and i % 97 == 5:
            when = T0 + count  # written with a clock set ahead: newer than everything after it
        elif order == "kernels at once" and i % 7 == 3:
            when += 4  # logged a few exchanges before others that finished earlier
        elif order == "shuffled":
            when = T0 + rng.randrange(count)
        log.add(record(f"Q{i}: {' '.join(words[:6])}", " ".join(words), finished_at=when), notebook=None)


@pytest.mark.parametrize("order", ["in order", "a few late", "kernels at once", "shuffled"])
@pytest.mark.parametrize("limit", [1, 5, 20, 1000])
def test_search_lists_the_newest_matches_by_time_whatever_the_order_written(
    log: ExchangeLog, order: str, limit: int
) -> None:
    _random_log(log, order)
    reference = sqlite3.connect(log.path)
    queries = [
        "the",  # in nearly every exchange
        "the a of data",  # several common words
        "filler text",
        "heron",  # rare
        '"pivot table"',  # quoted: both words, as before
        "pivot? (table) AND -sales-",  # punctuation and operators: plain words
        "t*",  # a prefix: the, table, text
        "zebra",  # nothing
        *_SECRETS,  # secret-shaped: plain text too
    ]
    for text in queries:
        query = chatmagic.log._match_query(text)
        assert query is not None
        expected = reference.execute(_SORT_EVERY_MATCH, (query, limit)).fetchall()
        found = log.search(text, limit=limit)
        assert [(e.when, e.user, e.snippet) for e in found] == [
            (when, user, " ".join(snippet.split())) for when, user, snippet in expected
        ], text
    reference.close()
    assert log.search("heron") and log.search(_SECRETS[0]) and not log.search("zebra")


@pytest.mark.parametrize("order", ["in order", "shuffled"])
def test_a_long_listing_and_a_time_edited_by_hand(log: ExchangeLog, order: str) -> None:
    _random_log(log, order, count=120)
    conn = log._conn  # noqa: SLF001 - a hand edit, and SQLite's limit of parameters made small
    assert conn is not None
    conn.execute("UPDATE exchanges SET finished_at = 'yesterday' WHERE id = 3")
    # `-n 50000` on a large log passes the default limit (32,766) the way 30 passes this one
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
    reference = sqlite3.connect(log.path)
    for text in ("the", "t*", "the a of data"):
        query = chatmagic.log._match_query(text)
        assert query is not None
        expected = [row[:2] for row in reference.execute(_SORT_EVERY_MATCH, (query, 30))]
        assert [(e.when, e.user) for e in log.search(text, limit=30)] == expected, text
    reference.close()
    assert log.search("the", limit=30)[0].when == "yesterday"  # SQLite sorts text after numbers


def test_search_work_does_not_grow_with_the_log(log: ExchangeLog) -> None:
    """The newest 20 of 3,000 matches cost what the newest 20 of 300 do (main sorted them all).

    Counted in SQLite's own steps (a progress handler every 100), not in seconds: main's
    query took 120 for 300 exchanges, 1,173 for 3,000; this one 10-16 for both.
    """

    def steps(text: str) -> int:
        conn = log._conn  # noqa: SLF001 - SQLite's count of the work a search does
        assert conn is not None
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0

        conn.set_progress_handler(count, 100)
        try:
            assert len(log.search(text)) == 20
        finally:
            conn.set_progress_handler(None, 100)
        return counted[0]

    for i in range(300):
        log.add(record(f"Q{i}: the filler text", "The answer, with the usual words."), notebook=None)
    small = {text: steps(text) for text in ("the", "filler text", "t*")}
    for i in range(300, 3000):
        log.add(record(f"Q{i}: the filler text", "The answer, with the usual words."), notebook=None)
    large = {text: steps(text) for text in ("the", "filler text", "t*")}
    for text in small:
        assert large[text] <= small[text] * 1.5 + 5, (small, large)


# -- the listing ------------------------------------------------------------------------


def test_the_listing(log: ExchangeLog, tmp_path: Path) -> None:
    long_question = "Explain, step by step and with examples, how a pivot table summarises a long DataFrame"
    log.add(
        record(long_question, "First group the rows.\nThen a pivot\tturns them.", finished_at=T0),
        notebook=None,
    )
    log.add(
        record(
            "What is a pivot?", "A reshaping.", conversation="notes", finished_at=T0 + 60, model="gpt-4o-mini"
        ),
        notebook=str(tmp_path / "analysis.ipynb"),
    )

    def at(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))

    assert format_entries(log.search("pivot")) == (
        f'{at(T0 + 60)}  analysis.ipynb · notes · chatgptt · gpt-4o-mini  "What is a pivot?"\n'
        "    What is a «pivot»?\n"
        f'{at(T0)}  (no notebook) · default · chatgptt · gpt-4o  "Explain, step by step and with examples, how a pivot table…"\n'
        "    Explain, step by step and with examples, how a «pivot» table summarises…"
    )
    assert format_entries(log.search(), empty="-").splitlines()[1] == "    A reshaping."
    assert format_entries(log.search(limit=5)[1:]).endswith(
        "    First group the rows. Then a pivot turns them."
    )
    assert format_entries([]) == "No exchanges found in the log."
    assert format_entries([], empty="Nothing matches 'x'.") == "Nothing matches 'x'."


# -- threads and processes --------------------------------------------------------------


def test_threads_add_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "exchanges.sqlite3"
    shared = ExchangeLog(path)
    own = [ExchangeLog(path) for _ in range(2)]  # as two kernels would: each its connection
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def write(log: ExchangeLog, n: int) -> None:
        try:
            start.wait()
            for i in range(50):
                log.add(record(f"thread {n} turn {i}", finished_at=T0 + i), notebook=f"/nb/{n}.ipynb")
                log.search(f"thread {n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(log, n)) for n, log in enumerate([shared, shared, *own])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in (shared, *own):
        log.close()
    assert failures == [] and warnings_in(caplog) == []
    with ExchangeLog(path) as log:
        assert len(log.records()) == 200
        for n in range(4):
            assert [r["user"] for r in log.records(notebook=f"/nb/{n}.ipynb")] == [
                f"thread {n} turn {i}" for i in range(50)
            ]


def test_another_process_reads_what_one_wrote(tmp_path: Path) -> None:
    path = tmp_path / "exchanges.sqlite3"
    with ExchangeLog(path) as log:
        log.add(record("from the parent", finished_at=T0), notebook="/nb/a.ipynb")
        script = (
            "import json, sys\n"
            "from chatmagic.log import ExchangeLog\n"
            "log = ExchangeLog(sys.argv[1])\n"
            "print(json.dumps([r['user'] for r in log.records()]))\n"
            f"log.add({record('from the child', finished_at=T0 + 1)!r}, notebook='/nb/a.ipynb')\n"
            "log.close()\n"
        )
        child = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout) == ["from the parent"]
        assert [r["user"] for r in log.records(notebook="/nb/a.ipynb")] == [
            "from the parent",
            "from the child",
        ]


# -- a log that cannot be kept ----------------------------------------------------------


def test_a_folder_that_cannot_be_made_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "a-file" / "chatmagic" / "exchanges.sqlite3"
    with ExchangeLog(path) as log:
        log.add(record(), notebook=None)
        log.add(record(), notebook=None)
        assert log.records() == [] and log.search("pivot") == []
    [warning] = warnings_in(caplog)
    assert warning.startswith(f"Could not write to the exchange log {path} (Not a directory)")
    assert "chat goes on without it" in warning


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that file modes restrict")
def test_a_read_only_folder_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with ExchangeLog(folder / "exchanges.sqlite3") as log:
            log.add(record(), notebook=None)
            log.add(record(), notebook=None)
            assert log.records() == []
    finally:
        folder.chmod(0o700)
    [warning] = warnings_in(caplog)
    assert "Could not write to the exchange log" in warning


def test_a_damaged_file_warns_and_reads_as_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "exchanges.sqlite3"
    damaged = b"this is no SQLite database, whatever its name says\n" * 100
    path.write_bytes(damaged)
    with ExchangeLog(path) as log:
        log.add(record(), notebook=None)
        assert log.records() == []
        assert log.search() == [] and log.search("pivot") == []
    [warning] = warnings_in(caplog)
    assert warning == (
        f"The exchange log {path} is damaged or not chatmagic's (file is not a database): exchanges are "
        "not logged. Move the file away and chatmagic starts a new log."
    )
    assert path.read_bytes() == damaged  # the user's file is left as it was


def test_a_log_another_program_holds_is_skipped_until_released(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chatmagic.log, "BUSY_TIMEOUT_S", 0.1)
    path = tmp_path / "exchanges.sqlite3"
    with ExchangeLog(path) as log:
        log.add(record("before"), notebook=None)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            log.add(record("while held"), notebook=None)
        finally:
            other.execute("COMMIT")
            other.close()
        log.add(record("after"), notebook=None)
        assert [r["user"] for r in log.records()] == ["before", "after"]
    [warning] = warnings_in(caplog)
    assert warning == (
        f"Could not write to the exchange log {path} (database is locked): chat goes on without it. "
        "Another program holds it locked."
    )


def test_a_log_from_a_newer_chatmagic_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "exchanges.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with ExchangeLog(path) as log:
        log.add(record(), notebook=None)
        assert log.records() == []
    [warning] = warnings_in(caplog)
    assert "was written by a newer chatmagic (schema 7, this one knows 1)" in warning


# -- with the session core --------------------------------------------------------------


def test_a_conversations_exchanges_survive_in_the_log(tmp_path: Path) -> None:
    """What the session will do: log each exchange it records; restore reads them back."""
    conv = Conversation("notes", provider="chatgptt", system="Be brief.")
    exchanges = [
        Exchange(Message("user", "hi"), Message("assistant", "Hello!"), "chatgptt", "gpt-4o", key="panel-1"),
        Exchange(
            Message("user", "and then?"),
            Message("assistant", "Then noth", stopped=True),
            "chatgptt",
            "gpt-4o",
            first_text_s=0.1,
            total_s=0.4,
            context_hash="h",
        ),
    ]
    path = tmp_path / "exchanges.sqlite3"
    with ExchangeLog(path) as log:
        for ex in exchanges:
            conv.record(ex)
            log.add(exchange_record(conv, ex), notebook=str(tmp_path / "nb.ipynb"))
    # a kernel restart later: a new log object on the same file
    with ExchangeLog(path) as log:
        records = log.records(notebook=str(tmp_path / "nb.ipynb"), conversation="notes")
        found = log.search("noth*")
    assert records == [exchange_record(conv, ex) for ex in exchanges]
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [{"metadata": {METADATA_KEY: {"version": FORMAT_VERSION, "exchanges": records}}}],
            }
        ]
    }
    saved, invalid = saved_exchanges(notebook)
    assert invalid == 0
    assert [s.exchange for s in saved] == exchanges
    assert {(s.conversation, s.epoch, s.system, s.chain) for s in saved} == {
        ("notes", conv.epoch, "Be brief.", "chatgptt")
    }
    assert [(e.conversation, e.user, e.snippet) for e in found] == [("notes", "and then?", "Then «noth»")]
