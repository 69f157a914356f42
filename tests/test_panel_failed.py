"""The panel after a failed turn: nothing it chose sticks, no empty conversation is offered."""

from __future__ import annotations

from collections.abc import Callable

from chatmagic.panel import ChatPanel
from chatmagic.session import ChatSession

from .test_panel import Browser, open_panel, servers, session  # noqa: F401 - fixtures

Open = Callable[..., tuple[ChatPanel, Browser]]


def test_a_mistyped_model_in_the_panel_does_not_stick(open_panel: Open, session: ChatSession) -> None:  # noqa: F811
    panel, browser = open_panel("chat-2", provider="ollama")
    browser.enter("hello [[words:2]]")
    assert panel.wait(15) and len(session.conversation("chat-2")) == 1
    browser.set(model="gpt-5-nonexistent")
    browser.enter("and again")
    assert panel.wait(15) and "gpt-5-nonexistent" in browser.status
    conv = session.conversation("chat-2")
    assert conv.model == "llama3.2" and conv.provider == "ollama"  # what the kept turn used
    # the next cell of that conversation names no model: the one of the kept turn
    turn = session.send("from a cell [[words:2]]", conversation="chat-2")
    assert turn.wait(15) and turn.error is None, turn.error


def test_a_failed_first_turn_leaves_no_empty_conversation(open_panel: Open, session: ChatSession) -> None:  # noqa: F811
    panel, browser = open_panel()
    turn = session.send("never answered [[fault:http500]]", conversation="oops")
    assert turn.wait(15) and turn.error is not None
    browser.say(type="conversations")
    assert panel.wait(5)
    assert [name for name, _ in browser.state["conversations"]] == ["default"]
