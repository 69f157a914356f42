"""Rendering and pacing: safe Markdown, finished blocks sent once, the open tail."""

from __future__ import annotations

import re
from pathlib import Path

from chatmagic._cellstream import ReplyStream
from chatmagic.present import Status
from chatmagic.render import markdown_html, stable_prefix


def test_markdown_keeps_code_and_tables() -> None:
    html = markdown_html("| a |\n|---|\n| 1 |\n\n```py\nx = '<b>'\n```")
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="language-py"' in html and "&lt;b&gt;" in html


def test_code_blocks_get_colours_but_nothing_else() -> None:
    html = markdown_html("```python\ndef f(): return '<b>'  # note\n```")
    # keywords bold, comments italic, the rest short classes: the stylesheet (chatmagic.present)
    # colours them after the theme
    assert '<b>def</b> <span class="f">f</span>' in html
    assert "<i># note</i>" in html and """<span class="s">'&lt;b&gt;'</span>""" in html
    assert "style=" not in html
    css = markdown_html("```css\n.x { background: url(http://e.invalid/p.png) }\n```")
    classes = set(re.findall(r'class="([^"]*)"', html + css))
    assert classes <= {"s", "f", "n", "d", "t", "a", "language-python", "language-css"}
    table = markdown_html("| a |\n|--:|\n| 1 |")
    for style in re.findall(r'style="([^"]*)"', table):
        props = {part.split(":")[0].strip() for part in style.split(";") if part.strip()}
        assert props <= {"color", "font-weight", "font-style", "text-align"}, style


def test_a_keyword_run_is_one_span() -> None:
    html = markdown_html("```python\nif x is not None: pass\n```")
    assert "<b>is not None</b>" in html


def test_code_format_unwraps_and_colours_a_lone_block() -> None:
    from chatmagic.render import code_html

    html = code_html("```python\nif x: pass\n```")
    assert html.startswith('<pre class="chatmagic-text"><code>') and "```" not in html
    assert "<b>if</b>" in html
    assert code_html("plain text <i>").endswith("plain text &lt;i&gt;</pre>")


# -- what a notebook cell sends while a reply streams ---------------------------------------

REPLY = "\n\n".join(
    [
        "## A heading",
        "A first paragraph, " + "long enough to be worth an output of its own, " * 5 + "ends here.",
        "- one item\n- two items\n\n  still the second item",
        "```python\ndef f(x):\n    return x * 2\n```",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "The last paragraph, still open.",
    ]
)


def test_finished_blocks_end_where_the_last_block_starts() -> None:
    text = "para one\n\n- a\n- b\n\n  more b\n\nlast"
    # only complete lines count: "last" is being written, the list is the open block
    assert text[: stable_prefix(text)] == "para one\n\n"
    assert stable_prefix(text + "\n") == text.index("last")
    assert stable_prefix("one paragraph\nstill the same") == 0
    assert stable_prefix("```py\nx = 1\n\n\ny = 2\n") == 0  # an unclosed fence is one open block
    assert stable_prefix("```py\nx = 1\n```\nafter\n") == len("```py\nx = 1\n```\n")
    assert stable_prefix("a\r\n\r\nb\r\n") == 5  # CRLF: the same lines markdown-it sees
    assert stable_prefix("line one\nline two", "text") == len("line one\n")
    assert stable_prefix("```py\nx\n```\n\nmore\n", "code") == 0


def test_a_block_is_never_finished_by_half_a_line() -> None:
    # "***" would end the paragraph (a rule); "***x" continues it: wait for the line's end
    assert stable_prefix("para\n***") == 0
    assert stable_prefix("para\n***x\n") == 0
    assert stable_prefix("para\n***\n") == len("para\n")


