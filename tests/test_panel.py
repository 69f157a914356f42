"""The chat panel, widget by widget, against the local stand-in of the sites."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic._state import get_session
from chatmagic.panel import ChatPanel
from chatmagic.providers import get_provider, list_providers
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession

from .conftest import SITES

STREAMING = "opchatgpts"


def point_at(session: ChatSession, sb: Sandbox) -> None:
    for site in SITES:
        session.base_urls[site] = sb.base_url(site)


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    point_at(s, sandbox_thread)
    yield s
    s.close()


@pytest.fixture
def make_panel(session: ChatSession) -> Iterator[Callable[..., ChatPanel]]:
    panels: list[ChatPanel] = []

    def make(conversation: str = "default", provider: str | None = STREAMING) -> ChatPanel:
        panel = ChatPanel(conversation, session=session)
        if provider:
            panel.provider_dropdown.value = provider
        panels.append(panel)
        return panel

    yield make
    for p in panels:
        p.stop()
        p.wait(10)
        p.close()


def texts(panel: ChatPanel) -> list[str]:
    """What the transcript shows, message by message, without the markup."""
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", w.value)).strip() for w in panel.messages]


class WidgetTraffic:
    """What the panel's message widgets send to the browser, counted from outside the panel.

    A message widget costs one message when it joins the transcript (its text comes with
    it) and one for each later change of its text; the ones shown when counting starts
    are only watched. Values change on the panel's background loop, hence the lock.
    """

    def __init__(self, panel: ChatPanel) -> None:
        self._lock = threading.Lock()
        self._changes: dict[int, int] = {}
        self.transcript = panel.transcript
        for w in self.transcript.children:
            self._watch(w, joined=False)
        self.transcript.observe(self._children, names="children")

    def _watch(self, w: Any, joined: bool) -> None:
        with self._lock:
            if id(w) in self._changes:
                return
            self._changes[id(w)] = int(joined)
        w.observe(lambda _change: self._count(w), names="value")

    def _count(self, w: Any) -> None:
        with self._lock:
            self._changes[id(w)] += 1

    def _children(self, change: dict[str, Any]) -> None:
        for w in change["new"]:
            self._watch(w, joined=True)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._changes.values())

    def of(self, w: Any) -> int:
        with self._lock:
            return self._changes.get(id(w), 0)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_send_streams_the_reply(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    assert texts(panel) == ["No messages yet — write one below."]
    panel.text.value = "Hello panel [[words:30]][[delay:0.01]]"
    started = time.monotonic()
    panel.send_button.click()
    assert time.monotonic() - started < 0.5  # the callback hands the reply to the loop
    assert panel.send_button.disabled and not panel.stop_button.disabled
    assert panel.text.value == ""
    assert panel.wait(15)
    assert not panel.send_button.disabled and panel.stop_button.disabled
    history = panel.conversation.history()
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[1].content.split() == [f"w{i}" for i in range(1, 31)]
    user, assistant = panel.messages
    assert "chatmagic-user" in user.value and "Hello panel" in user.value
    assert "chatmagic-assistant" in assistant.value and "w30" in assistant.value
    assert f"{STREAMING} · " in panel.status_text and "first text" in panel.status_text


def test_enter_sends_and_the_next_message_continues(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    for word in ("first", "second"):
        panel.text.value = word
        # what the browser sends when Enter is pressed in the box
        panel.text._handle_custom_msg({"event": "submit"}, None)
        assert panel.wait(15)
    assert texts(panel)[-1].endswith("You said: second Earlier messages: 2.")
    assert len(panel.conversation) == 2


def test_reply_is_rendered_safely(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    panel.send("[[reply]]**bold** <script>alert(1)</script> [x](javascript:alert(1))")
    assert panel.wait(15)
    html = panel.messages[-1].value
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html  # shown, not run
    assert 'href="javascript' not in html


def test_stop_mid_stream(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    turn = panel.send("long one [[words:200]][[delay:0.05]]")
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    assert panel.send_button.disabled
    clicked = time.monotonic()
    panel.stop_button.click()
    assert turn.wait(2) and time.monotonic() - clicked < 1
    assert panel.wait(5)
    assert turn.state == "stopped"
    (exchange,) = panel.conversation.exchanges
    assert exchange.stopped and 0 < len(exchange.assistant.content.split()) < 200
    assert "■ stopped" in panel.messages[-1].value
    assert "stopped" in panel.status_text
    assert not panel.send_button.disabled and panel.stop_button.disabled


def test_stop_before_any_text_gives_the_message_back(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    panel.send("slow start [[fault:slow_first_byte]]")
    panel.stop()
    assert panel.wait(5)
    assert len(panel.conversation) == 0
    assert panel.text.value == "slow start [[fault:slow_first_byte]]"
    assert "back in the box" in panel.status_text


def test_model_dropdown_follows_the_provider(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel(provider=None)
    names = [value for _label, value in panel.provider_dropdown.options]
    assert names == [r["name"] for r in list_providers() if "error" not in r]
    for name in names:
        panel.provider_dropdown.value = name
        cls = get_provider(name)
        assert set(panel.model_dropdown.options) == {cls.default_model, *cls.models}
        assert panel.model_dropdown.value == cls.default_model
        assert name in panel.status_text
    panel.provider_dropdown.value = "chatgpt4online"
    other = [m for m in panel.model_dropdown.options if m != panel.model_dropdown.value]
    if other:
        panel.model_dropdown.value = other[0]
    turn = panel.send("which model?")
    assert turn is not None and panel.wait(15)
    assert (turn.provider, turn.model) == ("chatgpt4online", panel.model_dropdown.value)
    assert texts(panel)[-1].split(" · ")[:2] == ["chatgpt4online", panel.model_dropdown.value]
    # what the panel chose stays with the conversation, for the next cell
    assert panel.conversation.provider == "chatgpt4online"


def test_error_is_shown_and_the_text_comes_back(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    panel.send("kept [[words:3]]")
    assert panel.wait(15)
    before = panel.conversation.history()
    shown = texts(panel)
    message = "this fails [[fault:http500]]"
    panel.send(message)
    assert panel.wait(15)
    assert panel.conversation.history() == before
    assert texts(panel) == shown  # the failed exchange left no trace in the transcript
    assert panel.text.value == message
    assert "500" in panel.status_text and "back in the box" in panel.status_text
    assert "chatmagic-error" in panel.status.value
    assert not panel.send_button.disabled


def test_empty_message_is_not_sent(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    assert panel.send("   ") is None
    assert len(panel.conversation) == 0 and "Type a message" in panel.status_text


def test_exchange_made_elsewhere_appears(make_panel: Callable[..., ChatPanel], session: ChatSession) -> None:
    panel = make_panel("shared")
    turn = session.send("from a cell [[words:5]]", conversation="shared")
    turn.result(15)
    assert panel.wait(5)
    assert texts(panel)[0] == "You from a cell [[words:5]]"
    assert "w5" in texts(panel)[1]
    session.conversation("shared").reset()
    assert panel.wait(5)
    assert texts(panel) == ["No messages yet — write one below."]


def test_two_panels_on_one_conversation(make_panel: Callable[..., ChatPanel]) -> None:
    one, two = make_panel("both"), make_panel("both")
    turn = one.send("seen twice [[words:50]][[delay:0.01]]")
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    # the other panel shows the reply streaming and cannot send over it
    assert two.send_button.disabled and not two.stop_button.disabled
    assert two.send("interrupting") is None
    assert one.wait(15) and two.wait(15)
    assert texts(one) == texts(two) and len(texts(one)) == 2
    assert not two.send_button.disabled
    # New chat in one panel empties both
    two.new_button.click()
    wait_for(lambda: len(one.conversation) == 0)
    assert one.wait(5) and two.wait(5)
    assert texts(one) == texts(two) == ["No messages yet — write one below."]


def test_new_chat_while_streaming_leaves_it_empty(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    turn = panel.send("[[words:200]][[delay:0.02]]")
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    panel.new_chat()
    assert turn.wait(5) and panel.wait(5)
    wait_for(lambda: texts(panel) == ["No messages yet — write one below."])
    assert len(panel.conversation) == 0


def test_long_reply_costs_few_widget_messages(make_panel: Callable[..., ChatPanel]) -> None:
    panel = make_panel()
    panel.send("warm up [[words:3]]")
    assert panel.wait(15)
    first = panel.messages[0]
    traffic = WidgetTraffic(panel)
    turn = panel.send("[[words:2000]]")
    assert turn is not None and panel.wait(30)
    assert turn.text.split()[-1] == "w2000"
    assert texts(panel)[-1].endswith("w1999 w2000")  # the final text always arrives
    assert traffic.of(first) == 0  # earlier messages are never re-sent
    # the user message, the placeholder, paced updates, the final render
    assert 3 <= traffic.total <= 40, traffic.total


def test_trailing_flush_without_further_chunks(make_panel: Callable[..., ChatPanel]) -> None:
    # chunks arrive faster than updates may go out, then the stream pauses: the pending text
    # must still be shown before the reply ends
    panel = make_panel()
    turn = panel.send("[[words:40]][[delay:0.3]]")
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    wait_for(lambda: "w3" in panel.messages[-1].value, timeout=3)
    assert not turn.done
    panel.stop()
    assert panel.wait(5)


def test_callbacks_from_another_thread(make_panel: Callable[..., ChatPanel]) -> None:
    # JupyterLab >= 4.4 with ipykernel 7 runs widget messages on a subshell thread
    panel = make_panel()
    # the Send handler disables the button at once, on the thread it runs on
    disabled_on: list[str] = []
    panel.send_button.observe(
        lambda change: change["new"] and disabled_on.append(threading.current_thread().name), names="disabled"
    )
    panel.text.value = "from a subshell [[words:4]]"
    worker = threading.Thread(target=panel.send_button.click, name="subshell-test")
    worker.start()
    worker.join(2)
    assert not worker.is_alive()
    assert disabled_on[:1] == ["subshell-test"]
    assert panel.wait(15)
    assert texts(panel)[0] == "You from a subshell [[words:4]]" and texts(panel)[1].endswith("w1 w2 w3 w4")
    assert len(panel.conversation) == 1 and not panel.send_button.disabled


def test_closed_panel_stops_following(make_panel: Callable[..., ChatPanel], session: ChatSession) -> None:
    panel = make_panel("closing")
    shown, status = texts(panel), panel.status_text
    traffic = WidgetTraffic(panel)
    panel.close()
    session.send("after close [[words:2]]", conversation="closing").result(15)
    assert panel.wait(1)
    # the conversation went on; the closed panel drew none of it, and its widgets are gone
    assert [m.content for m in session.conversation("closing").history()][0] == "after close [[words:2]]"
    assert texts(panel) == shown == ["No messages yet — write one below."] and panel.status_text == status
    assert traffic.total == 0
    assert all(w.comm is None for w in [*panel.messages, panel.text, panel.send_button, panel.status])


# -- with a real IPython shell and %%chat ---------------------------------------------


def test_panel_and_cells_share_the_conversation(ip: Any, fresh: None) -> None:
    # ip and fresh (tests/conftest.py): the one IPython shell with chatmagic loaded
    with capture_output():
        panel = ip.run_line_magic("chat", "panel paneltalk")
    try:
        assert isinstance(panel, ChatPanel) and panel.session is get_session()
        with capture_output() as io:
            result = ip.run_cell(f"%%chat -c paneltalk -p {STREAMING}\nfrom the cell")
        assert result.error_in_exec is None, io.stdout
        assert panel.wait(10)
        assert texts(panel)[0] == "You from the cell"
        assert panel.provider_dropdown.value == STREAMING
        panel.send("from the panel")
        assert panel.wait(15)
        with capture_output() as io:
            ip.run_cell("%%chat -c paneltalk\nfrom the cell again")
        # the cell continued the panel's exchange: four messages came before it
        assert "Earlier messages: 4." in io.outputs[-1].data["text/plain"]
        assert panel.wait(10)
        assert len(panel.messages) == 6
    finally:
        panel.close()
