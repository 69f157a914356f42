"""The gate before a turn is sent, in a real IPython shell: fits, refused, or asked."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from IPython.core.error import UsageError

from chatmagic._gate import gate
from chatmagic.anatomy import build, part
from chatmagic.errors import NotSent, TurnStopped
from chatmagic.pause import Audience, Pauses
from chatmagic.providers.window import Window


def box(window: int | None = None, max_input_tokens: int = 0) -> Any:
    parts = [part("prompt", "your message", "hello " * 50, "gpt-4o")]
    messages = [{"role": "user", "content": "hello " * 50}]
    return build(
        "openai",
        "gpt-4o",
        parts,
        messages=messages,
        window=Window(window, "config"),
        max_input_tokens=max_input_tokens,
    )


def test_a_request_that_fits_passes(ip: Any) -> None:
    gate(ip, box(window=1000), Pauses(), Audience(), ask=lambda q: pytest.fail("asked"))


def test_a_request_over_the_window_is_refused_with_what_to_do(ip: Any, capsys: Any) -> None:
    with pytest.raises(NotSent, match="context window is 20 tokens.*%chat compact"):
        gate(ip, box(window=20), Pauses(), Audience())
    assert "cannot fit" in capsys.readouterr().out  # the glass box was shown


@pytest.mark.parametrize(("typed", "sent"), [("s", True), ("send", True), ("", False), ("c", False)])
def test_over_budget_the_terminal_asks_on_the_prompt_line(ip: Any, typed: str, sent: bool) -> None:
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return typed

    pauses = Pauses()
    if sent:
        gate(ip, box(max_input_tokens=10), pauses, Audience(), ask=ask)
    else:
        with pytest.raises(NotSent, match="^Cancelled: nothing was sent. This turn is over budget"):
            gate(ip, box(max_input_tokens=10), pauses, Audience(), ask=ask)
    assert asked == ["Send anyway? [s]end / [c]ancel (b1): "]
    assert pauses.waiting() == []


def test_an_answer_from_another_thread_wins(ip: Any) -> None:
    pauses = Pauses()

    def ask(question: str) -> str:
        # %chat send from elsewhere while the prompt line waits: the first answer stands
        threading.Thread(target=pauses.answer, args=("b1", "send")).start()
        threading.Event().wait(0.2)
        return "c"

    gate(ip, box(max_input_tokens=10), pauses, Audience(), ask=ask)


def test_ctrl_c_while_asked_cancels(ip: Any) -> None:
    def ask(question: str) -> str:
        raise KeyboardInterrupt

    pauses = Pauses()
    with pytest.raises(TurnStopped, match="nothing was sent"):
        gate(ip, box(max_input_tokens=10), pauses, Audience(), ask=ask)
    assert pauses.waiting() == []


def test_chat_send_and_cancel_answer_a_waiting_turn(ip: Any, capsys: Any) -> None:
    from chatmagic._state import get_session

    pauses = get_session().pauses
    with pytest.raises(UsageError, match="Nothing is waiting for an answer"):
        ip.run_line_magic("chat", "send")
    first = pauses.ask("budget", "gpt-4o")
    ip.run_line_magic("chat", "send")
    assert (first.answer, first.by) == ("send", "user")
    second = pauses.ask("budget", "gpt-4o")
    ip.run_line_magic("chat", f"cancel {second.id}")
    assert second.answer == "cancel"
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"{first.id}: sent anyway.",
        f"{second.id}: cancelled.",
    ]
    with pytest.raises(UsageError, match="No question 'b99' is waiting"):
        ip.run_line_magic("chat", "cancel b99")