def feed(
    text: str, seconds: float, *, pieces: int = 400, start_at: float | None = None
) -> tuple[ReplyStream, list[tuple]]:
    """The stream asked as the magic asks it: at the first text, then at each wait_time."""
    stream = ReplyStream()
    stream.style(start_at)  # as the magic does: the stylesheet in an output of its own
    stream.start("p · m · waiting…", start_at)
    sent: list[tuple] = []
    step = max(1, len(text) // pieces)
    now = 0.0
    while True:
        size = min(len(text), int(now / seconds * len(text)) + step)
        for op in stream.step(text[:size], "p · m · streaming…", now):
            stream.sent(op, now)
            sent.append((now, op))
        if size == len(text) and now > seconds:
            return stream, sent
        now += stream.wait_time(now)


def test_each_finished_block_is_sent_once_in_order() -> None:
    stream, sent = feed(REPLY * 4, 20.0)
    frozen = [op for _, op in sent if op.kind == "freeze"]
    assert frozen, "a long reply has finished blocks"
    # the finished outputs plus the final tail show the reply once, in order
    shown = "".join(op.bundle["text/html"] for op in frozen)
    final = stream.final(REPLY * 4, Status("p · m · done"))
    assert shown.count("A first paragraph") + final["text/html"].count("A first paragraph") == 4
    assert all("text/plain" not in op.bundle for _, op in sent)  # the plain text comes once, at the end
    assert final["text/plain"].startswith(REPLY * 4)
    assert not any("<style>" in op.bundle["text/html"] for _, op in sent)  # it went once, before


def test_streaming_costs_a_fixed_multiple_of_the_reply_however_long_it_takes() -> None:
    text = REPLY * 20
    for seconds in (2.0, 60.0, 600.0):
        stream, sent = feed(text, seconds, pieces=2000)
        # the bytes pay for every message but the heartbeat's (one a second, at most
        # heartbeat_bytes each: a slow reply is shown every second, chatmagic._budget)
        assert stream.spent - stream.beat_spent <= stream.allowance + stream.per_char * len(text)
        assert stream.beat_spent <= stream.heartbeat_bytes * (seconds / stream.heartbeat + 1)
        assert stream.per_char <= 3
    assert feed(text, 2.0, pieces=2000)[0].beat_spent == 0  # a fast reply pays its way


def test_first_text_at_once_then_at_most_ten_messages_a_second() -> None:
    stream = ReplyStream()
    stream.start("waiting…", 0.0)
    first = stream.step("Hello", "streaming…", 0.01)
    assert [op.kind for op in first] == ["update"]  # at once, though the first display just went
    for op in first:
        stream.sent(op, 0.01)
    assert stream.step("Hello there", "streaming…", 0.15) == []
    times = [0.0] + [t for t, _ in feed(REPLY * 20, 2.0, pieces=2000, start_at=0.0)[1]]
    # in any one second, ten messages at most: the first display and a freeze's two count
    assert max(sum(1 for u in times if t <= u < t + 1 - 1e-9) for t in times) <= 10


def test_a_reply_in_several_outputs_restores_as_one_exchange(tmp_path: Path) -> None:
    """A saved notebook: finished blocks in outputs of their own, one record, one exchange back."""
    import nbformat
    from nbclient import NotebookClient

    text = "\n\n".join(" ".join(f"p{i}w{j}" for j in range(40)) for i in range(30))

    def execute(cells: list[str], path: Path) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
        nbformat.write(nb, path)
        return nb

    saved = tmp_path / "long.ipynb"
    nb = execute(
        ["%load_ext chatmagic", "%chat sandbox", f"%%chat -p chatgpt4online\n[[delay:0.002]][[reply]]{text}"],
        saved,
    )
    outputs = nb.cells[2].outputs
    assert len(outputs) > 1, "finished paragraphs went into outputs of their own"
    assert [i for i, o in enumerate(outputs) if "chatmagic" in o.get("metadata", {})] == [len(outputs) - 1]
    assert outputs[-1]["data"]["text/plain"].startswith(text)  # the whole reply once, as plain text
    shown = re.sub(r"<style>.*?</style>|<[^>]+>", " ", " ".join(o["data"]["text/html"] for o in outputs))
    assert [w for w in shown.split() if w.startswith("p")] == text.split()
    check = (
        "import chatmagic\nc = chatmagic.get_session().conversation()\n"
        f"print(len(c), c.exchanges[0].assistant.content == {text!r})"
    )
    nb = execute(["%load_ext chatmagic", f"%chat restore {saved}", check], tmp_path / "again.ipynb")
    assert nb.cells[2].outputs[0]["text"] == "1 True\n"


def _longest_gap(sent: list[tuple], seconds: float) -> float:
    times = sorted({round(now, 3) for now, _ in sent if now <= seconds})
    return max(b - a for a, b in zip([0.0, *times], [*times, seconds], strict=False))


def test_a_long_paragraph_keeps_updating_without_widgets() -> None:
    """Without widgets (nbclient, jupyter execute) a long open paragraph is cut at finished sentences.

    Re-sending it whole ran out of budget: 9 s without a change in a 13 s reply (issue 15).
    """
    text = " ".join(f"Sentence number {i} says a few more words about the subject." for i in range(400))
    stream, sent = feed(text, 10.0, pieces=4000)
    assert _longest_gap(sent, 10.0) <= 1.0
    assert stream.spent <= 3 * len(text)
    # the pieces and the final tail show the paragraph's text once, in order
    frozen = "".join(op.bundle["text/html"] for _, op in sent if op.kind == "freeze")
    final = stream.final(text, Status("p · m · done"))["text/html"]
    shown = re.sub(r"<[^>]+>", "", frozen + final)
    assert re.sub(r"\s+", " ", shown).count("Sentence number") == 400


def test_a_long_code_block_keeps_updating_without_widgets() -> None:
    lines = "\n".join(f"    total += item_{i} * {i}  # line {i}" for i in range(400))
    text = f"Here it is:\n\n```python\ndef f():\n{lines}\n```\n"
    stream, sent = feed(text, 10.0, pieces=3000)
    assert _longest_gap(sent, 10.0) <= 2.0
    assert stream.spent <= 4 * len(text)
    # each piece is a closed fence, and the rest starts again with the same opening line
    frozen = [op.bundle["text/html"] for _, op in sent if op.kind == "freeze"]
    assert sum('class="language-python"' in html for html in frozen) >= 2
    final = stream.final(text, Status("p · m · done"))["text/html"]
    assert 'class="language-python"' in final
    shown = re.sub(r"<[^>]+>", "", "".join(frozen) + final)
    assert all(f"# line {i}\n" in shown for i in range(400))
