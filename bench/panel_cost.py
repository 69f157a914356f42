"""What the chat panel sends while a reply streams, for replies of 10 s and 60 s.

The reply is the long Markdown answer of ``bench/display_cost.py`` (``bench/_reply_text.py``:
headings, paragraphs, lists, Python code, tables; about 60,000 characters), streamed word by
word by the stand-in in another process (``[[delay:D]][[reply]]…`` to chatgpt4online, D
chosen so that the whole reply takes the given time, less what each piece costs beyond its
delay). A real :class:`chatmagic.panel.ChatPanel` in this process, on a session pointed at
that stand-in, sends it from its box (``panel.send``), once per duration, each in a
conversation of its own.

The widget's messages are taken where the kernel would put them on the wire (the comm's
``publish_msg``); a view says ``hello`` first, as panel.js does, so the panel draws. Counted:
the content of every ``comm_msg`` (``{"comm_id": …, "data": …}`` as JSON, UTF-8): custom
messages (the transcript) and state updates (status line, buttons).

- streaming bytes: every message sent from Send until the turn has ended (the final splice,
  the reply's complete rendering, and the state that goes with it are counted apart), against
  the reply's characters; the goal is at most 3x, whatever the duration. The user's message
  is in the transcript too: it is this whole text (the ``[[reply]]`` directive), so its
  bubble is left out of both counts;
- messages (state updates included), the transcript's messages among them, the most of
  those in any one second (the cap is 10) and the gaps between two of them (median, 90th
  percentile, longest): how often the reply on screen changes, how stale it may look;
- that the last assistant message the panel sent is exactly the recorded exchange's
  rendering, and that the conversation holds the text sent.

    .venv/bin/python bench/panel_cost.py [--durations 10,60] [--chars 60000]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import statistics
import threading
import time
from typing import Any

from _reply_text import markdown_reply, pieces
from display_cost import piece_overhead, reply_header
from stream_cost import SITE, SandboxProcess, fmt_bytes, load_average


class Wire:
    """The messages a panel's comm would publish, as the kernel would send them."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.comm_id = panel.comm.comm_id
        self.lock = threading.Lock()
        #: (time, content as JSON, a transcript message (not state), the turn had ended when it was sent)
        self.sent: list[tuple[float, str, bool, bool]] = []
        self.items: list[list[str]] = []
        panel.comm.publish_msg = self._publish

    def _publish(self, msg_type: str, data: Any = None, **_: Any) -> None:
        if msg_type != "comm_msg":
            return
        turn = self.panel.turn
        raw = json.dumps({"comm_id": self.comm_id, "data": data}, ensure_ascii=False)
        with self.lock:
            custom = data.get("method") == "custom"
            self.sent.append((time.monotonic(), raw, custom, turn is not None and turn.done))
            if data.get("method") == "custom":
                msg = data["content"]
                if msg["type"] == "reset":
                    self.items = msg["items"]
                elif msg["type"] == "splice":
                    self.items[msg["at"] : msg["at"] + msg["remove"]] = msg["items"]

    def say(self, **content: Any) -> None:
        """A custom message from the page (as panel.js sends it)."""
        self.panel.comm.handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )


def _plain(status_html: str) -> str:
    """The panel's status line as text (for a failed run's message)."""
    return html.unescape(re.sub(r"<[^>]+>", "", status_html))


def measure(session: Any, text: str, seconds: float, overhead: float) -> dict[str, Any]:
    from chatmagic import present
    from chatmagic.panel import ChatPanel
    from chatmagic.present import exchange_html

    n = len(pieces(text))
    delay = max(0.0, seconds / n - overhead)
    prompt = f"[[delay:{delay:.6f}]][[reply]]{text}"
    panel = ChatPanel(f"bench-{seconds:g}s", session=session)
    try:
        panel.provider = SITE
        wire = Wire(panel)
        wire.say(type="hello")
        assert panel.wait(10)
        start = len(wire.sent)
        t0 = time.monotonic()
        turn = panel.send(prompt)
        assert turn is not None, _plain(panel.status)
        assert panel.wait(seconds * 3 + 120), "the reply did not end"
        wall = time.monotonic() - t0
        assert turn.state == "done", _plain(panel.status)
        (exchange,) = panel.conversation.exchanges
        assert exchange.assistant.content == text, "the reply is not the text sent"
        assert wire.items[-1][1] == exchange_html(exchange), "the last message shown is not the reply"
        # the user's message is the whole text (the [[reply]] directive): not the reply's cost
        user = json.dumps(present.user_html(turn.prompt), ensure_ascii=False)[1:-1]
        sent = [
            (at, len(raw.replace(user, "").encode()), custom, ended)
            for at, raw, custom, ended in wire.sent[start:]
        ]
    finally:
        panel.close()
    streaming = [(at - t0, b, custom) for at, b, custom, ended in sent if not ended]
    # the transcript's messages: how often the reply on screen changes (the cap is 10 a second)
    times = [at for at, _, custom in streaming if custom]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    return {
        "wall": wall,
        "bytes": sum(b for _, b, _ in streaming),
        "messages": len(streaming),
        "transcript": len(times),
        "per_second": max(sum(1 for u in times if t <= u < t + 1.0) for t in times) if times else 0,
        "gaps": gaps,
        "final": sum(b for _, b, _, ended in sent if ended),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--durations", default="10,60", help="Seconds the reply takes (default 10,60).")
    parser.add_argument("--chars", type=int, default=60_000, help="Size of the reply (default 60000).")
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    text = markdown_reply(args.chars)
    print(reply_header(text))
    from chatmagic.session import ChatSession

    sb = SandboxProcess()
    session = ChatSession()
    session.retries = 0
    results = []
    try:
        session.base_urls[SITE] = base = sb.base_url(SITE)
        overhead = piece_overhead(base)
        print(
            f"each piece takes {overhead * 1000:.2f} ms beyond its delay: the delays are shortened by that\n"
        )
        measure(session, markdown_reply(3000, seed=1), 1.0, overhead)  # warm-up: imports, connection
        for seconds in durations:
            results.append(measure(session, text, seconds, overhead))
    finally:
        session.close()
        sb.stop()

    chars = len(text)
    print("A ChatPanel, MEASURED (widget messages while streaming; the end apart):")
    print(
        f"  {'reply lasts':>11} {'bytes':>10} {'× reply':>8} {'msgs':>5} {'transcript':>10} {'max/s':>6}"
        f" {'gap median':>10} {'p90':>6} {'longest':>8} {'the end':>10}"
    )
    for r in results:
        g = r["gaps"]
        p90 = g[int(len(g) * 0.9)] if g else 0.0
        print(
            f"  {r['wall']:>9.1f} s {fmt_bytes(r['bytes']):>10} {r['bytes'] / chars:>7.2f}x {r['messages']:>5}"
            f" {r['transcript']:>10} {r['per_second']:>6} {statistics.median(g) if g else 0:>9.2f}s"
            f" {p90:>5.2f}s {g[-1] if g else 0:>7.2f}s {fmt_bytes(r['final']):>10}"
        )
    print(f"\n{load_average(after=True)}")
    print(
        json.dumps({f"{d:g}s": round(r["bytes"] / chars, 3) for d, r in zip(durations, results, strict=True)})
    )


if __name__ == "__main__":
    main()
