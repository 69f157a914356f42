"""A reply you can watch: a cell's reply view changes every second, and a patch weighs its new text.

A reply is streamed into the kernel's reply view (chatmagic._replyview) on a simulated clock,
looking when the cell's loop would (``wait_time``), its comm messages captured as they go on
the wire. A slow code block (18 characters a second) used to stand still for seconds: its
budget could not pay for a message that re-sent the open block.
"""

from __future__ import annotations

import json
import random
from typing import Any

from jupyter_client.session import json_packer

from chatmagic._budget import HEARTBEAT, allowed
from chatmagic._replyview import ReplyView
from chatmagic._stream import LiveReply, Pace, crc, message_cost, units

STATUS = "opchatgpts · streaming…"


def code_reply(lines: int) -> str:
    rng = random.Random(7)
    body = [f"    total += item_{i} * {rng.randint(1, 999)}  # line {i}" for i in range(lines)]
    return "Here it is:\n\n```python\ndef add(items):\n    total = 0\n" + "\n".join(body) + "\n```\n\nDone."


def paragraph_reply(words: int) -> str:
    rng = random.Random(3)
    vocab = ["the", "reply", "streams", "into", "a", "cell", "and", "changes", "every", "second"]
    return " ".join(rng.choice(vocab) + ("." if i % 12 == 11 else "") for i in range(words))


def stream_into_view(text: str, seconds: float) -> tuple[list[float], list[dict[str, Any]], int]:
    """(when each message went, the messages, bytes on the wire) for ``text`` spread over ``seconds``.

    Word by word, evenly; the view says hello at once, as JupyterLab's does.
    """
    view = ReplyView.for_reply("markdown")
    wire: list[tuple[float, dict[str, Any], int]] = []
    clock = [0.0]

    def publish(msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        content = {"data": data, "comm_id": view.comm.comm_id}  # ipykernel's comm_msg content
        wire.append((clock[0], json.loads(json.dumps(data["content"])), len(json_packer(content))))

    view.comm.publish_msg = publish
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "hello"}}}, "buffers": []})
    words = text.split(" ")
    ends = [len(" ".join(words[: i + 1])) for i in range(len(words))]
    times = [(i + 1) * seconds / len(words) for i in range(len(words))]
    now = 0.0
    while now < seconds:
        now += view.wait_time(now) if view.showing_text else 0.05
        clock[0] = now
        arrived = sum(t <= now for t in times)
        view.step(text[: ends[arrived - 1]] if arrived else "", STATUS, now, 0)
    return [t for t, _, _ in wire], [m for _, m, _ in wire], sum(size for _, _, size in wire)


def longest_wait(sent: list[float], first: float, last: float) -> float:
    marks = [first, *(t for t in sent if first <= t <= last), last]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


def test_a_slow_code_block_changes_on_screen_every_second() -> None:
    text = code_reply(24)  # about 1,100 characters over 60 s: 18 a second
    seconds = len(text) / 18
    sent, messages, _ = stream_into_view(text, seconds)
    assert longest_wait(sent, seconds / len(text.split(" ")), seconds) <= 1.0
    # most of them append to the open code block: the new text, not the block again
    compact = [m for m in messages if "a" in m]
    assert len(compact) > len(messages) / 2
    assert all("</code></pre>" not in m["a"][4] for m in compact)


def test_a_fast_reply_costs_under_three_times_its_length_and_still_moves() -> None:
    for text in (paragraph_reply(1500), code_reply(120)):
        sent, _, size = stream_into_view(text, 10.0)
        assert longest_wait(sent, 10.0 / len(text.split(" ")), 10.0) <= 1.0
        assert size <= 3 * len(text), f"{size / len(text):.2f}x"


def test_a_word_added_to_a_long_code_block_weighs_the_word_and_a_small_fixed_part() -> None:
    view = ReplyView.for_reply("markdown")
    reply = LiveReply()
    text = code_reply(150)[:-12]  # the fence still open: one block of about 5 kB
    reply.sent(reply.patch(text))
    patch = reply.patch(text + " extra_word")
    assert set(patch) == {"n", "a"}
    length, check, at, cut, added = patch["a"]
    assert [length, check] == [units(reply.tail), crc(reply.tail)]  # what it applies to
    assert added == " extra_word" and cut == 0 and at == len("</code></pre>\n")
    assert message_cost(patch, view.model_id) <= 120 + len(added)
    # the whole comm message, as jupyter_client packs it for the frontend
    wire = {"data": {"method": "custom", "content": patch}, "comm_id": view.model_id}
    assert message_cost(patch, view.model_id) == len(json_packer(wire))


def test_the_budget_allows_a_message_a_second_while_text_arrives() -> None:
    pace = Pace()
    pace.paid(int(allowed(100)), now=10.0)  # every byte the text earned is spent
    assert not pace.affords(200, 100, now=10.3)
    # looked at again soon (more text may pay), and at the latest at the heartbeat
    assert 10.3 < pace.due(10.3) <= 10.0 + HEARTBEAT
    assert not pace.affords(200, 110, now=10.0 + HEARTBEAT - 0.01)
    assert pace.affords(200, 110, now=10.0 + HEARTBEAT)
    # without a clock (a caller that only counts bytes), bytes decide alone
    assert not pace.affords(200, 110)
