"""The time the glass box adds to a turn: taking the request apart, counting it, deciding.

Before every turn the cell runs :func:`chatmagic.preflight.check` on the prepared turn (its
parts, each counted; the whole request counted with the chat overhead; the window; the
price and the budget's decision) and then the gate (:mod:`chatmagic._gate`). This bench
times ``check`` from the caller's thread (the hop to the session's loop included) on a
conversation whose history fills the default budget (40,000 characters of this repository's
prose and code, as ``bench/token_estimate.py`` builds it), a new prompt each turn, against
the stand-in on 127.0.0.1:

- ``openai · gpt-4o`` with no budget and no known window: "≈" until a thread has loaded the
  offline BPE (the first turn never waits for it), then the BPE;
- ``openai · gpt-4o`` with a budget: the offline BPE (o200k_base) for every part and the whole;
- ``llamacpp · llama3.2``: the "≈" estimate, the window from ``/props`` (found once, cached);
- ``llamacpp`` asking the server's tokenizer (``/apply-template`` + ``/tokenize``) each turn,
  for comparison (what ``%chat context`` and ``--dry-run`` do, and a turn near a limit);
- ``chatgptt`` (a web site: nothing to ask).

The first turn of each (window discovery; for gpt-4o the BPE's import and vocabulary) is
shown apart: it is paid once per process. Goal: under 5 ms per turn without a server
tokenizer call (the median; the 95th percentile is shown too).

    .venv/bin/python bench/glass_box.py [--turns 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from token_estimate import chunks  # noqa: E402

from chatmagic.budget import Limits  # noqa: E402
from chatmagic.options import TurnOptions  # noqa: E402
from chatmagic.preflight import check  # noqa: E402
from chatmagic.providers.window import forget  # noqa: E402
from chatmagic.sandbox import Sandbox  # noqa: E402
from chatmagic.session import DEFAULT_MAX_HISTORY_CHARS, ChatSession, Exchange, Message  # noqa: E402

#: provider, model, ask the server's tokenizer every turn, a budget set (max_input_tokens, max_cost)
CASES = (
    ("openai", "gpt-4o", False, False),
    ("openai", "gpt-4o", False, True),
    ("llamacpp", "llama3.2", False, True),
    ("llamacpp", "llama3.2", True, True),
    ("chatgptt", "", False, True),
)


def filled(session: ChatSession, name: str, provider: str, model: str) -> None:
    """A conversation whose history is over the default budget (so the budget binds)."""
    pieces = chunks()
    conv = session.conversation(name)
    size = 0
    for i in range(0, len(pieces) - 1, 2):
        conv.record(
            Exchange(Message("user", pieces[i][:600]), Message("assistant", pieces[i + 1]), provider, model)
        )
        size += len(pieces[i][:600]) + len(pieces[i + 1])
        if size > DEFAULT_MAX_HISTORY_CHARS * 1.2:
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()
    sb = Sandbox().start_in_thread()
    session = ChatSession()
    session.base_urls = {site: sb.base_url(site) for site in ("openai", "llamacpp", "chatgptt")}
    budget = Limits(prices={"gpt-4o": {"input": 2.5, "output": 10.0}}, max_input_tokens=100_000, max_cost=1.0)
    print(
        f"preflight.check per turn, {args.turns} turns, history over the default budget ({DEFAULT_MAX_HISTORY_CHARS:,} chars)"
    )
    try:
        forget()
        for provider, model, ask, budgeted in CASES:
            limits = budget if budgeted else Limits()
            name = f"{provider}-{ask}-{budgeted}"
            filled(session, name, provider, model)
            times: list[float] = []
            for turn_no in range(args.turns + 1):
                options = TurnOptions(provider=provider, model=model or None)
                turn = session.prepare(
                    f"Question {turn_no}: what does this do? " * 3, conversation=name, options=options
                )
                started = time.perf_counter()
                box = check(turn, limits=limits, ask_server=ask)
                times.append(time.perf_counter() - started)
            first, warm = times[0], sorted(times[1:])
            p95 = warm[int(len(warm) * 0.95) - 1]
            how = ("server tokenizer each turn" if ask else "no server tokenizer call") + (
                ", budget" if budgeted else ", no budget"
            )
            print(
                f"  {provider:8} · {model or '(site)':9} {how:39} first {first * 1e3:7.1f} ms; "
                f"then median {statistics.median(warm) * 1e3:5.2f} ms, p95 {p95 * 1e3:5.2f} ms; "
                f"{len(box.parts)} parts, {box.total} tokens ({box.total.how}), window {box.window.tokens}"
            )
    finally:
        session.close()
        sb.stop()


if __name__ == "__main__":
    main()
