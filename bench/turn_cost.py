"""chatmagic's own work per turn, at the first exchanges of a conversation and at exchange 1,000.

A real IPython shell (``IPython.testing.globalipapp``, as the tests use) loads chatmagic with
its exchange log off; the stand-in (``python -m chatmagic.sandbox``) runs in ANOTHER process,
so that its work is not counted. For each provider (opchatgpts: a ``messages`` list;
chatgptt: the ``Role: content`` prompt), one conversation gets ``--turns`` ``%%chat`` cells
in a row (``ip.run_cell_magic``, output captured), each a different one-line question; the
stand-in answers each with a short echo, so the history grows by about 150 characters an
exchange and the budget (``ChatMagics.max_history_chars``, 40,000) bounds what is sent.

chatmagic's own time per turn is the CPU time of this process over the cell
(``time.process_time``: every thread, the magic, the session, the background loop that
streams and parses the reply): waiting for the network uses none, so it is excluded. "user"
is the same without the kernel's share (``getrusage``: the system calls that send the request
and read the reply, which grow with the request). Beside them, the wall time of
``ChatSession.prepare`` alone (what builds the request: the context,
the history, the scrubbing). Turn 1 (it imports the HTTP stack) is shown apart. Then come
``--sample`` (20) pairs of turns: one more turn of the long conversation ("at 1000+": its
exchange 1,001, 1,002, ...) and a first exchange (``--new`` on another conversation, "at 1"),
one after the other so that both see the same load on a shared machine; each figure is the
median of its 20.

The goal (issue 15): "cpu ms" at 1000+ at most 2x that at 1, for each provider. Where the
time goes, thread by thread: ``bench/turn_profile.py``.

    .venv/bin/python bench/turn_cost.py [--turns 1000] [--providers opchatgpts,chatgptt]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any


def start_stand_in() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmagic.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "chatmagic sandbox listening on http://127.0.0.1:PORT"
    return proc, first.rsplit(" ", 1)[-1].strip()


def run(
    ip: Any, session: Any, provider: str, turns: int, sample: int
) -> tuple[list[Any], list[Any], list[Any]]:
    """(CPU seconds of the cell, user-mode CPU seconds, wall seconds of prepare) of the turns building the long
    conversation, then of ``sample`` pairs: a turn of the long one, a first turn."""
    from IPython.utils.capture import capture_output

    prepare = session.prepare
    spent: list[float] = []

    def timed_prepare(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return prepare(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    def turn(line: str, text: str) -> tuple[float, float, float]:
        cpu, user = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        with capture_output():
            ip.run_cell_magic("chat", line, text)
        user = resource.getrusage(resource.RUSAGE_SELF).ru_utime - user
        return time.process_time() - cpu, user, spent[-1]

    long_name = f"bench-{provider}"
    session.prepare = timed_prepare
    building, late, early = [], [], []
    try:
        for i in range(1, turns + 1):
            building.append(turn(f"-p {provider} -c {long_name}", f"Question {i}: how is it going?"))
            if len(session.conversation(long_name)) != i:
                raise SystemExit(f"turn {i} of {provider} did not complete")
        # in pairs, so that both sides see the same load on a shared machine
        for k in range(sample):
            late.append(turn(f"-p {provider} -c {long_name}", f"Question {turns + k + 1}: how is it going?"))
            early.append(turn(f"-p {provider} -c first-{provider} --new", f"Question {k}: how is it going?"))
    finally:
        del session.prepare
    return building, early, late


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1000, help="Turns per conversation.")
    parser.add_argument("--providers", default="opchatgpts,chatgptt", help="Providers, comma-separated.")
    parser.add_argument("--sample", type=int, default=20, help="Turns in each median.")
    args = parser.parse_args()
    if args.turns < 1 or args.sample < 1:
        parser.error("--turns and --sample must be at least 1")

    from IPython.testing.globalipapp import start_ipython

    from chatmagic._state import get_session

    proc, url = start_stand_in()
    try:
        ip = start_ipython()
        ip.run_line_magic("load_ext", "chatmagic")
        ip.run_line_magic("config", "ChatMagics.log_path = ''")
        providers = args.providers.split(",")
        ip.run_line_magic("config", f"ChatMagics.base_urls = { {p: f'{url}/{p}' for p in providers}!r}")
        session = get_session()
        print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}, {args.turns} turns")
        first_col, last_col = "at 1", f"at {args.turns}+"
        print(f"{'provider':<12}{'':>8}{'turn 1':>10}{first_col:>10}{last_col:>10}{'last/first':>12}")
        for provider in providers:
            started = time.perf_counter()
            building, early, late = run(ip, session, provider, args.turns, args.sample)
            conv = session.conversation(f"bench-{provider}")
            for col, what in ((0, "cpu ms"), (1, "user ms"), (2, "prep ms")):
                first = statistics.median(t[col] for t in early) * 1000
                last = statistics.median(t[col] for t in late) * 1000
                print(
                    f"{provider if col == 0 else '':<12}{what:>8}{building[0][col] * 1000:>10.2f}"
                    f"{first:>10.2f}{last:>10.2f}{last / first:>11.2f}x"
                )
            sent = conv.exchanges[-1].assistant.content.rsplit("Earlier messages: ", 1)[-1]
            print(
                f"{'':<12}{len(conv)} exchanges in {time.perf_counter() - started:.0f} s; the last turn sent "
                f"{sent.rstrip('.')} earlier messages"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
