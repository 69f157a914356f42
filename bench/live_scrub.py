"""What showing a streamed reply without secrets costs, per piece (``chatmagic._livescrub``).

Every piece a reply streams goes through ``LiveScrub.feed`` before any view sees it (the
turn's text is what may be shown). Here, in this process, with ``--secrets`` environment-style
secrets of 12 to 130 characters (a table like a user's with a few keys), the median over
``--repeat`` runs of feeding:

- ``words``: ``[[words:N]]`` as the stand-in streams it, ``w1 ``, ``w2 ``, ... (no secret, no hint);
- ``prose``: pieces that start like secrets and are not (``https://``, ``sk-learn``, ``AKIA``,
  ``--``), every one of them a near miss: the slow path on every piece;
- ``key block``: a 3,300-character private key block in 4-character pieces (held back whole
  until its END line: each piece reads the held block again);

and checks that what was shown is the scrub of the whole text (``_secrets.scrub``).

Then (``--turns``, default 20 each) whole turns in this process: ``[[words:10000]]`` from the
stand-in's chatgpt4online (on a thread), through a ``ChatSession``, with
``redact_secrets`` on and off in turn (off: the pieces go to the turn as they came), two
unmeasured first; the median and minimum time from send to the turn's end.

    .venv/bin/python bench/live_scrub.py [--pieces 10000] [--secrets 5] [--repeat 5] [--turns 20]
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import time

from chatmagic._livescrub import LiveScrub
from chatmagic._secrets import scrub
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession, TurnOptions


def table(n: int) -> list[tuple[str, str]]:
    rng = random.Random(1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return [
        (f"SERVICE_{i}_TOKEN", "".join(rng.choice(alphabet) for _ in range(12 + (i * 29) % 119)))
        for i in range(n)
    ]


def cases(n: int) -> dict[str, list[str]]:
    prose = ["The quick brown fox, ", "said: see https://example.com/a ", "and sk-learn ", "AKIA ", "-- ok. "]
    body = base64.b64encode(random.Random(2).randbytes(2400)).decode()
    pem = (
        "Here it is:\n-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        + "\n-----END RSA PRIVATE KEY-----\nDone."
    )
    return {
        "words": [f"w{i} " for i in range(1, n + 1)],
        "prose": (prose * (n // len(prose) + 1))[:n],
        "key block": [pem[i : i + 4] for i in range(0, len(pem), 4)],
    }


def run(pieces: list[str], found: list[tuple[str, str]]) -> float:
    live = LiveScrub(found)
    start = time.perf_counter()
    shown = "".join(live.feed(p) for p in pieces) + live.end()
    took = time.perf_counter() - start
    assert shown == scrub("".join(pieces), found=found), "shown differs from the scrub of the whole"
    return took


def turns(count: int) -> dict[bool, list[float]]:
    """Seconds from send to end of ``count`` turns with redaction on and ``count`` with it off."""
    sandbox = Sandbox().start_in_thread()
    session = ChatSession()
    session.retries = 0
    session.base_urls["chatgpt4online"] = sandbox.base_url("chatgpt4online")
    took: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(2 * count + 2):
            on = i % 2 == 0
            session.redact_secrets = on
            start = time.perf_counter()
            turn = session.send(
                "[[words:10000]]", conversation="bench", options=TurnOptions(provider="chatgpt4online")
            )
            assert turn.result(60).endswith("w10000 ")
            if i >= 2:
                took[on].append(time.perf_counter() - start)
            session.conversations.clear()
    finally:
        session.close()
        sandbox.stop()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=10_000)
    parser.add_argument("--secrets", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    found = table(args.secrets)
    print(f"{args.secrets} secrets; median of {args.repeat} runs")
    for name, pieces in cases(args.pieces).items():
        took = statistics.median(run(pieces, found) for _ in range(args.repeat))
        chars = sum(map(len, pieces))
        print(
            f"  {name:10} {len(pieces):>6} pieces, {chars:>7,} chars: {took * 1e3:7.1f} ms"
            f" = {took / len(pieces) * 1e6:6.1f} us a piece"
        )
    if args.turns:
        print(f"[[words:10000]] turns, {args.turns} each, taking turns:")
        for on, times in sorted(turns(args.turns).items()):
            print(
                f"  redact_secrets={str(on):5}  median {statistics.median(times) * 1e3:5.0f} ms"
                f"  min {min(times) * 1e3:5.0f} ms"
            )


if __name__ == "__main__":
    main()
