"""A reply you can watch: the longest wait between visible updates, and the bytes it costs.

Two replies, as the issue measured them: one paragraph of about 4,000 words, and a short
paragraph followed by a 150-line Python code block. Each is streamed word by word (the
stand-in's pieces, ``bench/_reply_text.pieces``) evenly over 10 s, 60 s and 300 s, and shown
three ways, side by side:

- ``cell``: a ``%%chat`` cell whose reply view (chatmagic._replyview) said hello 0.3 s after
  its display went out, as JupyterLab's does: patches from then on (the view is one widget per
  kernel: its opening, the ES module, is printed apart: only the first reply sends it);
- ``cell, plain``: a cell without widgets (nbclient, ``jupyter execute``): display updates
  (chatmagic._cellstream.ReplyStream);
- ``panel``: the chat panel's bubble (chatmagic._stream.LiveReply, as ChatPanel._update).

SIMULATED CLOCK. This part does not wait 300 s: it drives the real streaming code (ReplyView.step,
ReplyStream.step, LiveReply/Pace) with a simulated clock, looking when the code would look (the
cell's loop sleeps until the next message may go, ``wait_time``; the panel draws on each
arrival and at the time its flush is due). The final update (the complete reply with its
record) is not counted, as in bench/display_cost.py; the stylesheet's output and the reply
view's opening (the kernel session's first reply only) are printed apart.

What a byte is. Counted: the ``content`` of every IOPub message the frontend receives while
the reply streams, serialized as jupyter_client packs it (``json.dumps``, ``ensure_ascii=False``,
UTF-8), the first display included: for the widget's messages the whole comm message
(``{"comm_id": …, "data": {"method": "custom", "content": patch}}``, captured from the widget's
comm), for displays ``{"data": bundle, "metadata": {}, "transient": {"display_id": …}}``
(``_cellstream.message_size``); the panel's as ``_stream.message_cost`` with its uuid comm id.
Not counted: each message's header, parent header, metadata and HMAC signature (about 600 bytes
whatever it carries) and the websocket framing; the ``status`` messages around the cell.

``--real`` adds a measurement in a real kernel for the cell (10 s cases by default,
``--real-durations``): ``%%chat`` against a stand-in in another process, the hello sent to
the reply view on a kernel subshell (as JupyterLab >= 4.4 with ipykernel 7 delivers widget
messages while a cell runs), every IOPub message timed by its header date and counted as
``json.dumps(content)``.

Figures: ``wait``: the longest time, between the first text arriving and the last, during
which the reply on screen did not change (the end of the stream closes the last wait);
``bytes``: what was sent while streaming against the reply's characters (goal: at most 3x,
wait at most 1 s). Both at once cannot hold for a reply slower than about 65 characters a
second (80 in the panel, whose messages also name their item): a message a second costs its
comm envelope (66 bytes with the short comm id) and the patch's numbers (about 45), while 3x
of 18 characters a second is 54 bytes. There the budget keeps the wait
(chatmagic._budget.HEARTBEAT) and the ratio is printed as it is. A display update (``cell,
plain``) pays far more (its envelope with the display id, the wrapper, the block's tags, the
status line: about 240-255 bytes), and coloured code 1.7 bytes a character: below the table,
``plain_floor`` prints the shortest wait within 3x and the bytes a 1 s wait needs at best;
where that wait is over 1 s the heartbeat keeps 1 s, at most ``heartbeat_bytes`` a heartbeat
beyond the budget (bench/README.md says why).

    .venv/bin/python bench/stream_watch.py [--durations 10,60,300] [--real] [--real-durations 10]
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
from collections.abc import Callable
from typing import Any

from _reply_text import _code, _sentence, pieces
from jupyter_client.session import json_packer

from chatmagic._cellshow import VIEW_GRACE
from chatmagic._cellstream import ReplyStream, message_size
from chatmagic._replyview import ReplyView
from chatmagic._stream import LiveReply, message_cost
from chatmagic.present import FALLBACK_STYLE

HELLO_AFTER = 0.3  # seconds from the first display to the view's hello
STATUS = "chatgpt4online · streaming…"


def paragraph_reply(words: int = 4000, seed: int = 3) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(_sentence(rng))
    return " ".join(out)


def code_reply(lines: int = 150, seed: int = 5) -> str:
    rng = random.Random(seed)
    body: list[str] = []
    while len(body) < lines:
        body += [line for line in _code(rng).splitlines() if not line.startswith("```")] + [""]
    return (
        "Here is the module you asked for, in one piece:\n\n```python\n"
        + "\n".join(body[:lines])
        + "\n```\n\nRun it with `python module.py`."
    )


class Arrivals:
    """The text at any moment of a stream of ``text`` spread evenly over ``seconds``."""

    def __init__(self, text: str, seconds: float) -> None:
        ps = pieces(text)
        self.times = [(i + 1) * seconds / len(ps) for i in range(len(ps))]
        self.ends: list[int] = []
        at = 0
        for p in ps:
            at += len(p)
            self.ends.append(at)
        self.text = text
        self.first, self.last = self.times[0], self.times[-1]

    def at(self, t: float) -> str:
        i = bisect.bisect_right(self.times, t)
        return self.text[: self.ends[i - 1]] if i else ""


def longest_wait(shown: list[float], arr: Arrivals) -> float:
    """The longest stretch, while text arrives, with no change on screen."""
    marks = sorted(t for t in shown if arr.first <= t <= arr.last)
    points = [arr.first, *marks, arr.last]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def _capture(widget: Any, sink: Callable[[dict[str, Any]], None]) -> None:
    comm_id = widget.comm.comm_id

    def publish(msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        if msg_type == "comm_msg":
            sink({"comm_id": comm_id, "data": data})

    widget.comm.publish_msg = publish


def _opening(widget: Any) -> int:
    """Bytes of the widget's comm_open and of its layout's (their state: the ES module mostly)."""
    size = len(json.dumps({"comm_id": widget.comm.comm_id, "data": {"state": widget.get_state()}}).encode())
    layout = widget.layout
    return size + len(
        json.dumps({"comm_id": layout.comm.comm_id, "data": {"state": layout.get_state()}}).encode()
    )


def cell(arr: Arrivals, widgets: bool, fmt: str = "markdown") -> tuple[float, float]:
    """The cell's loop (chatmagic._cellshow.stream_outputs), on a simulated clock.

    A reply after the kernel session's first: the stylesheet went with that one
    (chatmagic._cellstream.SHEET), this one's outputs carry the small fallback.
    """
    stream = ReplyStream(fmt, styled=True, fallback=FALLBACK_STYLE)
    # the kernel's one reply view: its opening (the ES module) went with the kernel's first reply
    view = ReplyView.for_reply(fmt) if widgets else None
    sizes: list[int] = []
    shown: list[float] = []
    if view is not None:
        _capture(view, lambda m: sizes.append(len(json_packer(m))))
    now = 0.0
    first = stream.start("chatgpt4online · waiting…", now)
    sizes.append(message_size(view.bundle(first) if view else first))  # type: ignore[arg-type]
    hello_at = HELLO_AFTER if view is not None else float("inf")
    attached, plain = view is not None, None
    while now < arr.last:
        patching = view is not None and now >= hello_at
        showing = stream.showing_text or (view is not None and view.showing_text)
        if not showing:  # the loop wakes on every change until the first text
            nxt = arr.times[bisect.bisect_right(arr.times, now)] if arr.at(now) == "" else now + 0.01
            now = min(nxt, now + (0.1 if patching else 0.25))
        else:
            now += view.wait_time(now) if view is not None and patching else stream.wait_time(now)
        if view is not None and now >= hello_at and not view.ready:
            view._handle_msg(
                {"content": {"data": {"method": "custom", "content": {"type": "hello"}}}, "buffers": []}
            )
        text = arr.at(now)
        if view is not None and view.ready:
            if not attached and plain is not None:  # the view goes back into the tail display
                sizes.append(message_size(view.bundle(plain)))  # type: ignore[arg-type]
                attached = True
            before = len(sizes)
            view.step(stream.for_view(text), STATUS, now, stream.frozen)
            if len(sizes) > before:
                shown.append(now)
            continue
        ops = stream.step(text, STATUS, now)
        for op in ops:
            keep = view is not None and op.kind != "freeze" and now < VIEW_GRACE
            sizes.append(message_size(view.bundle(op.bundle)) if view is not None and keep else op.size)
            attached, plain = keep, op.bundle
            stream.sent(op, now)
        if ops:
            shown.append(now)
    return longest_wait(shown, arr), sum(sizes) / len(arr.text)


def plain_floor(text: str, seconds: float) -> tuple[float, float, int, int]:
    """What display updates of this size allow a reply of ``text`` over ``seconds``, at best.

    ``(wait at 3x, bytes for a 1 s wait, an update's fixed bytes, a piece's)``. A model, not a
    run: the reply's main block (the code block, or the paragraph) arrives evenly, the tail is
    updated every ``wait`` seconds and frozen (a piece and a new tail: two messages) every
    ``k`` updates, cut anywhere. An update costs its fixed part ``u`` (the message's envelope
    with its display id, the wrapper, the block's tags, the status line) and the open tail
    without colours; a piece ``z`` and its text with colours. Per second:
    ``u/wait + z/(k wait) + hu r (k-1)/2 + hf r`` bytes at r characters a second.
    """
    code = "```python\n" in text
    prefix, closing = ("```python\n", "```\n") if code else ("", "")
    body = text.split("```python\n")[1].split("```")[0] if code else text
    stream = ReplyStream(styled=True)
    stream.outputs = 2

    def size(t: str, status: str | None, colour: bool, more: bool = False) -> int:
        return message_size(stream._bundle(t, status, cont=True, more=more, colour=colour))

    u = size(prefix + "x", STATUS, False) - 1
    z = size(prefix + "x" + closing, None, True, more=True) - 1
    hu = (size(prefix + body, None, False) - size(prefix, None, False)) / len(body)
    hf = (size(prefix + body + closing, None, True) - size(prefix + closing, None, True)) / len(body)
    r = len(text) / seconds
    ks = [k / 4 for k in range(4, 400)]
    floor = min((u + z / k) / (r * (3 - hf - hu * (k - 1) / 2)) for k in ks if 3 - hf - hu * (k - 1) / 2 > 0)
    one = min((u + z / k) / r + hu * (k - 1) / 2 + hf for k in ks)
    return floor, one, u, z


def panel(arr: Arrivals) -> tuple[float, float]:
    """The panel's bubble (ChatPanel._update: drawn on each arrival, and when a flush is due)."""
    reply = LiveReply()
    sizes: list[int] = []
    shown: list[float] = []
    who = ""
    looks = sorted(set(arr.times))
    i = 0
    flush = float("inf")
    while i < len(looks) or flush < float("inf"):
        now = min(looks[i] if i < len(looks) else float("inf"), flush)
        if i < len(looks) and looks[i] == now:
            i += 1
        if now == flush:
            flush = float("inf")
        text = arr.at(now)
        if not text:
            continue
        first = not reply.pace.sent_at and reply.pace.spent == 0
        due = reply.pace.due(now, first)
        if now < due:
            flush = min(flush, due)
            continue
        msg: dict[str, Any] = {"type": "live", "id": "t1a"}
        if who != STATUS:
            msg["who"] = who = STATUS
        msg.update(reply.patch(text))
        msg.setdefault("n", reply.seq + 1)
        cost = message_cost(msg)
        if not reply.pace.affords(cost, len(text), now) and not first:
            flush = min(flush, reply.pace.due(now))  # the heartbeat, or more text, pays for it
            continue
        reply.pace.paid(cost, now)
        reply.sent(msg)
        reply.seq = msg["n"]
        sizes.append(cost)
        shown.append(now)
    return longest_wait(shown, arr), sum(sizes) / len(arr.text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--durations", default="10,60,300", help="Seconds each reply takes (default 10,60,300)."
    )
    parser.add_argument("--real", action="store_true", help="Also measure the cell in a real kernel.")
    parser.add_argument("--real-durations", default="10", help="Durations for --real (default 10).")
    args = parser.parse_args()
    replies = {"paragraph": paragraph_reply(), "code block": code_reply()}
    for name, text in replies.items():
        print(f"{name}: {len(text):,} characters, {len(pieces(text)):,} pieces")
    print(
        "\nSIMULATED clock, real streaming code (see the docstring). wait: longest seconds without a change"
    )
    print("while text arrives (goal <= 1); bytes: sent while streaming / reply characters (goal <= 3)\n")
    head = f"{'reply':<12}{'s':>5}  {'cell wait':>10}{'bytes':>7}  {'plain wait':>11}{'bytes':>7}  {'panel wait':>11}{'bytes':>7}"
    print(head)
    print("-" * len(head))
    opening = _opening(ReplyView.for_reply())
    sheet = message_size(ReplyStream().style())
    for name, text in replies.items():
        for seconds in (float(s) for s in args.durations.split(",")):
            arr = Arrivals(text, seconds)
            cw, cb = cell(arr, widgets=True)
            pw, pb = cell(arr, widgets=False)
            nw, nb = panel(arr)
            print(
                f"{name:<12}{seconds:>5.0f}  {cw:>10.2f}{cb:>7.2f}  {pw:>11.2f}{pb:>7.2f}  {nw:>11.2f}{nb:>7.2f}"
            )
    print(
        "\ncell, plain: what display updates allow at best (bench.stream_watch.plain_floor: a model,"
        " pieces cut anywhere)"
    )
    print(f"{'reply':<12}{'s':>5}  {'wait at 3x':>11}{'bytes at 1 s':>14}{'chars/s':>9}")
    for name, text in replies.items():
        for seconds in (float(s) for s in args.durations.split(",")):
            floor, one, u, z = plain_floor(text, seconds)
            print(f"{name:<12}{seconds:>5.0f}  {floor:>11.2f}{one:>14.2f}{len(text) / seconds:>9.0f}")
    print(
        f"(an update's fixed part: {u} bytes for the code block's tail; a piece's: {z}.) Where the wait"
        " at 3x is over 1 s, the\nheartbeat (0.9 s) sends what the bytes do not cover: at most"
        f" {ReplyStream().heartbeat_bytes:,} bytes a heartbeat beyond the budget"
    )
    print(
        f"\ncell: the kernel's first reply also sends the reply view's opening (its ES module): {opening:,} bytes"
        f" (+{opening / len(replies['paragraph']):.2f}x on the paragraph, +{opening / len(replies['code block']):.2f}x"
        " on the code block); later replies reuse it"
    )
    print(
        f"cell: the kernel session's first reply also sends the stylesheet in an output of its own: {sheet:,} bytes"
        f" (+{sheet / len(replies['paragraph']):.2f}x on the paragraph, +{sheet / len(replies['code block']):.2f}x"
        " on the code block); later replies carry the fallback"
    )
    if args.real:
        from stream_watch_real import run_real

        run_real(replies, [float(s) for s in args.real_durations.split(",")])


if __name__ == "__main__":
    main()
