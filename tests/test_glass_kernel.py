"""The glass box and the budget in a real kernel, against the stand-in: what a turn will send
and cost, a request that cannot fit refused before sending, a budget that asks (Send anyway,
Cancel, no one to ask), and the settings that set it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from chatmagic.sandbox import OPENAI_PRESETS, Sandbox

from .conftest import SITES


class Kernel:
    """A real ipykernel with chatmagic loaded and every provider pointed at the stand-in."""

    def __init__(self, sandbox: Sandbox) -> None:
        from jupyter_client import KernelManager

        self.sandbox = sandbox
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        urls = {site: sandbox.base_url(site) for site in (*SITES, "openai", *OPENAI_PRESETS)}
        self.run("%load_ext chatmagic")
        self.run(f"%config ChatMagics.base_urls = {urls!r}")
        self.run("%config ChatMagics.retries = 0")

    def run(
        self, code: str, *, allow_stdin: bool = False, answer: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
        """Execute a cell; returns the reply's content, the outputs it published and the questions
        it asked on its input line (answered with ``answer``)."""
        msgs: list[dict[str, Any]] = []
        asked: list[str] = []

        def stdin_hook(msg: dict[str, Any]) -> None:
            asked.append(msg["content"]["prompt"])
            self.kc.input(answer if answer is not None else "")

        reply = self.kc.execute_interactive(
            code, timeout=60, output_hook=msgs.append, allow_stdin=allow_stdin, stdin_hook=stdin_hook
        )
        return reply["content"], [m for m in msgs if m["msg_type"] != "status"], asked

    def texts(self, code: str, **kw: Any) -> list[str]:
        """Every text the cell showed: displays and their updates (plain), printed text, errors."""
        _, msgs, _ = self.run(code, **kw)
        return [_text(m) for m in msgs]

    def shown(self, code: str, **kw: Any) -> str:
        texts = self.texts(code, **kw)
        return texts[-1] if texts else ""

    def chats(self) -> list[Any]:
        """The chat requests the stand-in received."""
        return [
            r for r in self.sandbox.requests if r.method == "POST" and r.path.endswith("/chat/completions")
        ]

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _text(m: dict[str, Any]) -> str:
    c = m["content"]
    if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
        return str(c["data"].get("text/plain", ""))
    if m["msg_type"] == "stream":
        return str(c["text"])
    if m["msg_type"] == "error":
        return f"{c['ename']}: {c['evalue']}"
    return ""


@pytest.fixture
def kernel(sandbox_thread: Sandbox) -> Iterator[Kernel]:
    k = Kernel(sandbox_thread)
    sandbox_thread.clear()
    try:
        yield k
    finally:
        k.stop()


def test_dry_run_shows_each_part_counted_by_the_server_and_sends_nothing(kernel: Kernel) -> None:
    kernel.run("%%chat -p llamacpp -m llama3.2 -s 'Be brief.'\nfirst question")
    kernel.run("x = 41")
    kernel.sandbox.clear()
    shown = kernel.shown("%%chat --context cells:1 --dry-run\nWhat is x?")
    assert not kernel.chats()  # nothing sent
    for fact in (
        "llamacpp · llama3.2: the request as it will be sent",
        "system prompt",
        "exchange 1: first question",
        "--context: Last 1 cell",
        "your message",
        "template and message overhead",
        "tokens counted by: the server's own tokenizer (exact)",
        "context window: 32,768 tokens (llama.cpp /props)",
        "dry run: nothing was sent",
    ):
        assert fact in shown, (fact, shown)
    # the total is what the server will report for exactly this request
    total = next(line for line in shown.splitlines() if line.strip().startswith("total"))
    assert total.split()[-1].replace(",", "").isdigit()


def test_chat_context_shows_the_next_request_of_a_conversation(kernel: Kernel) -> None:
    kernel.run("%%chat -p vllm -m llama3.2 -c work\nhello there")
    kernel.run("%config ChatMagics.prices = {'llama3.2': {'input': 2.5, 'output': 10}}")
    kernel.sandbox.clear()
    shown = kernel.shown("%chat context work")
    assert not kernel.chats()
    assert "vllm · llama3.2" in shown and "exchange 1: hello there" in shown
    assert "context window: 32,768 tokens (vLLM /v1/models)" in shown
    assert "estimated cost: $" in shown
    assert "is empty" in kernel.shown("%chat context nobody")


def test_a_request_that_cannot_fit_is_refused_and_nothing_is_sent(kernel: Kernel) -> None:
    tiny = {"tiny": {"base_url": kernel.sandbox.base_url("lmstudio"), "context_window": 40}}
    kernel.run(f"%config ChatMagics.endpoints = {tiny!r}")
    kernel.sandbox.clear()
    texts = kernel.texts("%%chat -p tiny -m llama3.2\n" + "a long question " * 40)
    assert texts[-1].startswith("NotSent: This request needs")
    assert "context window is 40 tokens: nothing was sent" in texts[-1]
    assert "%chat compact" in texts[-1]
    assert any("cannot fit" in t and "your message" in t for t in texts[:-1])  # the glass box, above
    assert not kernel.chats()


def test_over_budget_the_cell_asks_and_sends_anyway(kernel: Kernel) -> None:
    kernel.run("%config ChatMagics.max_input_tokens = 5")
    _, msgs, asked = kernel.run("%%chat -p llamacpp -m llama3.2\nhello budget", allow_stdin=True, answer="s")
    assert asked == ["Send anyway? [s]end / [c]ancel (b1): "]
    texts = [_text(m) for m in msgs]
    assert any("over budget" in t and "max_input_tokens = 5" in t for t in texts)
    assert "You said: hello budget" in texts[-1]
    assert len(kernel.chats()) == 1


def test_over_budget_cancel_sends_nothing(kernel: Kernel) -> None:
    kernel.run("%config ChatMagics.max_input_tokens = 5")
    texts = kernel.texts("%%chat -p llamacpp -m llama3.2\nhello budget", allow_stdin=True, answer="c")
    assert texts[-1].startswith("NotSent: Cancelled: nothing was sent.")
    assert any("Over budget: cancelled: nothing was sent." in t for t in texts)
    assert not kernel.chats()
    assert "is empty" in kernel.shown("%chat usage")


def test_over_budget_with_no_one_to_ask_refuses_in_one_line(kernel: Kernel) -> None:
    kernel.run("%config ChatMagics.prices = {'llama3.2': {'input': 1000, 'output': 1000}}")
    kernel.run("%config ChatMagics.max_cost = 0.001")
    shown = kernel.shown("%%chat -p llamacpp -m llama3.2\nhello budget", allow_stdin=False)
    assert shown.startswith("NotSent: This turn is over budget: about $")
    assert "(max_cost = $0.001); nothing was sent, and no one is here to confirm it." in shown
    assert "\n" not in shown
    assert not kernel.chats()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        (
            "prices = {'gpt-4o': {'input': 'cheap', 'output': 1}}",
            "ChatMagics.prices['gpt-4o']['input'] must be",
        ),
        ("prices = {'gpt-4o': {'input': 1}}", "needs exactly 'input' and 'output'"),
        ("max_input_tokens = -3", "ChatMagics.max_input_tokens must be a whole number of tokens"),
        ("max_cost = -1.0", "ChatMagics.max_cost must be USD per turn"),
    ],
)
def test_malformed_prices_and_budgets_are_refused_in_one_line(
    kernel: Kernel, setting: str, said: str
) -> None:
    kernel.run("%config ChatMagics.max_cost = 0.5")
    texts = [t for t in kernel.texts(f"%config ChatMagics.{setting}") if t.strip()]
    assert len(texts) == 1 and said in texts[0] and texts[0].count("\n") <= 1, texts
    assert "0.5" in kernel.shown("print(get_ipython().find_magic('chat', 'line').__self__.max_cost)")


def test_the_status_line_keeps_this_request_apart_from_the_conversation(kernel: Kernel) -> None:
    first = kernel.shown("%%chat -p llamacpp -m llama3.2\nfirst").rsplit("— ", 1)[-1]
    # a short request asks the server nothing before it goes: its count, the server's, no window
    assert re.search(r" · context [\d,]+ tokens · \d+ out$", first), first
    kernel.run("%chat context")  # a look asks the server for its window: known from now on
    status = kernel.shown("%%chat\nsecond").rsplit("— ", 1)[-1]
    assert re.search(r" · context [\d,]+ of 32,768 tokens \([\d.]+%\) · \d+ out · ", status), status
    assert re.search(r"conversation [\d,]+ tokens so far \(%chat usage\)$", status), status
    assert "tokens in" in kernel.shown("%chat usage")


def test_the_record_keeps_the_estimate_beside_the_servers_count(kernel: Kernel) -> None:
    kernel.run("%%chat -p vllm -m llama3.2\nhow many tokens is this?")
    probe = (
        "from chatmagic._state import get_session\n"
        "import json\n"
        "print(json.dumps(get_session().conversation('default').exchanges[-1].usage))"
    )
    usage = json.loads(kernel.shown(probe))
    assert isinstance(usage["estimated_prompt_tokens"], int) and isinstance(usage["prompt_tokens"], int)


def _subshell(kernel: Kernel) -> str:
    """A subshell of the kernel (ipykernel 7), where JupyterLab >= 4.4 sends widget messages."""
    msg = kernel.kc.session.msg("create_subshell_request", {})
    kernel.kc.control_channel.send(msg)
    while True:
        reply = kernel.kc.control_channel.get_msg(timeout=10)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return str(reply["content"]["subshell_id"])


def _to_widget(kernel: Kernel, subshell: str, model_id: str, content: dict[str, Any]) -> None:
    """What a rendered view of the widget sends (``model.send(content)`` in replyview.js)."""
    msg = kernel.kc.session.msg(
        "comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": content}}
    )
    msg["header"]["subshell_id"] = subshell
    kernel.kc.shell_channel.send(msg)


@pytest.mark.parametrize(("choice", "sent"), [("send", 1), ("cancel", 0)])
def test_over_budget_the_reply_view_asks_with_buttons(kernel: Kernel, choice: str, sent: int) -> None:
    """Where widgets work, the cell's reply view shows the glass box and Send anyway / Cancel;
    the click comes on a subshell while the cell waits (the kernel is not blocked)."""
    kernel.run("%config ChatMagics.max_input_tokens = 5")
    subshell = _subshell(kernel)
    msg_id = kernel.kc.execute("%%chat -p llamacpp -m llama3.2\nhello buttons", allow_stdin=True)
    model_id, asked, shown, buttons, texts = None, "", "", "", []
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "display_data" and model_id is None:
            view = content["data"].get("application/vnd.jupyter.widget-view+json")
            if view:
                model_id = view["model_id"]
                _to_widget(kernel, subshell, model_id, {"type": "hello"})
        elif kind == "comm_msg" and model_id and content["comm_id"] == model_id:
            custom = content["data"].get("content", {})
            shown = custom.get("html", shown)
            asked = custom.get("ask", asked)
            if asked and 'data-ask="b' in asked:
                buttons, ask_id = asked, asked.split('data-ask="', 1)[1].split('"', 1)[0]
                _to_widget(kernel, subshell, model_id, {"type": "answer", "id": ask_id, "choice": choice})
                asked = "answered"
        elif kind in ("display_data", "update_display_data", "error", "stream"):
            texts.append(_text(msg))
        elif kind == "status" and content["execution_state"] == "idle":
            break
    assert "over budget" in shown and "your message" in shown and "<button" not in shown
    assert ">Send anyway</button>" in buttons and ">Cancel</button>" in buttons
    assert asked == ""  # the buttons are taken away once answered
    assert len(kernel.chats()) == sent
    if sent:
        assert "You said: hello buttons" in texts[-1]
    else:
        assert texts[-1].startswith("NotSent: Cancelled: nothing was sent.")


def test_a_context_item_that_was_cut_says_so_in_the_glass_box(kernel: Kernel) -> None:
    kernel.run("for i in range(20_000):\n    print(f'line {i}')")
    shown = kernel.shown("%%chat -p llamacpp -m llama3.2 --context cells:1 --dry-run\nToo much?")
    row = next(line for line in shown.splitlines() if "--context: Last 1 cell" in line)
    assert "(cut to fit its budget)" in row
    assert not kernel.chats()
