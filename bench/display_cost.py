"""What a streamed reply costs the notebook while it streams, for replies of 10 s, 60 s and 300 s.

The reply is a long Markdown answer (bench/_reply_text.py: headings, paragraphs, lists,
Python code, tables; about 60,000 characters in about 9,800 words), streamed word by word
by the stand-in in another process (``[[delay:D]][[reply]]…`` to chatgpt4online, D chosen so
that the whole reply takes the given time). In a real kernel (jupyter_client, this venv's
``python3``), ``%%chat -p chatgpt4online --new --base-url …`` with that text, once per
duration. Counted from the IOPub messages of the cell (``json.dumps(content)``, UTF-8):

- streaming bytes: every ``display_data`` and ``update_display_data`` before the final
  update (the one carrying the record for ``%chat restore``), against the reply's characters;
  the goal is at most 3x, whatever the duration;
- messages, the most in any one second (the cap is 10), the first display and the first
  text after the request (times are when the kernel sent each message: the date in its
  header; the first text is the message after the first display);
- the gaps between two refreshes of the cell (median, 90th percentile, longest; a freeze
  and its new tail sent together are one refresh): how stale the cell may look;
- outputs (displays) the reply left, and that exactly one carries the record and the text
  is the reply.

Next to it, the previous design (one display re-sending the whole reply, _legacy_pacer.UpdatePacer),
SIMULATED on the same text and arrival times with the bundles it would have sent.

    .venv/bin/python bench/display_cost.py [--durations 10,60,300] [--chars 60000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from _reply_text import markdown_reply, pieces
from stream_cost import SITE, Kernel, SandboxProcess, fmt_bytes, load_average, machine, size

DISPLAY = ("display_data", "update_display_data")


def measure(k: Kernel, base: str, text: str, seconds: float, overhead: float = 0.0) -> dict[str, Any]:
    n = len(pieces(text))
    delay = max(0.0, seconds / n - overhead)
    cell = f"%%chat -p {SITE} --new --base-url {base}\n[[delay:{delay:.6f}]][[reply]]{text}"
    t0 = time.perf_counter()
    _, msgs = k.run(cell, timeout=seconds * 3 + 120)
    wall = time.perf_counter() - t0
    # times are the kernel's (the header's date, when the message was sent), from the request
    sent0 = time.time() - (time.perf_counter() - t0)
    shown = [(_sent_at(m) - sent0, m) for _, m in msgs if m["msg_type"] in DISPLAY]
    records = [m for _, m in shown if "chatmagic" in m["content"].get("metadata", {})]
    final = shown[-1][1]
    assert records == [final], "exactly one message, the last, carries the record"
    reply = k.expr("chatmagic.get_session().conversation().exchanges[-1].assistant.content")
    assert reply == text, f"the reply is not the text sent ({len(reply)} characters)"
    streaming = shown[:-1]
    times = [at for at, _ in streaming]
    # a refresh: messages sent together (a freeze and its new tail) are one change on screen
    refreshes = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 0.02]
    gaps = sorted(b - a for a, b in zip(refreshes, refreshes[1:], strict=False))
    per_second = max(sum(1 for u in times if t <= u < t + 1.0) for t in times) if times else 0
    # the first display shows the status line; the message after it is the first text
    first_text = times[1] if len(times) > 1 else None
    return {
        "wall": wall,
        "bytes": sum(size(m["content"]) for _, m in streaming),
        "messages": len(streaming),
        "per_second": per_second,
        "first_text": first_text,
        "first_display": times[0] if times else None,
        "gaps": gaps,
        "outputs": sum(1 for _, m in shown if m["msg_type"] == "display_data"),
        "final": size(final["content"]),
    }


def _sent_at(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    return float(date.timestamp() if hasattr(date, "timestamp") else date)


def piece_overhead(base: str) -> float:
    """Seconds each piece takes beyond its [[delay]] (the stand-in's sleep and write, the read)."""
    import asyncio

    from chatmagic.providers import get_provider

    async def read(n: int, delay: float) -> float:
        async with get_provider(SITE)(base_url=base) as provider:
            t0 = time.perf_counter()
            message = f"[[delay:{delay}]][[words:{n}]]"
            async for _ in provider.stream([{"role": "user", "content": message}]):
                pass
            return time.perf_counter() - t0

    asyncio.run(read(10, 0.0))
    n, delay = 1000, 0.003
    return max(0.0, (asyncio.run(read(n, delay)) - n * delay) / n)


def previous_design(text: str, seconds: float) -> tuple[int, int]:
    """(messages, bytes) of the previous display, SIMULATED: UpdatePacer asked at each piece's arrival.

    Each update re-sent the whole reply so far as one bundle (HTML and plain text, through
    _legacy_pacer.reply_bundle), plus the envelope of the message; the final update is left out.
    """
    from _legacy_pacer import UpdatePacer, reply_bundle

    ps = pieces(text)
    pacer, pos, total, msgs = UpdatePacer(), 0, 0, 0
    for i, p in enumerate(ps):
        pos += len(p)
        now = seconds * i / len(ps)
        if pacer.due(pos, now):
            pacer.sent(pos, now)
            bundle = reply_bundle(text[:pos], "markdown", "chatgpt4online · gpt-4 · streaming…")
            total += size({"data": bundle, "metadata": {}, "transient": {"display_id": "0" * 32}})
            msgs += 1
    return msgs, total


def reply_header(text: str) -> str:
    """What heads the output of a bench that streams ``text``: the machine, then the reply."""
    return (
        f"{machine()}\nreply: {len(text):,} characters of Markdown in {len(pieces(text)):,} pieces "
        f"(bench/_reply_text.py), from {SITE}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--durations", default="10,60,300", help="Seconds the reply takes (default 10,60,300)."
    )
    parser.add_argument("--chars", type=int, default=60_000, help="Size of the reply (default 60000).")
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    text = markdown_reply(args.chars)
    print(reply_header(text))
    sb = SandboxProcess()
    k = None
    results = []
    try:
        base = sb.base_url(SITE)
        overhead = piece_overhead(base)
        print(
            f"each piece takes {overhead * 1000:.2f} ms beyond its delay: the delays are shortened by that\n"
        )
        k = Kernel()
        k.run("%load_ext chatmagic")
        k.run("import chatmagic")
        measure(k, base, markdown_reply(3000, seed=1), 1.0)  # warm-up: imports, connection, nonce
        for seconds in durations:
            results.append((seconds, measure(k, base, text, seconds, overhead)))
    finally:
        if k is not None:
            k.stop()
        sb.stop()

    chars = len(text)
    print("In a kernel, MEASURED (display messages while streaming; the final update apart):")
    head = (
        f"  {'reply lasts':>11} {'bytes':>10} {'× reply':>8} {'msgs':>5} {'max/s':>6} {'1st display':>11} {'1st text':>9}"
        f" {'refresh gap':>11} {'p90':>6} {'longest':>8} {'outputs':>8} {'final update':>12}"
    )
    print(head)
    for _, r in results:
        g = r["gaps"]
        p90 = g[int(len(g) * 0.9)] if g else 0.0
        first = f"{r['first_text'] * 1000:.0f} ms" if r["first_text"] is not None else "–"
        shown = f"{r['first_display'] * 1000:.0f} ms" if r["first_display"] is not None else "–"
        print(
            f"  {r['wall']:>9.1f} s {fmt_bytes(r['bytes']):>10} {r['bytes'] / chars:>7.2f}x {r['messages']:>5}"
            f" {r['per_second']:>6} {shown:>11} {first:>9} {statistics.median(g) if g else 0:>10.2f}s {p90:>5.2f}s"
            f" {g[-1] if g else 0:>7.2f}s {r['outputs']:>8} {fmt_bytes(r['final']):>12}"
        )
    print("\nThe previous design (one display re-sending the whole reply, UpdatePacer), SIMULATED:")
    print(f"  {'reply lasts':>11} {'bytes':>10} {'× reply':>8} {'msgs':>5}")
    for seconds, _ in results:
        msgs, total = previous_design(text, seconds)
        print(f"  {seconds:>9.1f} s {fmt_bytes(total):>10} {total / chars:>7.2f}x {msgs:>5}")
    print(f"\n{load_average(after=True)}")
    print(json.dumps({f"{s:g}s": round(r["bytes"] / chars, 3) for s, r in results}))


if __name__ == "__main__":
    main()
