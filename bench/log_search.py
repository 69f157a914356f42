"""How long ``%chat log TEXT`` takes on a log of 100,000 exchanges.

Builds a log in a temporary folder through chatmagic's own schema (``ExchangeLog``; rows
inserted in one transaction, so its triggers fill the full-text index as ``add`` does):
``--exchanges`` exchanges, each a one-line question (filler words; every 173rd mentions
"pivot") and a Markdown reply of about 800 characters that reads like a model's
(``bench/_reply_text.py``; 1,000 distinct ones, each stamped with its exchange's number),
finished one second apart, in id order, as a kernel logs them.

Each query runs ``--repeat`` times through ``ExchangeLog.search`` (limit 20, as
``%chat log``), median and max; then the query main had (dc00e9b: sort every match by time,
a snippet each) once, for comparison, and whether both list the same exchanges and
snippets. Then the log is put out of order and the queries run again: one old exchange
given the newest time, then 2,001 given later times than all others, then every time
shuffled (ids say nothing of times). Then what writing costs on that log: ``add`` of a new
exchange, and of one that replaces another (a re-run cell), ``--writes`` times each. Last,
how long rebuilding the full-text index from the rows takes (``'rebuild'``: what building
it, or another index, for an existing log would cost).

    .venv/bin/python bench/log_search.py [--exchanges 100000] [--repeat 5] [--writes 50] [--no-old]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _reply_text import markdown_reply  # noqa: E402

from chatmagic.log import ExchangeLog, _match_query  # noqa: E402

QUERIES = (
    "filler text",  # common words: in most prompts
    "the",  # the commonest word
    "the data and the model",  # several common words
    "pivot",  # rare: one exchange in 173
    '"pivot table"',  # a phrase, quoted
    '"pivot" table? -sales- (data) NOT',  # quotes, punctuation, operators: plain text
    "t*",  # a one-letter prefix: the widest
    "zebra",  # no match
)
_T0 = 1_770_000_000.0
_OLD_SQL = (
    "SELECT e.finished_at, e.notebook, e.conversation, e.provider, e.model, substr(e.user, 1, 500),"
    " snippet(exchanges_text, -1, '«', '»', '…', 12)"
    " FROM exchanges_text JOIN exchanges AS e ON e.id = exchanges_text.rowid"
    " WHERE exchanges_text MATCH ? ORDER BY e.finished_at DESC, e.id DESC LIMIT ?"
)


def build(path: Path, count: int) -> float:
    replies = [markdown_reply(800, seed=i) for i in range(1000)]
    rows = []
    for i in range(count):
        topic = "a pivot table of the sales data" if i % 173 == 0 else "the cache and its entries"
        user = f"Question {i}: some filler text, then how do I use {topic}? Just the short answer."
        assistant = f"Exchange {i}.\n\n{replies[i % len(replies)]}"
        record = {"version": 1, "conversation": "default", "user": user, "assistant": assistant}
        rows.append(("default", i, _T0 + i, "chatgptt", "gpt-4o", user, assistant, json.dumps(record)))
    start = time.perf_counter()
    with ExchangeLog(path) as log:
        log.add({"user": "-", "assistant": "-", "finished_at": 0.0}, None)  # makes the file
        conn = log._connection(create=True)  # noqa: SLF001 - one transaction for 100,000 rows
        assert conn is not None
        conn.execute("DELETE FROM exchanges")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO exchanges (conversation, seq, finished_at, provider, model, user, assistant, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    return time.perf_counter() - start


def timed(log: ExchangeLog, text: str, repeat: int) -> tuple[list[float], list[tuple[float, str]]]:
    times, found = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        found = [(entry.when, entry.snippet) for entry in log.search(text, limit=20)]
        times.append(time.perf_counter() - start)
    return times, found


def old_search(path: Path, text: str) -> tuple[float, list[tuple[float, str]]]:
    """main's query: its time, and what it lists (time and snippet of each)."""
    query = _match_query(text)
    conn = sqlite3.connect(path)
    try:
        start = time.perf_counter()
        rows = conn.execute(_OLD_SQL, (query, 20)).fetchall() if query is not None else []
        return time.perf_counter() - start, [(row[0], " ".join(row[6].split())) for row in rows]
    finally:
        conn.close()


