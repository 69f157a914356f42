"""A panel turn's tools and budget, as a user sees them in the panel, against the stand-in.

The panel offers ``ChatPanel.tools`` (or ``ChatMagics.tools``); a call waits with its card and
the Run / Deny / Always buttons; a click answers it, the tool runs on the main thread and
the answer follows; a panel no frontend drew declines. Over budget, the glass box waits in
the transcript for Send anyway / Cancel, or is refused in one line.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatmagic._state import get_session
from chatmagic._toolcell import main_thread
from chatmagic.panel import ChatPanel
from chatmagic.sandbox import Sandbox

from ._tool_schemas import KEY
from .test_panel import Browser, plain

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


@pytest.fixture
def open_panel(ip: Any) -> Iterator[Callable[..., tuple[ChatPanel, Browser | None]]]:
    ip.run_cell(
        "import threading\nran_on = []\n"
        "def load_sales(region: str) -> str:\n"
        "    '''Sales of a region.'''\n"
        "    ran_on.append(threading.current_thread() is threading.main_thread())\n"
        "    return f'120 units in {region} <b>bold</b>'"
    )
    panels: list[ChatPanel] = []

    def make(name: str, tools: Any = "load_sales", drawn: bool = True) -> tuple[ChatPanel, Browser | None]:
        panel = ChatPanel(name, session=get_session(), tools=tools)
        panels.append(panel)
        browser = Browser(panel) if drawn else None  # a drawn panel says hello
        panel.provider = "openai"
        return panel, browser

    yield make
    session = get_session()
    session.pauses.cancel_all()
    session.pauses.forget()
    session.limits = type(session.limits)()
    for p in panels:
        p.stop()
        p.wait(10)
        p.close()


def until(condition: Callable[[], Any], shell: Any, timeout: float = 15) -> Any:
    """Wait for ``condition``, running what waits for the main thread (no kernel loop here)."""
    import time

    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        main_thread(shell).drain()
        time.sleep(0.01)
    return found


def asked(browser: Browser) -> str:
    """The id of the question whose buttons the panel shows."""
    match = re.search(r'data-ask="([^"]+)"', "".join(browser.html))
    return match.group(1) if match else ""


def test_a_call_waits_in_the_panel_and_a_click_runs_it(ip: Any, open_panel: Callable[..., Any]) -> None:
    panel, browser = open_panel("pt")
    panel.send('How did the north do? [[tool:load_sales {"region": "north"}]]')
    pending = until(lambda: asked(browser), ip)
    page = "".join(browser.html)
    assert "waiting for your answer" in plain(page) and "region" in page and "north" in page
    assert '<button data-answer="run">Run</button>' in page and "Always for load_sales" in page
    assert ip.user_ns["ran_on"] == []  # nothing runs unseen
    # while its first turn waits, the bar shows what it goes to (not the conversation's old choice)
    assert (browser.state["provider"], browser.state["model"]) == ("openai", "gpt-4o-mini")
    browser.say(type="answer", id=pending, choice="run")
    until(lambda: panel.turn.done, ip)
    assert panel.wait(10)
    assert ip.user_ns["ran_on"] == [True]  # on the kernel's main thread
    shown = " ".join(browser.texts)
    assert "load_sales" in shown and "done in" in shown and "120 units in north" in shown
    # the result is text: a tool's HTML is never live
    assert "<b>bold</b>" not in "".join(browser.html) and "&lt;b&gt;bold&lt;/b&gt;" in "".join(browser.html)
    (ex,) = get_session().conversation("pt").exchanges
    assert [(s.name, s.state, s.by) for s in ex.tools] == [("load_sales", "done", "user")]
    # a button clicked twice (or after %chat approve) says so in one line
    browser.say(type="answer", id=pending, choice="run")
    assert "is waiting" in browser.status


def test_deny_and_always_from_the_panel(ip: Any, open_panel: Callable[..., Any]) -> None:
    panel, browser = open_panel("pd")
    panel.send('[[tool:load_sales {"region": "south"}]]')
    browser.say(type="answer", id=until(lambda: asked(browser), ip), choice="deny")
    until(lambda: panel.turn.done, ip)
    (ex,) = get_session().conversation("pd").exchanges
    assert ex.tools[0].state == "declined" and ip.user_ns["ran_on"] == []
    assert "declined by you" in " ".join(browser.texts)
    panel.send('[[tool:load_sales {"region": "east"}]]')
    browser.say(type="answer", id=until(lambda: asked(browser), ip), choice="always")
    until(lambda: panel.turn.done, ip)
    panel.send('[[tool:load_sales {"region": "west"}]]')  # asks no more in this session
    until(lambda: panel.turn.done, ip)
    steps = [ex.tools[0] for ex in get_session().conversation("pd").exchanges]
    assert [(s.state, s.by) for s in steps] == [("declined", "user"), ("done", "user"), ("done", "always")]


def test_a_panel_no_frontend_drew_declines(ip: Any, open_panel: Callable[..., Any]) -> None:
    panel, _ = open_panel("ph", drawn=False)
    panel.audience.hello_grace = 0.2
    panel.send('[[tool:load_sales {"region": "north"}]]')
    until(lambda: panel.turn.done, ip)
    (ex,) = get_session().conversation("ph").exchanges
    assert (ex.tools[0].state, ex.tools[0].by) == ("declined", "no one to ask")
    assert ip.user_ns["ran_on"] == []


def test_propose_cell_offers_insert_as_cell(ip: Any, open_panel: Callable[..., Any]) -> None:
    panel, browser = open_panel("pc", tools="notebook")
    code = 'print("<hi>")\nx = 1'
    panel.send(f"[[tool:propose_cell {json.dumps({'code': code})}]]")
    until(lambda: panel.turn.done, ip)
    item = until(lambda: [h for h in browser.html if "cm-insert" in h], ip, timeout=2)[0]
    assert f'data-code="{html.escape(code, quote=True)}"' in item and "<hi>" not in item


def test_over_budget_the_panel_asks_and_cancel_gives_the_message_back(
    ip: Any, open_panel: Callable[..., Any], sandbox_thread: Sandbox
) -> None:
    ip.run_line_magic("config", "ChatMagics.max_input_tokens = 5")
    try:
        panel, browser = open_panel("pb", tools=[])
        message = "A long question that is well over five tokens of budget."
        sent = sandbox_thread.clear() or 0
        browser.enter(message)
        pending = until(lambda: asked(browser), ip)
        page = plain("".join(browser.html))
        assert "Send anyway" in page and "Cancel" in page and "max_input_tokens" in page
        browser.say(type="answer", id=pending, choice="cancel")
        until(lambda: not browser.state["busy"], ip)
        assert "Cancelled: nothing was sent" in browser.status and browser.box.startswith(message)
        assert [r for r in sandbox_thread.requests if r.method == "POST"][sent:] == []
        assert "Send anyway" not in plain("".join(browser.html))
        # Send anyway: the turn goes and its reply is kept
        browser.enter("Hello there, send it anyway please")
        browser.say(type="answer", id=until(lambda: asked(browser), ip), choice="send")
        until(lambda: panel.turn.done, ip)
        assert len(get_session().conversation("pb").exchanges) == 1
        # a panel no frontend drew cannot ask: one line, nothing sent
        quiet, _ = open_panel("pq", tools=[], drawn=False)
        assert quiet.send("Another question well over the budget") is None
        assert "no one is here to confirm it" in plain(quiet.status)
    finally:
        ip.run_line_magic("config", "ChatMagics.max_input_tokens = 0")


def test_a_reply_view_drawn_after_its_buttons_gets_them() -> None:
    """The cell's Run button: the buttons went out before the view was drawn (its hello)."""
    from chatmagic._replyview import ReplyView

    view = ReplyView()
    sent: list[Any] = []
    view.send = sent.append  # type: ignore[method-assign]
    view.asks('<div class="cm-ask" data-ask="t1">…</div>')
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "hello"}}}, "buffers": []})
    assert sent == [{"ask": '<div class="cm-ask" data-ask="t1">…</div>'}] * 2
    view.close()


