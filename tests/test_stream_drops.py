"""A lost message never becomes live markup: the real browser code, each message dropped in turn.

jupyter_server drops IOPub messages over its rate limit. A view that applied the next patch
at the wrong offset would join pieces of escaped model text (``&lt;img src=x onerror=…``)
into live elements. Here the actual ES modules (``chatmagic._stream.esm``: static/_patch.js
with panel.js, or with replyview.js) run in headless Chromium with a stand-in for the
anywidget model; Python sends a hostile streamed reply, one message is dropped, what the
page asks for (``resync``, ``hello``) goes back to Python, and after every message the page
must hold no element or attribute outside the sanitizer's allow-list and no ``on*``
attribute. At the end it must show the sanitized rendering of the whole reply.
"""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatmagic._replyview import ReplyView
from chatmagic._stream import esm
from chatmagic.panel import ChatPanel
from chatmagic.present import status_html
from chatmagic.render import _ALLOWED_ATTRIBUTES, _ALLOWED_TAGS, markdown_html
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession

from .conftest import SITES

CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing")

# model text that is escaped when rendered whole, and live markup if escaped pieces were
# spliced at a wrong offset; the payloads cross chunk boundaries (the stand-in sends words)
HOSTILE = (
    "Intro &lt;img src=x onerror=alert(1)&gt; then <svg onload=alert(2)> and "
    "&lt;svg&gt;&lt;a href=javascript:alert(3)&gt;x&lt;/a&gt; again <img src=y onerror=alert(4)>. "
    # offsets count UTF-16 units: characters outside the BMP are two
    "Naïve 😀 𝒳&lt;b&gt; ok. "
    * 12
    + "\n\n```html\n"
    + "<img src=z onerror=alert(5)><svg/onload=alert(6)>\n" * 8
    + "```\n\nLast <b onmouseover=alert(7)>words</b> &lt;iframe srcdoc=x&gt; end."
)

