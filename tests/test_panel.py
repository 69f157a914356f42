"""The chat panel, message by message, against the local stand-in of the sites.

:class:`Browser` does with the widget's messages what ``chatmagic/static/panel.js`` does:
it keeps the transcript from the ``reset``, ``splice`` and ``live`` messages (on the HTML
as a string, where panel.js changes the DOM), the controls from the state updates, and the
box; and it sends what the page sends (Enter, Stop, New chat, the pickers). So the tests
assert on what a user would see, and count what the panel sends.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic._state import get_session
from chatmagic._stream import crc, units
from chatmagic.panel import PAGE, ChatPanel
from chatmagic.providers import get_provider, list_providers
from chatmagic.providers.endpoints import PRESETS
from chatmagic.render import markdown_html
from chatmagic.sandbox import Sandbox, SandboxSettings
from chatmagic.session import ChatSession, Exchange, Message, TurnOptions

from .conftest import SITES

STREAMING = "opchatgpts"
EMPTY = ["No messages yet — write one below."]
#: the models the stand-in's OpenAI-compatible servers have in these tests
SERVER_MODELS = ("llama3.2", "mistral:7b", "qwen2.5:0.5b")


def plain(value: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", value))).strip()


def _first_units(text: str, count: int) -> str:
    """The first ``count`` UTF-16 code units of ``text`` (JavaScript's ``slice(0, count)``)."""
    return text.encode("utf-16-le", "surrogatepass")[: 2 * count].decode("utf-16-le", "surrogatepass")


class Browser:
    """One view of the panel, as panel.js keeps it (see the module docstring)."""

    def __init__(self, panel: ChatPanel) -> None:
        self.panel = panel
        self._lock = threading.Lock()
        self.items: list[list[str]] = []
        self.synced = False
        #: a streaming bubble's open tail as sent, and the finished blocks placed above it (see _live)
        self.tails: dict[str, str] = {}
        self.seqs: dict[str, int] = {}
        self.blocks: dict[str, list[str]] = {}
        self.state: dict[str, Any] = dict(panel.get_state())
        self.box = str(self.state["draft"])
        #: every message the widget sent since this view opened
        self.received: list[dict[str, Any]] = []
        panel.comm.publish_msg = self._receive  # what the kernel would put on the wire
        self.say(type="hello")

    # -- what arrives -------------------------------------------------------------------

    def _receive(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any
    ) -> None:
        if msg_type != "comm_msg":
            return
        data = json.loads(json.dumps(data))  # what goes over the wire
        with self._lock:
            self.received.append(data)
            if data["method"] == "update":
                self.state.update(data["state"])
            elif data["method"] == "custom":
                msg = data["content"]
                if msg["type"] == "reset":
                    self.synced = True
                    self.items = [item[:2] for item in msg["items"]]
                    self.tails.clear()
                    self.seqs = {item[0]: item[2] for item in msg["items"] if len(item) > 2}
                elif msg["type"] == "splice" and self.synced:
                    for item_id, _html in self.items[msg["at"] : msg["at"] + msg["remove"]]:
                        self.tails.pop(item_id, None)
                    self.items[msg["at"] : msg["at"] + msg["remove"]] = [item[:2] for item in msg["items"]]
                    self.seqs.update({item[0]: item[2] for item in msg["items"] if len(item) > 2})
                elif msg["type"] == "live" and self.synced:
                    assert msg["n"] == self.seqs[msg["id"]] + 1, "a live message lost or out of order"
                    self.seqs[msg["id"]] = msg["n"]
                    self._live(msg)
                elif msg["type"] == "sent" and msg["text"] == self.box:
                    self.box = ""
                elif msg["type"] == "give_back" and msg["text"] not in self.box:
                    self.box = f"{msg['text']}\n{self.box}" if self.box.strip() else msg["text"]

    def _live(self, msg: dict[str, Any]) -> None:
        """A streaming bubble changes in place (see chatmagic.panel, "Traffic")."""
        (index,) = [i for i, (item_id, _html) in enumerate(self.items) if item_id == msg["id"]]
        value = self.items[index][1]
        who_end = value.index("</div>", value.index('<div class="chatmagic-who">'))
        if "who" in msg:
            start = value.index('<div class="chatmagic-who">') + len('<div class="chatmagic-who">')
            value = value[:start] + html_lib.escape(msg["who"]) + value[who_end:]
            who_end = value.index("</div>", start)
        if "thinking" in msg:
            if '<details class="chatmagic-thinking"' in value:
                start = value.index('<details class="chatmagic-thinking"')
                value = value[:start] + value[value.index("</details>", start) + len("</details>") :]
            at = who_end + len("</div>")
            value = value[:at] + msg["thinking"] + value[at:]
        if "think" in msg:
            summary, added = msg["think"]
            value = re.sub(
                r"<summary>.*?</summary>", lambda _: f"<summary>{summary}</summary>", value, count=1
            )
            at = value.index("</div></details>")
            value = value[:at] + html_lib.escape(added) + value[at:]
        tail_at = value.index('<div class="cm-tail">')
        # as panel.js: on the tail it holds as Python sent it (never read back from the page)
        held = self.tails.get(msg["id"])
        if "a" in msg:  # the tail edited near its end: [length, crc, at, cut, html]
            length, check, at, cut, added = msg["a"]
            assert held is not None, "a patch of a tail never sent"
            assert [length, check] == [units(held), crc(held)], "a patch of another tail"
            msg = {**msg, "t": [length - at, added + held[len(_first_units(held, length - at + cut)) :]]}
        for part in ("k", "t"):
            assert part not in msg or msg[part][0] == 0 or held is not None, "a patch of a tail never sent"
        if any(part in msg and msg[part][0] for part in ("k", "t")) and "a" not in msg:
            assert held is not None and msg["b"] == [units(held), crc(held)], "a patch of another tail"
        held = held or ""
        if "k" in msg:
            keep, added = msg["k"]
            blocks = _first_units(held, keep) + added
            self.blocks.setdefault(msg["id"], []).append(blocks)
            value = value[:tail_at] + blocks + value[tail_at:]
            tail_at += len(blocks)
        if "t" in msg:
            keep, added = msg["t"]
            tail = _first_units(held, keep) + added
            self.tails[msg["id"]] = tail
            start = tail_at + len('<div class="cm-tail">')
            value = value[:start] + tail + "</div></div>"
        self.items[index] = [msg["id"], value]

    @property
    def texts(self) -> list[str]:
        """The transcript's messages as a user reads them."""
        with self._lock:
            return [plain(value) for _id, value in self.items] or EMPTY

    @property
    def html(self) -> list[str]:
        with self._lock:
            return [value for _id, value in self.items]

    @property
    def status(self) -> str:
        return plain(self.state["status"])

    def splices(self, since: int = 0) -> list[dict[str, Any]]:
        """The splices among the messages received after the first ``since``."""
        with self._lock:
            return [
                m["content"]
                for m in self.received[since:]
                if m["method"] == "custom" and m["content"]["type"] == "splice"
            ]

    def count(self) -> tuple[int, int]:
        """Messages received so far, and their size in bytes as JSON."""
        with self._lock:
            return len(self.received), sum(len(json.dumps(m)) for m in self.received)

    # -- what the page sends ----------------------------------------------------------

    def say(self, **content: Any) -> None:
        self.panel._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    def set(self, **state: Any) -> None:
        self.panel._handle_msg(
            {"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []}
        )
        self.state.update(state)

    def enter(self, text: str | None = None) -> None:
        """Type ``text`` (or keep the box's) and press Enter, as panel.js handles it."""
        if text is not None:
            self.box = text
        if not self.box.strip() or self.state["busy"]:
            return
        sent, self.box = self.box, ""
        self.say(type="send", text=sent)
        self.set(draft="")

    def click(self, button: str) -> None:
        self.say(type={"Stop": "stop", "New chat": "new", "Show earlier messages": "earlier"}[button])


def point_at(session: ChatSession, sb: Sandbox, servers: Sandbox) -> None:
    for site in SITES:
        session.base_urls[site] = sb.base_url(site)
    # every OpenAI-compatible name talks to a stand-in too: no test reaches a real server
    for name in ("openai", *PRESETS):
        session.base_urls[name] = servers.base_url(name)


@pytest.fixture(scope="module")
def servers() -> Iterator[Sandbox]:
    """OpenAI-compatible servers (the presets' names) with models a web site never has."""
    sb = Sandbox(SandboxSettings(openai_api_key=None, openai_models=SERVER_MODELS)).start_in_thread()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def session(sandbox_thread: Sandbox, servers: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    point_at(s, sandbox_thread, servers)
    yield s
    s.close()


@pytest.fixture
def open_panel(session: ChatSession) -> Iterator[Callable[..., tuple[ChatPanel, Browser]]]:
    panels: list[ChatPanel] = []

    def make(conversation: str = "default", provider: str | None = STREAMING) -> tuple[ChatPanel, Browser]:
        panel = ChatPanel(conversation, session=session)
        panels.append(panel)
        browser = Browser(panel)
        if provider:
            browser.set(provider=provider)
        assert panel.wait(5)
        # the provider's models are listed on a thread of their own: let that end first
        wait_for(lambda: not browser.state["models_note"].startswith("Asking"))
        return panel, browser

    yield make
    for p in panels:
        p.stop()
        p.wait(10)
        p.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def exchanges(n: int, tag: str = "") -> list[Exchange]:
    return [
        Exchange(
            Message("user", f"question {tag}{i}"),
            Message("assistant", f"answer {tag}{i}"),
            "chatgptt",
            "gpt-4o",
        )
        for i in range(n)
    ]


# -- the box ----------------------------------------------------------------------------


def test_enter_sends_exactly_what_was_typed(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    assert browser.texts == EMPTY
    pasted = "Why does this fail?\n\n```python\ndef f(x):\n\treturn x  \n```\n  trailing  [[words:30]][[delay:0.01]]"
    started = time.monotonic()
    browser.enter(pasted)
    assert time.monotonic() - started < 0.5  # the message hands the reply to the loop
    assert browser.state["busy"]  # Send waits, Stop works
    assert browser.box == ""
    assert panel.wait(15)
    assert not browser.state["busy"]
    # line breaks, tabs, blank lines and spaces arrive as typed, and are shown as typed
    (exchange,) = panel.conversation.exchanges
    assert exchange.user.content == pasted
    user, reply = browser.html
    assert "chatmagic-user" in user and html_lib.unescape(re.sub(r"<[^>]+>", "", user)) == "You" + pasted
    assert reply.count("w") >= 30 and "w30" in reply
    assert f"{STREAMING} · " in browser.status and "first text" in browser.status


def test_enter_while_a_reply_streams_keeps_the_text(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    panel, browser = open_panel()
    browser.enter("first [[words:40]][[delay:0.02]]")
    browser.enter("second, typed while the first streams")
    assert browser.box == "second, typed while the first streams"
    assert panel.wait(15)
    browser.enter()
    assert panel.wait(15)
    assert [ex.user.content for ex in panel.conversation.exchanges][
        -1
    ] == "second, typed while the first streams"


def test_a_message_refused_by_the_kernel_comes_back(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    # the page sent it before it heard that a cell had started a reply: nothing is lost
    panel, browser = open_panel()
    turn = panel.session.send("[[words:40]][[delay:0.02]]", options=TurnOptions(provider=STREAMING))
    browser.say(type="send", text="sent in the same instant")
    assert browser.box == "sent in the same instant"
    assert "still streaming" in browser.status
    turn.result(15)
    assert panel.wait(5)


def test_reply_is_rendered_safely(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.enter("[[reply]]**bold** <script>alert(1)</script> [x](javascript:alert(1))")
    assert panel.wait(15)
    html = browser.html[-1]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html  # shown, not run
    assert 'href="javascript' not in html


def test_stop_mid_stream(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.enter("long one [[words:200]][[delay:0.05]]")
    turn = panel.turn
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    clicked = time.monotonic()
    browser.click("Stop")
    assert turn.wait(2) and time.monotonic() - clicked < 1
    assert panel.wait(5)
    assert turn.state == "stopped"
    (exchange,) = panel.conversation.exchanges
    assert exchange.stopped and 0 < len(exchange.assistant.content.split()) < 200
    assert "■ stopped" in browser.html[-1]
    assert "stopped" in browser.status and not browser.state["busy"]


def test_stop_before_any_text_gives_the_message_back(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    panel, browser = open_panel()
    browser.enter("slow start\nsecond line [[fault:slow_first_byte]]")
    browser.click("Stop")
    assert panel.wait(5)
    assert len(panel.conversation) == 0
    assert browser.box == "slow start\nsecond line [[fault:slow_first_byte]]"
    assert "back in the box" in browser.status
    assert browser.texts == EMPTY


def test_error_is_shown_and_the_text_comes_back(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.enter("kept [[words:3]]")
    assert panel.wait(15)
    before, shown = panel.conversation.history(), browser.texts
    message = "this fails [[fault:http500]]"
    browser.enter(message)
    browser.box = "typed meanwhile"
    assert panel.wait(15)
    assert panel.conversation.history() == before
    assert browser.texts == shown  # the failed exchange left no trace in the transcript
    assert browser.box == f"{message}\ntyped meanwhile"
    assert "500" in browser.status and "back in the box" in browser.status
    assert "chatmagic-error" in browser.state["status"]
    assert not browser.state["busy"]


def test_empty_message_is_not_sent(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.enter("  \n ")
    assert panel.send("   ") is None
    assert len(panel.conversation) == 0 and "Type a message" in browser.status


def test_send_from_python_sends_the_box(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.box = "typed in the page [[words:2]]"
    browser.set(draft=browser.box)  # what the page reports after a pause in typing
    turn = panel.send()
    assert turn is not None and turn.prompt == "typed in the page [[words:2]]"
    assert browser.box == "" and panel.draft == ""
    assert panel.wait(15) and browser.texts[0] == "You typed in the page [[words:2]]"


def test_callbacks_from_another_thread(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    # JupyterLab >= 4.4 with ipykernel 7 runs widget messages on a subshell thread
    panel, browser = open_panel()
    worker = threading.Thread(
        target=browser.enter, args=("from a subshell [[words:4]]",), name="subshell-test"
    )
    started = time.monotonic()
    worker.start()
    worker.join(2)
    assert not worker.is_alive() and time.monotonic() - started < 1
    assert panel.wait(15)
    assert browser.texts[0] == "You from a subshell [[words:4]]" and browser.texts[1].endswith("w1 w2 w3 w4")


# -- the transcript ---------------------------------------------------------------------


def test_exchange_made_elsewhere_appears(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel("shared")
    session.send("from a cell [[words:5]]", conversation="shared").result(15)
    assert panel.wait(5)
    assert browser.texts[0] == "You from a cell [[words:5]]"
    assert "w5" in browser.texts[1]
    session.conversation("shared").reset()  # %chat reset shared
    assert panel.wait(5)
    assert browser.texts == EMPTY


MARKDOWN = (
    "# A heading\n\n"
    "A first paragraph with **bold** and `code`.\n\n"
    "```python\ndef add(a, b):\n    return a + b  # the sum\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "- one\n- two\n\n"
    "The last paragraph,\nwritten over two lines, goes on for a good many more words "
    "than the others so that the blocks above it are finished while it is still streaming."
)


def test_a_streaming_reply_sends_each_finished_block_once(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    panel, browser = open_panel()
    counted, _ = browser.count()
    # slow enough that, between two pieces, the browser's copy can be seen equal to the panel's
    browser.enter(f"[[delay:0.05]][[reply]]{MARKDOWN}")
    turn = panel.turn
    assert turn is not None
    wait_for(lambda: any("<pre" in block for blocks in browser.blocks.values() for block in blocks))
    # the bubble built from the live messages is the one a view opening now would get whole
    wait_for(lambda: browser.html == panel.messages and not turn.done)
    browser.say(type="hello")  # a view opens mid-stream: the bubble comes whole, then changes again
    assert panel.wait(15) and turn.state == "done"

    (live_id,) = browser.blocks
    placed = "".join(browser.blocks[live_id])
    # each finished block went once, in order: together they are the rendering of whole blocks
    ends = [i + 2 for i in range(len(MARKDOWN)) if MARKDOWN.startswith("\n\n", i)]
    # (drawn without syntax colours while streaming: chatmagic._stream; the final rendering has them)
    assert placed in [markdown_html(MARKDOWN[:end], colour=False) for end in ends]
    assert len(placed) >= len(
        markdown_html(MARKDOWN[: ends[2]], colour=False)
    )  # the heading, a paragraph, the code
    # the bubble went whole once (and in the reset the view asked for); the rest were live messages
    messages = [m["content"] for m in browser.received[counted:] if m["method"] == "custom"]
    carrying = [m for m in messages if m["type"] == "splice" and live_id in {i[0] for i in m["items"]}]
    assert len(carrying) == 1
    assert sum(m["type"] == "live" for m in messages) >= 3
    # the end: the complete, sanitized rendering of the reply, in place of the streaming bubble
    assert markdown_html(MARKDOWN) in browser.html[-1]
    assert browser.html == panel.messages and live_id not in {i for i, _ in browser.items}
    assert panel.conversation.exchanges[-1].assistant.content == MARKDOWN


def test_a_slow_reply_changes_every_second_once_its_bytes_are_spent(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply too slow to pay for its messages still changes once a second (chatmagic._budget)."""
    from chatmagic import _budget

    # no byte allowance at all: after the first text, only the heartbeat lets a message go
    monkeypatch.setattr(_budget, "ALLOWANCE", 0)
    monkeypatch.setattr(_budget, "PER_CHAR", 0.0)
    panel, browser = open_panel()
    times: list[float] = []
    receive = panel.comm.publish_msg

    def timed(msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if msg_type == "comm_msg" and data["method"] == "custom" and data["content"]["type"] == "live":
            times.append(time.monotonic())
        receive(msg_type, data, *args, **kwargs)

    panel.comm.publish_msg = timed
    browser.enter("[[words:40]][[delay:0.1]]")  # about 4 s
    assert panel.wait(30)
    assert browser.texts[-1].endswith("w39 w40")
    assert len(times) >= 4, times
    # the heartbeat is 0.9 s; a loaded test machine may be late by a little
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 1.3


def test_long_reply_costs_few_widget_messages(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel()
    browser.enter("warm up [[words:3]]")
    assert panel.wait(15)
    first = browser.items[:2]
    counted, _ = browser.count()
    browser.enter("[[words:2000]]")
    assert panel.wait(30)
    assert panel.turn is not None and panel.turn.text.split()[-1] == "w2000"
    assert browser.texts[-1].endswith("w1999 w2000")  # the final text always arrives
    assert browser.items[:2] == first
    splices = browser.splices(since=counted)
    assert splices and all(s["at"] >= 2 for s in splices)  # earlier messages are never re-sent
    total = len(browser.received) - counted
    # the new messages, paced updates of the reply, its end; the status and buttons
    assert 3 <= total <= 45, total


def test_trailing_flush_without_further_chunks(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    # chunks arrive faster than updates may go out, then the stream pauses: the pending text
    # must still be shown before the reply ends
    panel, browser = open_panel()
    browser.enter("[[words:40]][[delay:0.3]]")
    turn = panel.turn
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    wait_for(lambda: "w3" in browser.html[-1], timeout=3)
    assert not turn.done
    browser.click("Stop")
    assert panel.wait(5)


def test_a_long_conversation_opens_with_one_page(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    session.conversation("small").adopt(exchanges(PAGE, "s"))
    session.conversation("big").adopt(exchanges(10_000))
    _, small = open_panel("small", provider=None)
    panel, big = open_panel("big", provider=None)
    # the newest page, and the same traffic as a conversation of one page
    assert len(big.items) == len(small.items) == 2 * PAGE
    assert big.texts[-1] == "chatgptt · gpt-4o answer 9999"
    assert big.state["earlier"] == 10_000 - PAGE and small.state["earlier"] == 0
    (n_small, bytes_small), (n_big, bytes_big) = small.count(), big.count()
    assert n_big <= n_small + 1 and bytes_big < bytes_small * 1.3, (small.count(), big.count())
    assert len(panel.messages) == 2 * PAGE  # what the panel keeps, too

    # earlier messages on request: one splice before what is shown, nothing re-sent
    shown = big.items[:]
    before = len(big.splices())
    big.click("Show earlier messages")
    assert panel.wait(5)
    (added,) = big.splices()[before:]
    assert (added["at"], added["remove"], len(added["items"])) == (0, 0, 2 * PAGE)
    assert big.items[2 * PAGE :] == shown and big.texts[0] == f"You question {10_000 - 2 * PAGE}"
    assert big.state["earlier"] == 10_000 - 2 * PAGE

    # a new exchange goes at the end; the page shown so far stays
    panel.conversation.record(exchanges(1, "new")[0])
    assert panel.wait(5)
    (appended,) = big.splices()[before + 1 :]
    assert (appended["at"], appended["remove"], len(appended["items"])) == (4 * PAGE, 0, 2)


def test_a_restore_into_an_open_panel_shows_the_newest_page(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel("restored", provider=None)
    session.conversation("restored").adopt(exchanges(10_000))  # what %chat restore does
    assert panel.wait(5)
    assert len(browser.items) == 2 * PAGE and browser.state["earlier"] == 10_000 - PAGE
    assert browser.texts[-1] == "chatgptt · gpt-4o answer 9999"


def test_reasoning_shows_in_a_thinking_block(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    panel, browser = open_panel(provider="ollama")
    browser.enter("think first [[fault:reasoning]][[delay:0.02]]")
    wait_for(lambda: "Thinking…" in "".join(browser.html))
    assert '<details class="chatmagic-thinking" open>' in browser.html[-1]  # open while it thinks
    assert panel.wait(15)
    (exchange,) = panel.conversation.exchanges
    assert exchange.reasoning
    final = browser.html[-1]
    # after: closed, above the answer
    assert final.index('<details class="chatmagic-thinking">') < final.index("<p>")
    assert f"Thinking ({len(exchange.reasoning):,} characters)" in final
    # while it streamed, the reasoning went once: the block, then only what was added to it
    lives = [
        m["content"] for m in browser.received if m["method"] == "custom" and m["content"]["type"] == "live"
    ]
    first = next(m["thinking"] for m in lives if "thinking" in m)
    sent = html_lib.unescape(re.search(r'<div class="chatmagic-thinking-text">(.*?)</div>', first, re.S)[1])
    sent += "".join(m["think"][1] for m in lives if "think" in m)
    assert exchange.reasoning.startswith(sent) and sent


# -- New chat and the conversation picker ---------------------------------------------------


def test_new_chat_keeps_the_old_conversation(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel()
    for i in range(3):
        browser.enter(f"message {i} [[words:2]]")
        assert panel.wait(15)
    browser.enter("fails [[fault:http500]]")
    assert panel.wait(15) and "500" in browser.status
    browser.box = ""
    browser.set(model="gpt-3.5-turbo")

    browser.click("New chat")
    assert panel.wait(5)
    # a new, empty conversation; the old one kept whole, for cells too
    assert browser.state["conversation_name"] == "chat-2" and panel.conversation.name == "chat-2"
    assert browser.texts == EMPTY
    assert len(session.conversation("default")) == 3
    assert [name for name, _ in browser.state["conversations"]] == ["default", "chat-2"]
    assert browser.state["conversations"][0][1] == "default · 3 exchanges"
    # the old error is gone; the provider and model chosen carry over, and are what is shown
    assert "500" not in browser.status and "chat-2" in browser.status
    assert (browser.state["provider"], browser.state["model"]) == (STREAMING, "gpt-3.5-turbo")
    browser.enter("in the new chat [[words:2]]")
    assert panel.wait(15)
    assert session.conversation("chat-2").exchanges[0].user.content == "in the new chat [[words:2]]"
    assert len(session.conversation("default")) == 3

    # the picker goes back; the old conversation is all there
    browser.set(conversation_name="default")
    assert panel.wait(5)
    assert panel.conversation is session.conversation("default")
    assert [t for t in browser.texts if t.startswith("You")] == [
        f"You message {i} [[words:2]]" for i in range(3)
    ]
    browser.click("New chat")
    assert panel.wait(5) and browser.state["conversation_name"] == "chat-3"


def test_new_chat_while_a_reply_streams(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel()
    browser.enter("[[words:100]][[delay:0.02]]")
    turn = panel.turn
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    browser.click("New chat")
    assert panel.wait(5)
    assert browser.texts == EMPTY and not browser.state["busy"]
    # the reply went on into the conversation it belongs to
    turn.result(15)
    assert session.conversation("default").exchanges[0].assistant.content.split()[-1] == "w100"
    assert panel.wait(5) and browser.texts == EMPTY


def test_two_panels_on_one_conversation(open_panel: Callable[..., tuple[ChatPanel, Browser]]) -> None:
    (one, first), (two, second) = open_panel("both"), open_panel("both")
    first.enter("seen twice [[words:50]][[delay:0.01]]")
    turn = one.turn
    assert turn is not None
    wait_for(lambda: turn.size > 0)
    # the other panel shows the reply streaming and cannot send over it
    wait_for(lambda: second.state["busy"])
    assert two.send("interrupting") is None
    assert one.wait(15) and two.wait(15)
    assert first.texts == second.texts and len(first.texts) == 2
    assert not second.state["busy"]
    # New chat in one panel leaves the other where it was
    second.click("New chat")
    assert two.wait(5) and one.wait(5)
    assert second.texts == EMPTY and len(first.texts) == 2


def test_the_picker_lists_conversations_made_by_cells(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel()
    session.send("[[words:2]]", conversation="from-a-cell").result(15)
    browser.say(type="conversations")  # the page asks when the picker gets the focus
    assert "from-a-cell" in [name for name, _ in browser.state["conversations"]]
    browser.set(conversation_name="from-a-cell")
    assert panel.wait(5) and browser.texts[0] == "You [[words:2]]"


# -- the model box ----------------------------------------------------------------------


def test_a_server_lists_its_own_models_and_any_name_can_be_typed(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    panel, browser = open_panel(provider="ollama")
    assert browser.state["model"] == get_provider("ollama").default_model
    browser.say(type="models")  # the page asks when the list opens
    wait_for(lambda: browser.state["models"] == sorted(SERVER_MODELS))
    assert "gpt-4o-mini" not in browser.state["models"] and browser.state["models_note"] == ""
    browser.set(model="mistral:7b")
    browser.enter("which model? [[words:2]]")
    assert panel.wait(15)
    (exchange,) = panel.conversation.exchanges
    assert (exchange.provider, exchange.model) == ("ollama", "mistral:7b")
    assert (panel.conversation.provider, panel.conversation.model) == ("ollama", "mistral:7b")
    assert browser.texts[-1].startswith("ollama · mistral:7b")
    # a name the server does not have: the server says so, and the message comes back
    browser.set(model="no-such-model")
    browser.enter("again")
    assert panel.wait(15)
    assert "no-such-model" in browser.status and browser.box == "again"


def test_the_panel_shows_what_a_cell_chose(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel("cells", provider=None)
    assert (browser.state["provider"], browser.state["model"]) == ("chatgptt", "gpt-4o")
    # %%chat -c cells -p ollama -m qwen2.5:0.5b
    session.send(
        "[[words:2]]", conversation="cells", options=TurnOptions(provider="ollama", model="qwen2.5:0.5b")
    )
    wait_for(lambda: browser.state["model"] == "qwen2.5:0.5b")
    assert browser.state["provider"] == "ollama"
    assert panel.wait(15)
    # a panel opened on it later shows the same
    _, later = open_panel("cells", provider=None)
    assert (later.state["provider"], later.state["model"]) == ("ollama", "qwen2.5:0.5b")


def test_a_web_site_offers_its_models_and_refuses_others(
    open_panel: Callable[..., tuple[ChatPanel, Browser]],
) -> None:
    panel, browser = open_panel(provider=None)
    names = [name for name, _label in browser.state["providers"]]
    assert names == [r["name"] for r in list_providers() if "error" not in r]
    browser.set(provider="chatgpt4online")
    cls = get_provider("chatgpt4online")
    assert browser.state["model"] == cls.default_model
    browser.say(type="models")
    wait_for(lambda: set(browser.state["models"]) >= {cls.default_model, *cls.models})
    browser.set(model="mistral:7b")
    assert "has no model 'mistral:7b'" in browser.status
    assert panel.send("hi") is None and len(panel.conversation) == 0


def test_a_server_that_cannot_list_its_models(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    session.base_urls["vllm"] = "http://127.0.0.1:9/v1"  # nothing listens there
    panel, browser = open_panel(provider="vllm")
    browser.say(type="models")
    wait_for(lambda: browser.state["models_note"].startswith("Could not list the models"), timeout=20)
    assert browser.state["models"] == []
    browser.set(model="typed-by-hand")  # still takes any name
    assert "vllm · typed-by-hand" in browser.status


def test_closed_panel_stops_following(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    panel, browser = open_panel("closing")
    counted = browser.count()
    panel.close()
    session.send("after close [[words:2]]", conversation="closing").result(15)
    assert panel.wait(1)
    # the conversation went on; the closed panel sent none of it
    assert [m.content for m in session.conversation("closing").history()][0] == "after close [[words:2]]"
    assert browser.texts == EMPTY and browser.count() == counted
    assert panel.comm is None


# -- with a real IPython shell and %%chat ---------------------------------------------


def test_a_panel_leaves_a_line_saying_how_to_reopen_it(ip: Any, fresh: None) -> None:
    """After a restart the saved widget is gone ("model not found"): the line under it says what to do."""
    with capture_output() as io:
        ip.run_cell("reopen_panel = %chat panel reopen\nreopen_panel")
    try:
        widget, line = io.outputs
        assert "application/vnd.jupyter.widget-view+json" in widget.data
        assert "run this cell again, or %chat panel, to reopen it" in line.data["text/plain"]
        assert "%chat panel, to reopen it" in line.data["text/html"]
        assert "application/vnd.jupyter.widget-view+json" not in line.data  # static: it outlives the kernel
    finally:
        ip.user_ns.pop("reopen_panel").close()


def test_panel_and_cells_share_the_conversation(ip: Any, fresh: None) -> None:
    # ip and fresh (tests/conftest.py): the one IPython shell with chatmagic loaded
    with capture_output():
        panel = ip.run_line_magic("chat", "panel paneltalk")
    try:
        assert isinstance(panel, ChatPanel) and panel.session is get_session()
        browser = Browser(panel)
        with capture_output() as io:
            result = ip.run_cell(f"%%chat -c paneltalk -p {STREAMING}\nfrom the cell")
        assert result.error_in_exec is None, io.stdout
        assert panel.wait(10)
        assert browser.texts[0] == "You from the cell"
        assert browser.state["provider"] == STREAMING
        browser.enter("from the panel")
        assert panel.wait(15)
        with capture_output() as io:
            ip.run_cell("%%chat -c paneltalk\nfrom the cell again")
        # the cell continued the panel's exchange: four messages came before it
        assert "Earlier messages: 4." in io.outputs[-1].data["text/plain"]
        assert panel.wait(10)
        assert len(browser.texts) == 6
    finally:
        panel.close()


def test_the_model_box_shows_what_a_cell_with_that_provider_uses(ip: Any, fresh: None) -> None:
    # the session's default model belongs to the default provider: picking that provider in
    # the panel shows it, as a %%chat -p cell naming that provider uses it
    ip.run_line_magic("config", "ChatMagics.default_model = 'gpt-4o-mini'")
    panel = ChatPanel("picked", session=get_session())
    try:
        browser = Browser(panel)
        assert browser.state["model"] == "gpt-4o-mini"
        browser.set(provider=STREAMING)
        assert browser.state["model"] == get_provider(STREAMING).default_model
        browser.set(provider="chatgptt")
        shown = browser.state["model"]
        with capture_output() as io:
            result = ip.run_cell("%%chat -c picked -p chatgptt\n[[words:2]]")
        assert result.error_in_exec is None, io.stdout
        (exchange,) = get_session().conversation("picked").exchanges
        assert shown == exchange.model == "gpt-4o-mini"
    finally:
        panel.close()
        ip.run_line_magic("config", "ChatMagics.default_model = ''")


def test_a_provider_kept_in_other_case_shows_what_a_cell_uses(ip: Any, fresh: None) -> None:
    # a restored conversation may hold the provider as it was typed
    ip.run_line_magic("config", "ChatMagics.default_model = 'gpt-4o-mini'")
    session = get_session()
    session.conversation("typed").adopt([], provider=" ChatGPTT ")
    panel = ChatPanel("typed", session=session)
    try:
        browser = Browser(panel)
        shown = (browser.state["provider"], browser.state["model"])
        with capture_output() as io:
            result = ip.run_cell("%%chat -c typed\n[[words:2]]")
        assert result.error_in_exec is None, io.stdout
        (exchange,) = session.conversation("typed").exchanges
        assert shown == (exchange.provider, exchange.model) == ("chatgptt", "gpt-4o-mini")
    finally:
        panel.close()
        ip.run_line_magic("config", "ChatMagics.default_model = ''")


def test_the_panel_shows_the_summary_as_such(
    open_panel: Callable[..., tuple[ChatPanel, Browser]], session: ChatSession
) -> None:
    from chatmagic import compact

    panel, browser = open_panel("squeezed", provider=None)
    for word in ("heron", "ibis", "crane"):
        session.send(f"tell me about the {word}", conversation="squeezed").result(15)
    assert panel.wait(5)
    turn, plan = compact.summary_turn(session, "squeezed", 1)
    session.start(turn)
    assert turn.wait(15)
    compact.finish(turn, plan)
    wait_for(lambda: any("Summary of 2 earlier exchanges" in text for text in browser.texts))
    assert panel.wait(5)
    texts = browser.texts
    assert len(texts) == 4 and texts[2] == "You tell me about the crane"
    assert texts[0].startswith("You Summarize our conversation so far")
