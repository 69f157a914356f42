"""The update pacer: few updates for many chunks, the first at once, the last text never lost."""

from __future__ import annotations

import re

from chatmagic.render import UpdatePacer, markdown_html


def simulate(chunks: int, seconds: float, piece: int = 6) -> tuple[int, int]:
    pacer = UpdatePacer()
    size = sent = 0
    for i in range(chunks):
        size += piece
        now = seconds * i / chunks
        if pacer.due(size, now):
            pacer.sent(size, now)
            sent += size
    return pacer.updates, sent


def test_first_text_goes_out_at_once() -> None:
    pacer = UpdatePacer()
    assert pacer.due(1, now=0.0)


def test_fast_reply_costs_few_updates_and_linear_bytes() -> None:
    updates, sent = simulate(10_000, seconds=0.5)
    assert updates <= 12
    assert sent <= 10 * 60_000


def test_slow_reply_updates_about_once_a_second_at_most_ten() -> None:
    updates, _ = simulate(300, seconds=30.0)
    assert 15 <= updates <= 60
    pacer = UpdatePacer()
    pacer.sent(10, now=0.0)
    assert not pacer.due(1000, now=0.05)  # never more than ten a second
    assert pacer.due(1000, now=0.11)


def test_long_slow_reply_waits_longer_between_time_driven_updates() -> None:
    pacer = UpdatePacer()
    pacer.sent(80_000, now=0.0)
    assert not pacer.due(80_001, now=4.9)
    assert pacer.due(80_001, now=5.0)


def test_markdown_keeps_code_and_tables() -> None:
    html = markdown_html("| a |\n|---|\n| 1 |\n\n```py\nx = '<b>'\n```")
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="language-py"' in html and "&lt;b&gt;" in html


def test_code_blocks_get_colours_but_nothing_else() -> None:
    html = markdown_html("```python\ndef f(): return '<b>'\n```")
    assert '<span style="color:#008000;font-weight:bold">def</span>' in html
    assert "&lt;b&gt;" in html
    css = markdown_html("```css\n.x { background: url(http://e.invalid/p.png) }\n```")
    for style in re.findall(r'style="([^"]*)"', html + css):
        props = {part.split(":")[0].strip() for part in style.split(";") if part.strip()}
        assert props <= {"color", "font-weight", "font-style", "text-align"}, style


def test_code_format_unwraps_and_colours_a_lone_block() -> None:
    from chatmagic.render import code_html

    html = code_html("```python\nx = 1\n```")
    assert html.startswith('<pre class="chatmagic-text"><code>') and "```" not in html
    assert "<span" in html
    assert code_html("plain text <i>").endswith("plain text &lt;i&gt;</pre>")
