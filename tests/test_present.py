"""One presentation: a turn looks the same in a cell, the panel, %chat history and an export."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from chatmagic import present
from chatmagic._cellstream import SHEET
from chatmagic._state import get_session
from chatmagic.panel import ChatPanel
from chatmagic.sandbox import Sandbox
from chatmagic.session import Exchange, Message

from .test_magics import run

pytestmark = pytest.mark.usefixtures("fresh")


def status_of(io: Any) -> str:
    """The status line under the reply's plain text."""
    return io.outputs[-1].data["text/plain"].rsplit("— ", 1)[-1]


def test_final_status_lines(ip: Any) -> None:
    _, io = run(ip, "%%chat\nhello")
    assert re.fullmatch(r"chatgptt · gpt-4o · first text \d+ ms · total \d+ ms", status_of(io))
    _, io = run(ip, "%%chat -p opchatgpts\n[[fault:drop]]one two three four five six")
    assert (
        status_of(io)
        == "opchatgpts · gpt-3.5-turbo · failed · the text above was not added to the conversation"
    )
    _, io = run(ip, "%%chat -p chatgptt\n[[fault:http500]]hi")
    assert status_of(io) == "chatgptt · gpt-4o · failed · nothing was added"
    assert 'class="chatmagic-status chatmagic-error"' in io.outputs[-1].data["text/html"]


def test_the_head_says_who_answered_after_whom(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.run_line_magic("config", "ChatMagics.retries = 1")
    sandbox_thread.inject("chatgptes", "cloudflare")  # a bot check: not retried, the next one answers
    sandbox_thread.inject("opchatgpts", "http500")  # a server error: retried once
    _, io = run(ip, "%%chat -p chatgptes,opchatgpts\nhi")
    assert status_of(io).startswith(
        "opchatgpts · gpt-3.5-turbo (after chatgptes failed, 1 retry) · first text"
    )


def test_cell_panel_history_and_export_share_one_look(ip: Any, tmp_path: Path) -> None:
    SHEET.reset()  # the kernel session's first reply carries the stylesheet
    _, cell = run(ip, "%%chat -c look\n[[reply]]Some **bold** text.")
    conv = get_session().conversation("look")
    (ex,) = conv.exchanges
    # the cell carries the reply stylesheet; the panel and %chat history the full one
    assert [o.data["text/html"] for o in cell.outputs].count(present.STYLE) == 1
    panel = ChatPanel("look", session=get_session())
    try:
        assert panel._css.startswith(present.CSS)
        panel.wait(5)
        bubble = panel.messages[-1]
    finally:
        panel.close()
    with capture_output() as io:
        ip.run_line_magic("chat", "history look")
    history = io.outputs[0].data["text/html"]
    assert bubble in history  # the same reply, drawn by the same function
    assert present.exchange_head(ex) in bubble and "<strong>bold</strong>" in bubble
    assert f"({present.exchange_head(ex)})" in io.outputs[0].data["text/plain"]
    run(ip, f"%chat export look {tmp_path / 'look.md'}")
    assert f"## {present.exchange_title(ex)}\n" in (tmp_path / "look.md").read_text()


def test_history_shows_the_newest_exchanges_of_a_long_conversation(ip: Any) -> None:
    # what %chat restore does with a long saved conversation: one history taken whole
    get_session().conversation("long").adopt(
        [
            Exchange(
                Message("user", f"question {i}"),
                Message("assistant", f"answer **{i}**"),
                "chatgptt",
                "gpt-4o",
            )
            for i in range(10_000)
        ]
    )

    def history(line: str) -> tuple[str, str]:
        with capture_output() as io:
            ip.run_line_magic("chat", line)
        (shown,) = io.outputs
        return shown.data["text/plain"], shown.data["text/html"]

    plain, page = history("history long")
    note = (
        "9,980 earlier exchanges not shown: %chat history long --last N shows the newest N, "
        "%chat history long --all shows every one."
    )
    assert plain.startswith(note + "\n\nuser: question 9980\n\n")
    assert plain.endswith("assistant (chatgptt · gpt-4o): answer **9999**")
    assert "question 9979\n" not in plain
    assert (
        page.count('<div class="chatmagic-user-text">') == present.HISTORY_LAST
        and "<strong>9999</strong>" in page
    )
    assert html.escape(note) in page

    plain, page = history("history long --last 3")
    assert (
        plain.startswith("9,997 earlier exchanges not shown")
        and page.count('<div class="chatmagic-user-text">') == 3
    )

    plain, page = history("history long --all")
    assert plain.startswith("user: question 0\n\n") and "not shown" not in plain
    assert page.count('<div class="chatmagic-user-text">') == 10_000

    with pytest.raises(UsageError, match="--last: not allowed with argument --all"):
        ip.run_line_magic("chat", "history long --all --last 3")


def test_one_stylesheet() -> None:
    # the status grey had drifted (#777 in cells, #666 in the panel): one colour now
    assert "#777" not in present.CSS
    assert present.CSS.startswith(present.REPLY_CSS)
    assert present.FULL_STYLE == f"<style>{present.CSS}</style>"


def test_seconds() -> None:
    assert [present.seconds(v) for v in (None, 0.0421, 2.345)] == ["–", "42 ms", "2.3 s"]


def test_providers_say_which_stream_and_what_the_columns_mean(ip: Any) -> None:
    with capture_output() as io:
        ip.run_line_magic("chat", "providers")
    plain = io.outputs[0].data["text/plain"]
    head, *rows = plain.split("\n\n")[0].splitlines()
    assert head.split() == ["provider", "default", "model", "models", "streams", "system", "history"]
    assert any(row.startswith("chatgptt (default) ") for row in rows)
    for column in ("streams —", "system —", "history —", "(default) answers"):
        assert column in plain


def test_the_thinking_summary_is_the_blocks_summary() -> None:
    for streaming in (False, True):
        block = present.thinking_html("a" * 12_345, streaming=streaming)
        summary = present.thinking_summary("a" * 12_345, streaming=streaming)
        assert f"<summary>{html.escape(summary)}</summary>" in block
    assert present.thinking_summary("abc") == "Thinking (3 characters)"