def test_over_the_window_the_panel_refuses_in_one_line_and_stop_cancels_a_question(
    ip: Any, open_panel: Callable[..., Any], sandbox_thread: Sandbox
) -> None:
    tiny = {"tiny": {"base_url": sandbox_thread.base_url("lmstudio"), "context_window": 40}}
    ip.run_line_magic("config", f"ChatMagics.endpoints = {tiny!r}")
    try:
        panel, browser = open_panel("pw", tools=[])
        panel.provider, panel.model = "tiny", "llama3.2"
        sent = len(sandbox_thread.requests)
        assert panel.send("a long question " * 40) is None
        assert "context window is 40 tokens: nothing was sent" in browser.status
        assert browser.box.startswith("a long question") and not browser.state["busy"]
        assert len(sandbox_thread.requests) == sent and asked(browser) == ""
        # over budget, then Stop: the question is cancelled and the message comes back
        ip.run_line_magic("config", "ChatMagics.max_input_tokens = 3")
        panel.provider = "openai"
        browser.enter("short, but over three tokens")
        until(lambda: asked(browser), ip)
        assert panel.send("another one meanwhile") is None and "Stop it" in browser.status
        browser.click("Stop")
        until(lambda: not browser.state["busy"], ip)
        assert "Cancelled: nothing was sent" in browser.status
        assert browser.box.startswith("short, but over") and asked(browser) == ""
    finally:
        ip.run_line_magic("config", "ChatMagics.max_input_tokens = 0")
        ip.run_line_magic("config", "ChatMagics.endpoints = {}")


def test_stop_while_a_call_waits_ends_the_turn_and_its_question(
    ip: Any, open_panel: Callable[..., Any]
) -> None:
    panel, browser = open_panel("ps")
    panel.send('[[tool:load_sales {"region": "north"}]]')
    until(lambda: asked(browser), ip)
    browser.click("Stop")
    until(lambda: panel.turn.done and not browser.state["busy"], ip)
    assert get_session().pauses.waiting() == [] and asked(browser) == ""
    assert ip.user_ns["ran_on"] == []


def test_another_conversation_picked_cancels_a_budget_question(
    ip: Any, open_panel: Callable[..., Any]
) -> None:
    ip.run_line_magic("config", "ChatMagics.max_input_tokens = 3")
    try:
        panel, browser = open_panel("pk", tools=[])
        browser.enter("over three tokens, surely")
        until(lambda: asked(browser), ip)
        browser.set(conversation_name="pk2")
        until(lambda: not browser.state["busy"] and not asked(browser), ip)
        assert get_session().pauses.waiting() == []
        assert browser.box.startswith("over three tokens") and not get_session().conversation("pk").exchanges
    finally:
        ip.run_line_magic("config", "ChatMagics.max_input_tokens = 0")


def test_chat_panel_tools_names_them_or_says_which_cannot_be(ip: Any, open_panel: Callable[..., Any]) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as io:
        ip.run_cell("%chat panel pt2 --tools nope")
    assert "--tools nope: there is no 'nope' in the notebook" in io.stdout + io.stderr
    with capture_output():
        ip.run_cell("made = %chat panel pt2 --tools load_sales,notebook")
    made = ip.user_ns.pop("made")
    try:
        assert made.tools == "load_sales,notebook"
    finally:
        made.close()
