"""How long ``%chat history`` takes on a conversation of 10,000 exchanges.

A real IPython shell (``IPython.testing.globalipapp``, as the tests use) loads chatmagic
with its exchange log off. The conversation is taken whole, as ``%chat restore`` does
(``Conversation.adopt``): 10,000 exchanges (``--exchanges``), each a one-line question and
a Markdown reply of about 800 characters (``--reply-chars``) that reads like a model's
(``bench/_reply_text.py``, a different seed each, so no two replies are the same). Nothing
goes over the network.

Each command runs ``--repeat`` times (median, min and max; one unmeasured warm-up first
imports the renderer): the wall time of ``ip.run_line_magic("chat", ...)`` with the output
captured (``IPython.utils.capture``), and the size of what it displayed (text/html and
text/plain, UTF-8). The same default command on a conversation of 20 exchanges shows what
the conversation's size adds.

    .venv/bin/python bench/history_time.py [--exchanges 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reply_text import markdown_reply  # noqa: E402


def conversation_exchanges(count: int, reply_chars: int) -> list[Any]:
    from chatmagic.session import Exchange, Message

    return [
        Exchange(
            Message("user", f"Question {i}: how does the cache keep its entries?"),
            Message("assistant", markdown_reply(reply_chars, seed=i)),
            "chatgptt",
            "gpt-4o",
            total_s=1.2,
            seq=i,
        )
        for i in range(count)
    ]


def measure(ip: Any, line: str, repeat: int) -> tuple[list[float], int]:
    from IPython.utils.capture import capture_output

    times = []
    size = 0
    for run in range(repeat + 1):
        start = time.perf_counter()
        with capture_output() as io:
            ip.run_line_magic("chat", line)
        elapsed = time.perf_counter() - start
        (shown,) = io.outputs
        size = sum(len(shown.data[kind].encode()) for kind in ("text/html", "text/plain"))
        if run:  # the first run imports the renderer
            times.append(elapsed)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exchanges", type=int, default=10_000, help="Exchanges in the long conversation.")
    parser.add_argument("--reply-chars", type=int, default=800, help="About how long each reply is.")
    parser.add_argument("--repeat", type=int, default=7, help="Measured runs of each command.")
    args = parser.parse_args()

    from IPython.testing.globalipapp import start_ipython

    from chatmagic._state import get_session

    ip = start_ipython()
    ip.run_line_magic("load_ext", "chatmagic")
    ip.run_line_magic("config", "ChatMagics.log_path = ''")
    session = get_session()
    built = time.perf_counter()
    long = conversation_exchanges(args.exchanges, args.reply_chars)
    session.conversation("long").adopt(long)
    session.conversation("short").adopt(conversation_exchanges(20, args.reply_chars))
    chars = sum(len(ex.assistant.content) for ex in long)
    print(
        f"conversation 'long': {args.exchanges:,} exchanges, replies {chars:,} characters of Markdown "
        f"(built in {time.perf_counter() - built:.1f} s); load average {os.getloadavg()[0]:.2f}\n"
    )
    print(f"  {'command':<34} {'median':>9} {'min':>9} {'max':>9} {'runs':>5} {'displayed':>10}")
    rows = [
        ("history long", args.repeat),
        ("history long --last 100", args.repeat),
        ("history short", args.repeat),
        ("history long --all", max(1, min(3, args.repeat))),
    ]
    for line, repeat in rows:
        times, size = measure(ip, line, repeat)
        print(
            f"  %chat {line:<28} {statistics.median(times):>8.3f}s {min(times):>8.3f}s {max(times):>8.3f}s "
            f"{len(times):>5} {size / 1000:>8.1f} kB"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    ip.run_line_magic("unload_ext", "chatmagic")
    session.close()


if __name__ == "__main__":
    main()