# what a view may hold: the sanitizer's allow-list, and the attributes the views add
ALLOWED = {
    "tags": sorted(_ALLOWED_TAGS),
    "attributes": {tag: sorted(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
    "anywhere": ["class", "data-id", "open", "rel", "target", "aria-live"],
}

HARNESS = """
window.harness = async (source) => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const view = (await import(url)).default;
  const handlers = {};
  const outbox = [];
  const state = { conversations: [], conversation_name: "default", providers: [], provider: "",
    model: "", models: [], models_note: "", status: "", busy: true, earlier: 0, draft: "",
    height: "400px" };
  const model = {
    get: (key) => state[key], set: (key, value) => { state[key] = value; }, save_changes() {},
    on: (name, fn) => { (handlers[name] ||= []).push(fn); },
    off: (name, fn) => { handlers[name] = (handlers[name] || []).filter((f) => f !== fn); },
    send: (msg) => outbox.push(msg),
  };
  const el = document.createElement("div");
  document.body.replaceChildren(el);
  view.render({ model, el });
  window.deliver = (msg) => { for (const fn of handlers["msg:custom"] || []) fn(msg); };
  window.update = (changes) => {
    for (const [key, value] of Object.entries(changes)) {
      state[key] = value;
      for (const fn of handlers[`change:${key}`] || []) fn();
    }
  };
  window.outbox = () => outbox.splice(0);
  window.root = el;
};
window.liveElements = (allowed) => {
  const bad = [];
  // the reply of a cell, the transcript of the panel (not its own controls)
  const shown = window.root.querySelector(".cm-items") || window.root;
  for (const node of shown.querySelectorAll("*")) {
    const tag = node.tagName.toLowerCase();
    if (!allowed.tags.includes(tag)) bad.push(`<${tag}>`);
    for (const { name, value } of node.attributes) {
      const fine = allowed.anywhere.includes(name) || (allowed.attributes[tag] || []).includes(name);
      if (!fine || name.startsWith("on")) bad.push(`<${tag} ${name}>`);
      if (name === "href" && !/^(https?:|mailto:)/i.test(value)) bad.push(`<${tag} href=${value}>`);
    }
  }
  return bad;
};
window.same = (selector, expected) => {
  const t = document.createElement("template");
  t.innerHTML = expected;
  return window.root.querySelector(selector).innerHTML === t.innerHTML;
};
"""


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        pg = browser.new_page()
        pg.set_content("<html><body></body></html>")
        pg.add_script_tag(content=HARNESS)
        yield pg
        browser.close()


def _wire(msg: Any) -> Any:
    return json.loads(json.dumps(msg))


def _capture(widget: Any) -> queue.SimpleQueue[dict[str, Any]]:
    """The custom messages the widget puts on the wire, in order."""
    out: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def publish(msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        if msg_type == "comm_msg" and data.get("method") == "custom":
            out.put(_wire(data["content"]))
        elif msg_type == "comm_msg" and data.get("method") == "update":
            out.put({"type": "state", "state": _wire(data["state"])})

    widget.comm.publish_msg = publish
    return out


def _answer(page: Any, widget: Any) -> None:
    """What the page sent (hello, resync) goes to the widget, as the comm would take it."""
    for msg in page.evaluate("window.outbox()"):
        widget._handle_msg({"content": {"data": {"method": "custom", "content": msg}}, "buffers": []})


def _deliver(page: Any, msg: dict[str, Any]) -> None:
    if msg.get("type") == "state":
        page.evaluate("(s) => window.update(s)", msg["state"])
    else:
        page.evaluate("(m) => window.deliver(m)", msg)
    bad = page.evaluate("(a) => window.liveElements(a)", ALLOWED)
    assert bad == [], f"live markup after {str(msg)[:120]}: {bad}"


def _cell_run(page: Any, drop: int) -> tuple[int, ReplyView, list[str], list[str]]:
    """Stream HOSTILE into a cell's reply view, dropping message number ``drop``.

    Returns the messages sent, the view, each state Python sent (the reply as views hold it)
    and each message's form (``a``: the compact patch, ``k``/``t``: the general one, ``html``: whole).
    """
    page.evaluate("(s) => window.harness(s)", esm("replyview.js"))
    view = ReplyView()
    sent = _capture(view)
    _answer(page, view)  # the view's hello
    words = HOSTILE.split(" ")
    now, count, status, states, forms = 0.0, 0, "opchatgpts · streaming…", [], []
    for i in range(1, len(words) + 12, 4):  # four words a look; a few looks after the end
        now += 0.1
        view.step(" ".join(words[:i]), status, now, 0)
        while not sent.empty():
            msg = sent.get()
            assert view.reply is not None
            states.append(f'{view.reply.html}<div class="cm-line">{status_html(status)}</div>')
            forms.append("".join(key for key in ("a", "k", "t", "html") if key in msg))
            if count != drop:
                _deliver(page, msg)
                _answer(page, view)
            count += 1
    view.close()
    return count, view, states, forms


def test_a_lost_cell_patch_never_becomes_live_markup(page: Any) -> None:
    count, view, states, forms = _cell_run(page, drop=-1)
    assert count > 20  # enough patches that every kind of split is dropped once
    # each form of patch is among them, so each is dropped in turn below
    assert {"a", "kt", "t", "html"} <= set(forms), forms
    # the view shows what Python holds it has (the budget decides how far that is: the final
    # output, the static bundle, replaces the view and shows the whole reply)
    assert page.evaluate("(e) => window.same('.chatmagic-reply', e)", states[-1])
    recovered = 0
    for drop in range(count):
        _, view, states, _forms = _cell_run(page, drop)
        # what is shown is a state Python sent, whole and verified: never pieces joined wrongly
        shown = [
            i
            for i, state in enumerate(states)
            if page.evaluate("(e) => window.same('.chatmagic-reply', e)", state)
        ]
        assert shown, f"dropped {drop}: the view shows a state Python never sent"
        recovered += shown[-1] == len(states) - 1
    assert recovered >= count // 2  # the budget allowing, the view catches up after a loss


# -- the panel ------------------------------------------------------------------------


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    for site in SITES:
        s.base_urls[site] = sandbox_thread.base_url(site)
    yield s
    s.close()


def _panel_run(page: Any, session: ChatSession, drop: int, name: str) -> tuple[int, ChatPanel]:
    page.evaluate("(s) => window.harness(s)", esm("panel.js"))
    panel = ChatPanel(name, session=session)
    panel.provider = "opchatgpts"
    sent = _capture(panel)
    _answer(page, panel)  # hello: a reset follows

    def pump(until: Callable[[], bool]) -> None:
        nonlocal count
        deadline = time.monotonic() + 30
        while not until() or not sent.empty():
            assert time.monotonic() < deadline, "timed out"
            try:
                msg = sent.get(timeout=0.02)
            except queue.Empty:
                _answer(page, panel)
                continue
            if msg["type"] in ("live", "splice") and count == drop:
                count += 1
                continue  # lost on the way
            if msg["type"] in ("live", "splice"):
                count += 1
            _deliver(page, msg)
            _answer(page, panel)

    count = 0
    pump(lambda: panel.wait(0))
    count = 0
    turn = panel.send(f"[[delay:0.01]][[reply]]{HOSTILE}")
    assert turn is not None
    pump(lambda: turn.done and panel.wait(0))
    time.sleep(0.05)
    pump(lambda: panel.wait(0))
    return count, panel


def test_a_lost_panel_message_never_becomes_live_markup(page: Any, session: ChatSession) -> None:
    count, panel = _panel_run(page, session, drop=-1, name="drops")
    final = panel.messages[-1]
    assert markdown_html(HOSTILE) in final
    panel.close()
    assert count > 10
    for drop in range(count):
        _, panel = _panel_run(page, session, drop, name=f"drops-{drop}")
        # the end is a splice: the recorded exchange rendered whole, in place of the bubble
        assert page.evaluate(
            "(e) => window.same('.cm-items > .cm-item:last-child', e)", panel.messages[-1]
        ), f"dropped {drop}"
        panel.close()
