"""A reply streaming into a cell without widgets (ReplyStream): watched every second, cut without seams.

Each reply is trickled word by word on a simulated clock and asked as chatmagic._cellshow asks:
at the first text, then at each ``wait_time``. The outputs are kept as a frontend keeps them
(a freeze updates the tail display, an open adds one below, the final updates the last).
"""

from __future__ import annotations

import re

from chatmagic._cellstream import Op, ReplyStream
from chatmagic.present import Status
from chatmagic.render import body_html

STREAMING = "p · m · streaming…"
_WORDS = "the reply model token notebook kernel cell output memory thread loop".split()
PARAGRAPH = " ".join(
    " ".join(_WORDS[(i + j) % 11] for j in range(9 + i % 7)).capitalize() + "." for i in range(300)
)
CODE_LINES = [f"    total += item_{i} * {i}  # line {i}" for i in range(150)]
CODE = (
    'Here it is:\n\n```python\ndef add(items):\n    """Add them up.\n\n    A docstring of three lines."""\n'
    "    total = 0\n" + "\n".join(CODE_LINES) + "\n    return total\n```\n\nDone."
)


def stream(text: str, seconds: float) -> tuple[ReplyStream, list[tuple[float, Op]], list[str], list[float]]:
    """``(stream, messages, outputs' last HTML, arrival times)`` of ``text`` over ``seconds``."""
    ends = [m.end() for m in re.finditer(r"\S+\s*|\s+", text)]
    times = [(i + 1) * seconds / len(ends) for i in range(len(ends))]
    s = ReplyStream(styled=True)
    s.start("p · m · waiting…", 0.0)
    sent: list[tuple[float, Op]] = []
    outputs = [""]
    now, k = 0.0, 0
    while now <= seconds + 1:
        while k < len(times) and times[k] <= now:
            k += 1
        for op in s.step(text[: ends[k - 1]] if k else "", STREAMING, now):
            if op.kind == "open":
                outputs.append(op.bundle["text/html"])
            else:
                outputs[-1] = op.bundle["text/html"]
            s.sent(op, now)
            sent.append((now, op))
        now += s.wait_time(now) if s.showing_text else 0.05
    outputs[-1] = s.final(text, Status("p · m · 1.0 s"))["text/html"]
    return s, sent, outputs, times


def longest_wait(sent: list[tuple[float, Op]], times: list[float]) -> float:
    marks = [times[0], *sorted({t for t, _ in sent if times[0] <= t <= times[-1]}), times[-1]]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


def test_a_slow_code_block_changes_every_second() -> None:
    # 18 characters a second: before, the fence was re-sent whole and the budget made room by
    # not updating (a minute without a change); now a short tail, and the heartbeat
    s, sent, _, times = stream(CODE, 300.0)
    assert longest_wait(sent, times) <= 1.0
    # what the bytes did not cover: one message (or a freeze's two) a heartbeat, each small
    assert s.spent - s.beat_spent <= s.allowance + s.per_char * len(CODE)
    assert all(op.size <= s.heartbeat_bytes for _, op in sent if op.beat)
    assert max(op.size for _, op in sent if op.kind == "update") < 700  # the tail is cut short


def test_a_long_paragraph_at_400_characters_a_second_changes_every_second_within_3x() -> None:
    s, sent, _, times = stream(PARAGRAPH, len(PARAGRAPH) / 400)
    assert longest_wait(sent, times) <= 1.0
    assert s.spent <= 3 * len(PARAGRAPH)


def test_a_fast_reply_pays_its_way() -> None:
    s, sent, _, times = stream(CODE, 10.0)
    assert longest_wait(sent, times) <= 1.0
    assert s.spent <= 3 * len(CODE)


def _code_inside(html: str) -> str:
    return "".join(re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", html, re.S))


def test_code_cut_into_pieces_is_the_whole_block_coloured_the_same() -> None:
    _, sent, outputs, _ = stream(CODE, 60.0)
    assert sum(op.kind == "freeze" for _, op in sent) > 5
    whole = body_html(CODE, "markdown")
    # the pieces' code, joined, is the whole block's, colours and all
    assert "".join(_code_inside(html) for html in outputs) == _code_inside(whole)
    # each piece cut open says so, and the next goes on from it (no seam: chatmagic.style)
    for above, below in zip(outputs, outputs[1:], strict=False):
        assert ("chatmagic-more" in above.split(">", 1)[0]) == ("chatmagic-cont" in below.split(">", 1)[0])
    # and the docstring of three lines was never cut: its piece is coloured as a string
    assert sum('class="s">"""Add them up.' in html for html in outputs) == 1


def test_the_open_tail_goes_without_colours_its_pieces_with() -> None:
    _, sent, _, _ = stream(CODE, 60.0)
    updates = [op.bundle["text/html"] for _, op in sent if op.kind in ("update", "open")]
    pieces = [op.bundle["text/html"] for _, op in sent if op.kind == "freeze"]
    assert not any("<i>#" in html for html in updates)
    assert any("<i># line" in html for html in pieces)


def test_a_cut_paragraph_reads_on_at_the_next_line() -> None:
    _, sent, outputs, _ = stream(PARAGRAPH, 60.0)
    words = re.sub(r"<[^>]+>", " ", " ".join(outputs)).split()
    assert words[: len(PARAGRAPH.split())] == PARAGRAPH.split()  # every word once, in order
    cut = [html for html in outputs if "chatmagic-more" in html.split(">", 1)[0]]
    assert len(cut) > 5 and all(re.search(r"\.</p>\s*</div>$", html) for html in cut)  # after a sentence


def test_ctrl_c_between_a_freeze_and_its_open_loses_nothing() -> None:
    text = CODE
    s = ReplyStream(styled=True)
    s.start("p · m · waiting…", 0.0)
    outputs = [""]
    now, size = 0.0, 0
    while True:
        now += 1.0
        size = min(len(text), size + 60)
        ops = s.step(text[:size], STREAMING, now)
        if [op.kind for op in ops] == ["freeze", "open"] and s.reopen:
            break  # a code fence cut a second time: the piece above is a cut too
        for op in ops:
            outputs[-1:] = (
                [op.bundle["text/html"]] if op.kind != "open" else outputs[-1:] + [op.bundle["text/html"]]
            )
            s.sent(op, now)
    freeze = ops[0]
    outputs[-1] = freeze.bundle["text/html"]
    s.sent(freeze, now)  # Ctrl-C: the open never went; the final updates the same display
    outputs[-1] = s.final(text[:size], Status("p · m · stopped", "stopped"))["text/html"]
    assert "".join(_code_inside(html) for html in outputs) == _code_inside(body_html(text[:size], "markdown"))


def test_the_reply_view_taking_over_a_cut_fence_draws_it_as_code() -> None:
    from chatmagic._stream import LiveReply

    s, sent, _, _ = stream(CODE[:2000], 60.0)  # the fence is still open, cut a few times
    assert s.reopen and any(op.kind == "freeze" for _, op in sent)
    # a view that says hello now starts at the cell's frozen offset (chatmagic._cellshow)
    _, _, tail = LiveReply("markdown", start=s.frozen).render(s.for_view(CODE[:2000]))
    assert tail.startswith('<pre><code class="language-python">    total +=')
    _, _, bare = LiveReply("markdown", start=s.frozen).render(CODE[:2000])
    assert "    total +=" not in bare  # without the opening line: an indented block, indents lost
