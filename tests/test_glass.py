"""The glass box drawn: every part with its size and how it was counted, escaped."""

from __future__ import annotations

from typing import Any

from chatmagic.anatomy import build, left_out, part
from chatmagic.budget import Price
from chatmagic.glass import answer_buttons, glass_bundle
from chatmagic.providers.window import Window


def box(window: int | None = 1000, **kw: object) -> object:
    parts = [
        part("system", "system prompt", "Be brief.", "gpt-4o"),
        left_out("exchange", "exchange 1: <script>alert(1)</script>", 4_000, "history budget"),
        part("prompt", "your message", "What is <b>this</b>?", "gpt-4o"),
    ]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is <b>this</b>?"},
    ]
    return build("openai", "gpt-4o", parts, messages=messages, window=Window(window, "config"), **kw)  # type: ignore[arg-type]


def test_the_drawing_lists_every_part_and_escapes_the_users_words() -> None:
    bundle = glass_bundle(box(price=Price(2.5, 10)), notes=["dry run: nothing was sent."])  # type: ignore[arg-type]
    html, plain = bundle["text/html"], bundle["text/plain"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "left out: exchange 1" in html and "history budget" in html
    for fact in (
        "system prompt",
        "your message",
        "template and message overhead",
        "total",
        "offline BPE o200k_base",
    ):
        assert fact in html and fact in plain
    assert "context window: 1,000 tokens (config)" in html
    assert "estimated cost: $" in html and "dry run: nothing was sent." in plain


def test_a_request_over_the_window_says_so_in_red() -> None:
    drawn = glass_bundle(box(window=5))["text/html"]  # type: ignore[arg-type]
    assert "chatmagic-error" in drawn and "cannot fit" in drawn and "%chat compact" in drawn


def test_the_status_line_keeps_context_and_conversation_apart() -> None:
    anatomy: Any = box()
    assert anatomy.context(420) == "context 420 of 1,000 tokens (42.0%)"
    assert (
        anatomy.context()
        == f"context {anatomy.total.tokens} of 1,000 tokens ({anatomy.total.tokens / 1000:.1%})"
    )


def test_answer_buttons_carry_the_question_and_the_answer() -> None:
    drawn = answer_buttons("b1", ("send", "cancel"))
    assert (
        'data-ask="b1"' in drawn
        and '<button data-answer="send">Send anyway<' in drawn
        and ">Cancel<" in drawn
    )
