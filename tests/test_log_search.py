"""``%chat log TEXT`` on a log written out of order, and while other kernels write to it."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic.log import ExchangeLog

T0 = 1_770_000_000.0
_WORDS = "the a of data model filler text cache pivot table sales heron".split()


def record(i: int, finished_at: float) -> dict[str, Any]:
    rng = random.Random(i)
    words = " ".join(rng.choices(_WORDS, k=10))
    return {
        "version": 1,
        "conversation": "default",
        "epoch": "epoch-1",
        "key": f"cell-{i}",  # logged again (a re-run cell), it replaces the one logged before
        "provider": "chatgptt",
        "model": "gpt-4o",
        "user": f"Q{i}: {words}",
        "assistant": f"{words}, then the end ({i})",  # every one matches t*
        "finished_at": finished_at,
        "seq": i,
    }


@pytest.mark.parametrize("order", ["in order", "out of order"])
def test_a_listing_is_one_snapshot_while_another_kernel_writes(tmp_path: Path, order: str) -> None:
    path = tmp_path / "exchanges.sqlite3"
    times = [T0 + i for i in range(200)]
    if order == "out of order":  # kernels with clocks apart: ids no longer follow times
        random.Random(16).shuffle(times)
    records = [record(i, when) for i, when in enumerate(times)]
    with ExchangeLog(path) as log, ExchangeLog(path) as other:
        for rec in records:
            log.add(rec, notebook=None)
        before = [(e.when, e.user, e.snippet) for e in log.search("t*", limit=20)]
        assert len(before) == 20 and [when for when, *_ in before] == sorted(times, reverse=True)[:20]

        # while this one searches, another kernel re-runs the cells of the listed exchanges,
        # one at each step of the search: each gets a new id, and keeps its place and text
        listed = sorted(records, key=lambda rec: rec["finished_at"], reverse=True)[:20]
        relogged = [0]

        def relog(sql: str) -> None:
            other.add(listed[relogged[0] % len(listed)], notebook=None)
            relogged[0] += 1

        conn = log._conn  # noqa: SLF001 - the moments between the search's statements
        assert conn is not None
        conn.set_trace_callback(relog)
        try:
            during = [(e.when, e.user, e.snippet) for e in log.search("t*", limit=20)]
        finally:
            conn.set_trace_callback(None)
        # the listing is the log as it was at one moment, never a mix that lost the exchange
        assert relogged[0] > 1
        assert during == before
        assert [(e.when, e.user, e.snippet) for e in log.search("t*", limit=20)] == before
        assert len(log.records()) == 200


def test_chat_log_lists_the_newest_by_time_when_kernels_clocks_differ(
    ip: Any, fresh: None, tmp_path: Path
) -> None:
    path = tmp_path / "log.sqlite3"
    # two kernels take turns; the second's clock is an hour behind, so half of what it logs
    # later is older than what the first logged before
    with ExchangeLog(path) as first, ExchangeLog(path) as second:
        for i in range(60):
            kernel, clock = (first, T0) if i % 2 == 0 else (second, T0 - 3600 + 120)
            kernel.add(record(i, clock + i * 60), notebook=str(tmp_path / f"nb{i % 2}.ipynb"))

    ip.run_line_magic("config", f"ChatMagics.log_path = {str(path)!r}")
    try:
        with capture_output() as io:
            ip.run_line_magic("chat", "log -n 5 t*")
    finally:
        ip.run_line_magic("config", "ChatMagics.log_path = None")
    heads = io.stdout.splitlines()[::2]
    # the first kernel's last five turns (58, 56, ...): newer than anything the second logged
    assert [head.split('"')[1].split(":")[0] for head in heads] == ["Q58", "Q56", "Q54", "Q52", "Q50"]
    assert all("nb0.ipynb" in head for head in heads)
    assert heads[0].startswith(time.strftime("%Y-%m-%d %H:%M", time.localtime(T0 + 58 * 60)))