def table(path: Path, repeat: int, old: bool) -> None:
    print(
        f"{'query':<36} {'found':>5} {'median s':>9} {'max s':>7}"
        + ("  main (dc00e9b) s  same list" if old else "")
    )
    with ExchangeLog(path) as log:
        log.search("warm up")
        for text in QUERIES:
            times, found = timed(log, text, repeat)
            line = f"{text!r:<36} {len(found):>5} {statistics.median(times):>9.3f} {max(times):>7.3f}"
            if old:
                seconds, listed = old_search(path, text)
                line += f"  {seconds:>17.3f}  {'yes' if listed == found else 'NO'}"
            print(line)


def writes(path: Path, count: int, repeat: int) -> None:
    """What ``ExchangeLog.add`` costs on this log: a new exchange, and one replacing another."""
    reply = markdown_reply(800, seed=7)
    with ExchangeLog(path) as log:
        log.search("warm up")
        for label, key in (("new exchange", None), ("replacing one (same key)", "cell-1")):
            times = []
            for i in range(repeat):
                user = f"Question {count + i}: the filler text of a new exchange, about tables?"
                record = {"version": 1, "conversation": "bench", "key": key or f"new-{i}", "user": user}
                record |= {"assistant": reply, "finished_at": _T0 + 2 * count + i}
                start = time.perf_counter()
                log.add(record, notebook="/bench/log.ipynb")
                times.append(time.perf_counter() - start)
            print(
                f"ExchangeLog.add, {label}: median {statistics.median(times) * 1000:.1f} ms,"
                f" max {max(times) * 1000:.1f} ms ({repeat} writes)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--writes", type=int, default=50, help="How many exchanges to add, each way.")
    parser.add_argument("--no-old", dest="old", action="store_false", help="Skip the query main had.")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exchanges.sqlite3"
        seconds = build(path, args.exchanges)
        size = path.stat().st_size / 1e6
        print(
            f"{args.exchanges:,} exchanges logged (index filled by the triggers) in {seconds:.1f} s; {size:.0f} MB"
        )
        print("\nIn order (as a kernel logs them):")
        table(path, args.repeat, args.old)
        with ExchangeLog(path) as log:
            conn = log._connection(create=False)  # noqa: SLF001 - a clock set back
            assert conn is not None
            conn.execute("UPDATE exchanges SET finished_at = ? WHERE id = 1000", (_T0 + 10 * args.exchanges,))
        print("\nA few out of order (exchange 1000 given the newest time):")
        table(path, args.repeat, args.old)
        with ExchangeLog(path) as log:
            conn = log._connection(create=False)  # noqa: SLF001 - a clock set back for a while
            assert conn is not None
            conn.execute(
                "UPDATE exchanges SET finished_at = finished_at + ? WHERE id BETWEEN 2000 AND 4000",
                (args.exchanges,),
            )
        print("\nFar out of order (exchanges 2000-4000 later than all others):")
        table(path, args.repeat, args.old)
        with ExchangeLog(path) as log:
            conn = log._connection(create=False)  # noqa: SLF001 - kernels whose clocks disagree
            assert conn is not None
            # 7919 is prime: id -> id * 7919 mod n is a permutation, the same every run
            conn.execute("UPDATE exchanges SET finished_at = ? + (id * 7919) % ?", (_T0, args.exchanges))
        print("\nShuffled (every exchange given a time at random):")
        table(path, args.repeat, args.old)
        writes(path, args.exchanges, args.writes)
        start = time.perf_counter()
        with ExchangeLog(path) as log:
            conn = log._connection(create=False)  # noqa: SLF001
            assert conn is not None
            conn.execute("INSERT INTO exchanges_text (exchanges_text) VALUES ('rebuild')")
        print(f"\nRebuilding the full-text index from the rows: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
