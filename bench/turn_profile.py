"""Where chatmagic's own time per turn goes at exchange N, against a first exchange: cProfile
of both threads (the cell's, and the background loop that sends the request and reads the
reply), as ``bench/turn_cost.py`` sets them up.

One conversation gets ``--turns`` cells; then ``--sample`` pairs of turns, one more of the long
conversation and a first exchange (``--new`` on another), each profiled. Printed per thread:
the functions whose own time (ms per turn, profiled: the profiler's overhead included) grows
most from the first exchange to exchange N, and that time at exchange N. Waiting shows too
(``acquire``, ``poll``; ``send`` holds the GIL's hand-over): ``turn_cost.py`` counts CPU only.

    .venv/bin/python bench/turn_profile.py [--provider chatgptt] [--turns 1000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from turn_cost import start_stand_in  # noqa: E402

ROOT = f"{Path(__file__).resolve().parent.parent}/"


def _on_loop(runner: Any, fn: Any) -> None:
    """Run ``fn`` on the session's loop thread (a profiler is enabled per thread)."""
    done = threading.Event()
    runner.loop.call_soon_threadsafe(lambda: (fn(), done.set()))
    done.wait()


def _own_times(profile: cProfile.Profile, turns: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for (path, line, name), row in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        where = f"{path.rsplit('site-packages/', 1)[-1].removeprefix(ROOT)}:{line}({name})"
        out[where] = out.get(where, 0.0) + row[2] / turns * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", default="chatgptt", help="The provider (a site of the stand-in).")
    parser.add_argument("--turns", type=int, default=1000, help="Turns of the long conversation.")
    parser.add_argument("--sample", type=int, default=40, help="Profiled turns of each kind.")
    parser.add_argument("--top", type=int, default=25, help="Functions shown per thread.")
    args = parser.parse_args()

    from IPython.testing.globalipapp import start_ipython
    from IPython.utils.capture import capture_output

    from chatmagic._state import get_session

    proc, url = start_stand_in()
    try:
        ip = start_ipython()
        ip.run_line_magic("load_ext", "chatmagic")
        ip.run_line_magic("config", "ChatMagics.log_path = ''")
        ip.run_line_magic("config", f"ChatMagics.base_urls = { {args.provider: f'{url}/{args.provider}'}!r}")
        runner = get_session().runner
        long_line = f"-p {args.provider} -c bench-{args.provider}"
        for i in range(1, args.turns + 1):
            with capture_output():
                ip.run_cell_magic("chat", long_line, f"Question {i}: how is it going?")
        lines = {"late": long_line, "early": f"-p {args.provider} -c first --new"}
        profiles = {(kind, thread): cProfile.Profile() for kind in lines for thread in ("cell", "loop")}
        for k in range(args.sample):
            for kind, line in lines.items():
                cell, loop = profiles[kind, "cell"], profiles[kind, "loop"]
                _on_loop(runner, loop.enable)
                cell.enable()
                with capture_output():
                    ip.run_cell_magic("chat", line, f"Question {args.turns + k + 1}: how is it going?")
                cell.disable()
                _on_loop(runner, loop.disable)
        for thread in ("cell", "loop"):
            late = _own_times(profiles["late", thread], args.sample)
            early = _own_times(profiles["early", thread], args.sample)
            grown = {f: late.get(f, 0.0) - early.get(f, 0.0) for f in late.keys() | early.keys()}
            print(f"{thread} thread, ms per turn (profiled): at {args.turns}+ minus at 1, at {args.turns}+")
            for where, more in sorted(grown.items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"{more:9.3f} {late.get(where, 0.0):9.3f}  {where}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
