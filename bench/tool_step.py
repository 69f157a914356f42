"""The time a tool step adds to a turn, beyond the tool's own run time (goal: under 10 ms).

A real IPython shell (``IPython.testing.globalipapp``, as the tests use, its displays
captured as a notebook's would be) loads chatmagic;
the stand-in (``python -m chatmagic.sandbox``) runs in ANOTHER process. A ``%%chat -p openai
--tools noop`` cell asks the stand-in's model for ``[[tool:noop]]``: the model calls
``noop`` (approved for the session beforehand, so no one is asked), the cell runs it on the
main thread, sends the result back, and the model answers with it.

The step's cost is the time from the end of the reply that made the call (its last part
read) to the moment the next request is handed to the provider, minus the tool's own run
time as the card reports it: checking the call, the approval lookup, the hand-over to the
main thread and back (the waiting cell runs it), capturing its output, making its result
safe to send (bounded, scrubbed, marked), and building the next request. Measured by
wrapping the provider's ``parts`` (the bench's only instrument). Medians over ``--turns``
turns (default 30), for a tool that returns at once, one that sleeps 20 ms (the step's cost
should not grow with the tool's time), and a reply that says a sentence before its call (the
cell is then showing text and paces its looks: the step must still wake it at once).

    .venv/bin/python bench/tool_step.py [--turns 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def start_stand_in() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmagic.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "http://127.0.0.1:" in line:
            base = line[line.index("http://127.0.0.1:") :].split()[0].rstrip("/")
            return proc, base
    raise RuntimeError("the stand-in did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()

    from IPython.testing.globalipapp import start_ipython

    from chatmagic._state import get_session
    from chatmagic.providers.openai import OpenAICompatible

    proc, base = start_stand_in()
    try:
        os.environ["OPENAI_API_KEY"] = "sk-sandbox"
        ip = start_ipython()
        # displays go where a notebook's would (not printed): the cell path, cards and all
        from IPython.core.displaypub import CapturingDisplayPublisher

        ip.display_pub = CapturingDisplayPublisher()
        ip.run_line_magic("load_ext", "chatmagic")
        ip.run_line_magic("config", f"ChatMagics.base_urls = {{'openai': '{base}/openai/v1'}}")
        ip.run_cell(
            "import time\ndef noop() -> str:\n    return 'ok'\ndef nap() -> str:\n    time.sleep(0.02)\n    return 'ok'"
        )
        session = get_session()
        for name in ("noop", "nap"):
            session.pauses.allow(name)

        marks: list[tuple[str, float]] = []
        original = OpenAICompatible.parts

        async def timed(self: Any, *a: Any, **kw: Any) -> Any:
            marks.append(("start", time.perf_counter()))
            async for part in original(self, *a, **kw):
                yield part
            marks.append(("end", time.perf_counter()))

        OpenAICompatible.parts = timed  # type: ignore[method-assign]
        print(f"{args.turns} turns a tool, stand-in at {base}")
        variants = [
            ("noop", "noop", ""),
            ("nap", "nap", ""),
            # text before the call: the cell is showing text, and wakes on the step, not the text
            ("noop, text first", "noop", "[[reply]]Let me look that up."),
        ]
        for label, tool, said in variants:
            costs, tool_ms, totals = [], [], []
            for i in range(args.turns + 2):
                marks.clear()
                ip.run_cell_magic(
                    "chat", f"-p openai -c bench --new --tools {tool}", f"[[tool:{tool}]] {i}{said}"
                )
                exchange = session.conversation("bench").exchanges[-1]
                (step,) = exchange.tools
                assert step.state == "done", step
                starts = [t for kind, t in marks if kind == "start"]
                ends = [t for kind, t in marks if kind == "end"]
                gap = (starts[1] - ends[0]) * 1000
                if i >= 2:  # the first turns import and connect
                    costs.append(gap - (step.ms or 0.0))
                    tool_ms.append(step.ms or 0.0)
                    totals.append((exchange.total_s or 0) * 1000)
            costs.sort()
            print(
                f"{label:>16}: step cost median {statistics.median(costs):6.2f} ms, "
                f"p90 {costs[int(len(costs) * 0.9) - 1]:6.2f} ms, max {costs[-1]:6.2f} ms "
                f"(the tool's own time: median {statistics.median(tool_ms):6.2f} ms; "
                f"whole turn of two model calls: median {statistics.median(totals):6.1f} ms)"
            )
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
