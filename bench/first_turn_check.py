"""What the first-turn check costs: reading the open notebook before a conversation's first
turn after a restart (chatmagic.unrestored), on a large notebook.

The check runs once per conversation, on its first turn in a kernel that holds nothing of
it. The notebook here: N %%chat cells of one conversation (a 500-character prompt and a
3,000-character reply each, the reply also as the output's text) and one figure of about
20 MB of base64, as notebooks with plots have.

    .venv/bin/python bench/first_turn_check.py [--exchanges 1000] [--figure-mb 15] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time

import nbformat

from chatmagic.record import exchange_record
from chatmagic.session import ChatSession, Conversation, Exchange, Message
from chatmagic.unrestored import unrestored_message


def build(path: str, exchanges: int, figure_mb: float) -> None:
    nb = nbformat.v4.new_notebook()
    conv = Conversation("review")
    for i in range(exchanges):
        ex = Exchange(
            Message("user", "q" * 500),
            Message("assistant", "a" * 3000),
            "chatgptt",
            "gpt-4o",
            key=f"cell:{i}",
            seq=i,
            finished_at=float(i),
        )
        cell = nbformat.v4.new_code_cell("%%chat -c review\nq")
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data",
                data={"text/plain": "a" * 3000},
                metadata={"chatmagic": exchange_record(conv, ex)},
            )
        ]
        nb.cells.append(cell)
    figure = nbformat.v4.new_code_cell("plot()")
    png = base64.b64encode(os.urandom(int(figure_mb * 2**20))).decode()
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    nb.cells.append(figure)
    nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=1000)
    parser.add_argument("--figure-mb", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.ipynb")
        build(path, args.exchanges, args.figure_mb)
        session = ChatSession()
        session.log_path = ""  # the notebook only: the log's part is one indexed query
        session.notebook = path
        times = []
        message = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            message = unrestored_message(session, "review", "cell:new")
            times.append((time.perf_counter() - started) * 1000)
        size = os.path.getsize(path) / 2**20
        print(f"notebook: {size:.1f} MB, {args.exchanges:,} exchanges of 'review'")
        print(f"first-turn check: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
        print(f"says: {message}")
        print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
